"""Bad input gets a clear error, or a correct result; never a deep traceback."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from skcnn import CNNClassifier

from .conftest import TINY

X8 = np.random.RandomState(0).rand(40, 8, 8).astype(np.float32)
Y8 = np.arange(40) % 4


@pytest.mark.parametrize(
    "X, y, exc, match",
    [
        (
            np.where(np.arange(40 * 64).reshape(40, 8, 8) == 5, np.nan, X8),
            Y8,
            ValueError,
            "NaN",
        ),
        (
            np.where(np.arange(40 * 64).reshape(40, 8, 8) == 5, np.inf, X8),
            Y8,
            ValueError,
            "infinity",
        ),
        (X8, Y8[:30], ValueError, "inconsistent numbers of samples"),
        (np.empty((0, 8, 8)), np.empty(0), ValueError, "0 sample"),
        (np.array([["a", "b"], ["c", "d"]]), np.array([0, 1]), ValueError, "numeric"),
        (X8, np.zeros(40), ValueError, "only one class"),
        (X8, np.zeros((40, 2, 2)), ValueError, "y"),
        (X8, np.linspace(0, 1, 40), ValueError, "Unknown label type"),
        (X8, None, ValueError, "requires y"),
        (np.zeros((40, 2, 2, 2, 2)), Y8, ValueError, "dim"),
    ],
    ids=[
        "nan",
        "inf",
        "length",
        "empty",
        "strings",
        "one-class",
        "y-3d",
        "continuous-y",
        "no-y",
        "5d",
    ],
)
def test_bad_fit_inputs(X, y, exc, match):
    with pytest.raises(exc, match=match):
        CNNClassifier(**TINY).fit(X, y)


def test_bad_predict_inputs():
    clf = CNNClassifier(**TINY)
    with pytest.raises(NotFittedError):
        clf.predict(X8)
    clf.fit(X8, Y8)
    with pytest.raises(ValueError, match="fitted on 8x8 images with 1 channel"):
        clf.predict(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.zeros((2, 9, 9)))
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((2, 8, 8), np.nan))
    with pytest.raises(TypeError, match="Sparse data"):
        from scipy import sparse

        clf.predict(sparse.csr_matrix(np.zeros((2, 64))))


def test_too_few_samples_for_split_warns_and_trains():
    X, y = X8[:6], np.array([0, 0, 0, 0, 0, 1])
    with pytest.warns(UserWarning, match="stratified"):
        clf = CNNClassifier(**TINY, validation_fraction=0.5).fit(X, y)
    assert clf.predict(X).shape == (6,)
    with pytest.warns(UserWarning, match="too few"):
        CNNClassifier(**TINY, validation_fraction=0.1).fit(X8[:2], Y8[:2])


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    shape=st.lists(st.integers(0, 9), min_size=1, max_size=5),
    dtype=st.sampled_from(
        ["uint8", "float32", "float64", "int64", "bool", "complex64", "object"]
    ),
    n_classes=st.integers(1, 3),
)
def test_random_shapes_and_dtypes_fail_cleanly_or_work(shape, dtype, n_classes):
    """Any input either trains and predicts, or raises ValueError / TypeError."""
    rng = np.random.RandomState(0)
    X = (rng.rand(*shape) * 3).astype(dtype)
    n = shape[0]
    y = np.arange(n) % n_classes
    clf = CNNClassifier(
        conv_filters=(2,), dense_units=(), max_epochs=1, device="cpu", random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clf.fit(X, y)
        except (ValueError, TypeError) as exc:
            assert str(exc)
            return
        assert clf.predict(X).shape == (n,)


def test_bad_parameters():
    for kwargs, match in [
        ({"max_epochs": 0}, "max_epochs"),
        ({"lr": -1}, "lr"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"padding": "full"}, "padding"),
        ({"activation": "swish2"}, "activation"),
        ({"dropout": 1.0}, "dropout"),
        (
            {"device": "cuda:7"}
            if not torch.cuda.is_available()
            else {"max_epochs": -1},
            "CUDA|max_epochs",
        ),
        ({"precision": "fp8"}, "precision"),
        ({"image_shape": (7, 7)}, "image_shape"),
    ]:
        with pytest.raises(ValueError, match=match):
            CNNClassifier(**{**TINY, **kwargs}).fit(
                X8.reshape(40, -1) if "image_shape" in kwargs else X8, Y8
            )
