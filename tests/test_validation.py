"""Every parameter is declared and checked once, before any work, with a
message that names the parameter, the estimator and what was expected."""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from skcnn import (
    CNNClassifier,
    CNNRegressor,
    DenseNetClassifier,
    PretrainedClassifier,
    PretrainedFeatureExtractor,
)
from skcnn.baselines import (
    AddNoise,
    ColorHistogram,
    HOGTransformer,
    ImageFlattener,
    ImageResizer,
)

from .conftest import TINY, TINY_DN

ALL = [
    CNNClassifier,
    CNNRegressor,
    DenseNetClassifier,
    PretrainedClassifier,
    PretrainedFeatureExtractor,
    ImageFlattener,
    ImageResizer,
    ColorHistogram,
    HOGTransformer,
    AddNoise,
]

X = np.random.default_rng(0).random((40, 8, 8)).astype(np.float32)
Y = np.arange(40) % 2


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_parameter_has_one_constraint(cls):
    assert set(cls().get_params(deep=False)) == set(cls._parameter_constraints)


BAD = [
    (CNNClassifier, {"dropout": "0.5"}, "dropout"),
    (CNNClassifier, {"dropout": 1.0}, "dropout"),
    (CNNClassifier, {"lr": -1}, "lr"),
    (CNNClassifier, {"lr": True}, "lr"),
    (CNNClassifier, {"max_epochs": True}, "max_epochs"),
    (CNNClassifier, {"max_epochs": 2.5}, "max_epochs"),
    (CNNClassifier, {"kernel_size": 0}, "kernel_size"),
    (CNNClassifier, {"kernel_size": (3, 0)}, "kernel_size"),
    (CNNClassifier, {"conv_filters": (0,)}, "conv_filters"),
    (CNNClassifier, {"conv_filters": 32}, "conv_filters"),
    (CNNClassifier, {"pool_size": -2}, "pool_size"),
    (CNNClassifier, {"dense_units": (0,)}, "dense_units"),
    (CNNClassifier, {"batch_size": 0}, "batch_size"),
    (CNNClassifier, {"batch_size": -2}, "batch_size"),
    (CNNClassifier, {"validation_fraction": 1.0}, "validation_fraction"),
    (CNNClassifier, {"n_iter_no_change": 0}, "n_iter_no_change"),
    (CNNClassifier, {"n_iter_no_change": 1.5}, "n_iter_no_change"),
    (CNNClassifier, {"tol": -0.1}, "tol"),
    (CNNClassifier, {"monitor": "valid_loss"}, "monitor"),
    (CNNClassifier, {"weight_decay": -1e-4}, "weight_decay"),
    (CNNClassifier, {"precision": "fp8"}, "precision"),
    (CNNClassifier, {"padding": "full"}, "padding"),
    (CNNClassifier, {"activation": "swish2"}, "activation"),
    (CNNClassifier, {"optimizer": "lbfgs2"}, "optimizer"),
    (CNNClassifier, {"optimizer": torch.nn.Linear}, "optimizer"),
    (CNNClassifier, {"class_weight": "uniform"}, "class_weight"),
    (CNNClassifier, {"channels": "middle"}, "channels"),
    (CNNClassifier, {"num_workers": -1}, "num_workers"),
    (CNNRegressor, {"early_stopping": 1}, "early_stopping"),
    (DenseNetClassifier, {"backbone_lr_scale": -0.1}, "backbone_lr_scale"),
    (DenseNetClassifier, {"head_epochs": -2}, "head_epochs"),
    (DenseNetClassifier, {"input_size": 0}, "input_size"),
    (DenseNetClassifier, {"finetune_depth": 1.5}, "finetune_depth"),
    (DenseNetClassifier, {"arch": "densenet100"}, "arch"),
    (DenseNetClassifier, {"stem": "tiny"}, "stem"),
    (DenseNetClassifier, {"block_config": ()}, "block_config"),
    (PretrainedClassifier, {"backbone_lr_scale": -1.0}, "backbone_lr_scale"),
    (PretrainedClassifier, {"input_size": "large"}, "input_size"),
    (PretrainedClassifier, {"backbone": 7}, "backbone"),
    (PretrainedFeatureExtractor, {"layer": 2}, "layer"),
    (PretrainedFeatureExtractor, {"batch_size": 0}, "batch_size"),
    (PretrainedFeatureExtractor, {"input_size": 0}, "input_size"),
    (PretrainedFeatureExtractor, {"pooling": "min"}, "pooling"),
    (PretrainedFeatureExtractor, {"backbone": 3}, "backbone"),
    (ColorHistogram, {"bins": 0}, "bins"),
    (ColorHistogram, {"bins": 2.0}, "bins"),
    (HOGTransformer, {"pixels_per_cell": (0, 4)}, "pixels_per_cell"),
    (HOGTransformer, {"block_norm": "L3"}, "block_norm"),
    (ImageResizer, {"input_size": (0, 4)}, "input_size"),
    (AddNoise, {"std": -1.0}, "std"),
]


def _fit(est):
    if hasattr(est, "predict"):
        return est.fit(X, Y)
    return est.fit(X)


@pytest.mark.parametrize(
    "cls, params, name", BAD, ids=[f"{c.__name__}-{n}" for c, _, n in BAD]
)
def test_bad_parameter_is_named_before_any_work(cls, params, name, monkeypatch):
    est = cls(**params)
    # Nothing may be prepared before the check: input validation would be work.
    monkeypatch.setattr(
        "skcnn._data.to_channels_first",
        lambda *a, **k: pytest.fail("input was processed before the check"),
    )
    with pytest.raises(
        InvalidParameterError, match=f"'{name}' parameter of {cls.__name__}"
    ):
        _fit(est)


@pytest.mark.parametrize(
    "params",
    [
        {"lr": np.float32(1e-2)},
        {"max_epochs": np.int64(2)},
        {"dropout": np.float64(0.1)},
        {"conv_filters": [np.int32(4)]},
        {"batch_size": -1},
        {"kernel_size": ((3, 3),)},
        {"pool_size": (None,)},
        {"optimizer": torch.optim.Adagrad},
    ],
)
def test_numpy_scalars_and_valid_forms_are_accepted(params):
    est = CNNClassifier(**{**TINY, "conv_filters": (4,), **params, "max_epochs": 2})
    est.fit(X, Y)
    assert est.predict(X).shape == (40,)


@pytest.mark.parametrize("device", ["tpu", "cuda:banana", "mps", "xla"])
def test_unknown_or_absent_devices(device):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("MPS is present here")
    with pytest.raises(ValueError, match="device"):
        CNNClassifier(**{**TINY, "device": device}).fit(X, Y)


def test_renamed_parameters_warn_and_still_work():
    with pytest.warns(FutureWarning, match="'drop_rate' was renamed to 'dropout'"):
        old = DenseNetClassifier(**TINY_DN, drop_rate=0.2).fit(X, Y)
    new = DenseNetClassifier(**TINY_DN, dropout=0.2).fit(X, Y)
    np.testing.assert_allclose(old.predict_proba(X), new.predict_proba(X))
    with pytest.warns(FutureWarning, match="'output_shape' was renamed"):
        out = ImageResizer(output_shape=(4, 4), flatten=True).fit_transform(X)
    assert out.shape == (40, 16)
    with pytest.warns(FutureWarning, match="'resize' was renamed"):
        HOGTransformer(resize=(16, 16)).fit(X)
    with pytest.warns(FutureWarning, match="'channels_last' was renamed"):
        PretrainedFeatureExtractor(
            "mobilenet_v3_small", weights=None, channels_last=False, device="cpu"
        ).fit(X)
