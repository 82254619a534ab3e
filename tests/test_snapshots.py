"""What each network estimator builds, pinned: callbacks and their settings,
optimizer and its parameter groups, batch size, precision, memory format.

The values were recorded on main before the engine moved out of
``_base.py`` (issue 24); a refactoring that changes any of them changes what
a fit does.
"""

import numbers

import numpy as np
import pytest
import torch

import skcnn
from skcnn import (
    CNNClassifier,
    CNNRegressor,
    DenseNetClassifier,
    PretrainedClassifier,
)

from .conftest import TINY, TINY_DN


def _simple(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Number):
        return float(value)
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, (numbers.Number, str)) for v in value
    ):
        return [_simple(v) for v in value]
    return type(value).__name__


def snapshot(est):
    """The built net, as plain values."""
    net = est.net_
    callbacks = []
    for name, cb in net.callbacks_:
        params = {
            k: _simple(v)
            for k, v in sorted(cb.get_params(deep=False).items())
            if k not in ("sink", "dirname", "key", "fn_prefix")
        }
        # per-fit settings set on the initialized callback
        for attr in ("monitor",):
            if hasattr(cb, attr):
                params[attr] = _simple(getattr(cb, attr))
        callbacks.append([name, type(cb).__name__, params])
    groups = [
        [len(g["params"]), float(g["lr"]), float(g.get("weight_decay", 0.0))]
        for g in net.optimizer_.param_groups
    ]
    return {
        "callbacks": callbacks,
        "optimizer": type(net.optimizer_).__name__,
        "param_groups": groups,
        "momentum": _simple(net.optimizer_.defaults.get("momentum")),
        "criterion": type(net.criterion_).__name__,
        "label_smoothing": float(
            getattr(net.criterion_, "label_smoothing", 0.0)
            or getattr(net, "label_smoothing", 0.0)
        ),
        "batch_size": est.batch_size_,
        "amp_dtype": str(net.amp_dtype),
        "channels_last": bool(net.channels_last),
        "mix": None if net.mix is None else [net.mix.mixup, net.mix.cutmix],
        "augment": type(net.augment).__name__,
        "max_epochs": net.max_epochs,
        "lr": float(net.lr),
        "train_split": net.train_split,
    }


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 8, 8).astype(np.float32)
    y = np.arange(40) % 2
    return X, y


def _user_module():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    )


CASES = {
    "cnn_tiny": lambda d: CNNClassifier(**TINY),
    "cnn_defaults_augmented": lambda d: CNNClassifier(
        conv_filters=(4,),
        dense_units=(8,),
        max_epochs=2,
        augment={"shift": 0.1},
        mixup=0.2,
        optimizer="sgd",
        weight_decay=1e-4,
        early_stopping=True,
        checkpoint_dir=str(d),
        device="cpu",
        random_state=0,
    ),
    "cnn_no_validation_plateau": lambda d: CNNClassifier(
        **{**TINY, "validation_fraction": 0, "lr_schedule": "plateau"}
    ),
    "cnn_regressor": lambda d: CNNRegressor(**TINY),
    "cnn_regressor_accuracy_free_cosine": lambda d: CNNRegressor(
        **{**TINY, "lr_schedule": "cosine", "warmup_epochs": 1, "monitor": "auto"}
    ),
    "densenet_tiny": lambda d: DenseNetClassifier(**TINY_DN),
    "densenet_finetune": lambda d: DenseNetClassifier(
        **TINY_DN,
        finetune_depth=1,
        head_epochs=1,
        backbone_lr_scale=0.1,
        monitor="accuracy",
    ),
    "pretrained_user_module": lambda d: PretrainedClassifier(
        _user_module(),
        weights=None,
        # skcnn 0.2's defaults, which 0.3 changed (issue 25): the same
        # parameters still build the same net
        layer=None,
        pooling="avg",
        head_init="random",
        bn_statistics="batch",
        lr=1e-3,
        finetune_depth=1,
        head_epochs=1,
        backbone_lr_scale=0.1,
        input_size=None,
        max_epochs=2,
        optimizer="adamw",
        label_smoothing=0.1,
        device="cpu",
        random_state=0,
    ),
}


def _fit(case, data, folder):
    X, y = data
    est = CASES[case](folder)
    return est.fit(X, y.astype(float) if "regressor" in case else y)


EXPECTED = {
    "cnn_defaults_augmented": {
        "callbacks": [
            ["epoch_timer", "EpochTimer", {}],
            [
                "train_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "train_loss", "on_train": True},
            ],
            [
                "valid_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "valid_loss", "on_train": False},
            ],
            ["accuracy", "EpochAccuracy", {"task": "binary"}],
            ["smoothed_loss", "SmoothedLoss", {"weight": 0.6}],
            [
                "early_stopping",
                "EarlyStopping",
                {
                    "load_best": True,
                    "lower_is_better": True,
                    "monitor": "valid_loss_smooth",
                    "patience": 6.0,
                    "threshold": 0.0,
                    "threshold_mode": "abs",
                },
            ],
            [
                "checkpoint",
                "BestCheckpoint",
                {
                    "event_name": "event_cp",
                    "f_criterion": None,
                    "f_history": None,
                    "f_optimizer": None,
                    "f_params": "params.pt",
                    "f_pickle": None,
                    "load_best": False,
                    "monitor": "valid_loss_best",
                    "use_safetensors": False,
                },
            ],
            [
                "stop_on_interrupt",
                "StopOnInterrupt",
                {"pressed": False, "requested": False},
            ],
            [
                "lr_schedule",
                "LRScheduler",
                {
                    "event_name": "event_lr",
                    "lr_lambda": "EpochFactor",
                    "monitor": "valid_loss",
                    "policy": "function",
                    "step_every": "epoch",
                },
            ],
        ],
        "optimizer": "SGD",
        "param_groups": [[7, 0.00012, 0.0001]],
        "momentum": 0.9,
        "criterion": "BCEWithLogitsLoss",
        "label_smoothing": 0.1,
        "batch_size": 16,
        "amp_dtype": "None",
        "channels_last": True,
        "mix": [0.2, 0.0],
        "augment": "Augment",
        "max_epochs": 2,
        "lr": 0.003,
        "train_split": None,
    },
    "cnn_no_validation_plateau": {
        "callbacks": [
            ["epoch_timer", "EpochTimer", {}],
            [
                "train_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "train_loss", "on_train": True},
            ],
            [
                "valid_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "valid_loss", "on_train": False},
            ],
            ["accuracy", "EpochAccuracy", {"task": "binary"}],
            [
                "early_stopping",
                "EarlyStopping",
                {
                    "load_best": True,
                    "lower_is_better": True,
                    "monitor": "train_loss",
                    "patience": 6.0,
                    "threshold": 0.0,
                    "threshold_mode": "abs",
                },
            ],
            [
                "stop_on_interrupt",
                "StopOnInterrupt",
                {"pressed": False, "requested": False},
            ],
            [
                "lr_schedule",
                "LRScheduler",
                {
                    "event_name": "event_lr",
                    "factor": 0.5,
                    "monitor": "train_loss",
                    "patience": 2.0,
                    "policy": "ReduceLROnPlateau",
                    "step_every": "epoch",
                },
            ],
        ],
        "optimizer": "Adam",
        "param_groups": [[7, 0.005, 0.0]],
        "momentum": None,
        "criterion": "BCEWithLogitsLoss",
        "label_smoothing": 0.1,
        "batch_size": 32,
        "amp_dtype": "None",
        "channels_last": True,
        "mix": None,
        "augment": "NoneType",
        "max_epochs": 5,
        "lr": 0.005,
        "train_split": None,
    },
    "cnn_regressor": {
        "callbacks": [
            ["epoch_timer", "EpochTimer", {}],
            [
                "train_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "train_loss", "on_train": True},
            ],
            [
                "valid_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "valid_loss", "on_train": False},
            ],
            [
                "early_stopping",
                "EarlyStopping",
                {
                    "load_best": True,
                    "lower_is_better": True,
                    "monitor": "valid_loss",
                    "patience": 6.0,
                    "threshold": 0.0,
                    "threshold_mode": "abs",
                },
            ],
            [
                "stop_on_interrupt",
                "StopOnInterrupt",
                {"pressed": False, "requested": False},
            ],
        ],
        "optimizer": "Adam",
        "param_groups": [[7, 0.005, 0.0]],
        "momentum": None,
        "criterion": "MSELoss",
        "label_smoothing": 0.0,
        "batch_size": 32,
        "amp_dtype": "None",
        "channels_last": True,
        "mix": None,
        "augment": "NoneType",
        "max_epochs": 5,
        "lr": 0.005,
        "train_split": None,
    },
    "cnn_regressor_accuracy_free_cosine": {
        "callbacks": [
            ["epoch_timer", "EpochTimer", {}],
            [
                "train_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "train_loss", "on_train": True},
            ],
            [
                "valid_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "valid_loss", "on_train": False},
            ],
            [
                "early_stopping",
                "EarlyStopping",
                {
                    "load_best": True,
                    "lower_is_better": True,
                    "monitor": "valid_loss",
                    "patience": 6.0,
                    "threshold": 0.0,
                    "threshold_mode": "abs",
                },
            ],
            [
                "stop_on_interrupt",
                "StopOnInterrupt",
                {"pressed": False, "requested": False},
            ],
            [
                "lr_schedule",
                "LRScheduler",
                {
                    "event_name": "event_lr",
                    "lr_lambda": "EpochFactor",
                    "monitor": "valid_loss",
                    "policy": "function",
                    "step_every": "epoch",
                },
            ],
        ],
        "optimizer": "Adam",
        "param_groups": [[7, 0.0025, 0.0]],
        "momentum": None,
        "criterion": "MSELoss",
        "label_smoothing": 0.0,
        "batch_size": 32,
        "amp_dtype": "None",
        "channels_last": True,
        "mix": None,
        "augment": "NoneType",
        "max_epochs": 5,
        "lr": 0.005,
        "train_split": None,
    },
    "cnn_tiny": {
        "callbacks": [
            ["epoch_timer", "EpochTimer", {}],
            [
                "train_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "train_loss", "on_train": True},
            ],
            [
                "valid_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "valid_loss", "on_train": False},
            ],
            ["accuracy", "EpochAccuracy", {"task": "binary"}],
            [
                "early_stopping",
                "EarlyStopping",
                {
                    "load_best": True,
                    "lower_is_better": True,
                    "monitor": "valid_loss",
                    "patience": 6.0,
                    "threshold": 0.0,
                    "threshold_mode": "abs",
                },
            ],
            [
                "stop_on_interrupt",
                "StopOnInterrupt",
                {"pressed": False, "requested": False},
            ],
        ],
        "optimizer": "Adam",
        "param_groups": [[7, 0.005, 0.0]],
        "momentum": None,
        "criterion": "BCEWithLogitsLoss",
        "label_smoothing": 0.1,
        "batch_size": 32,
        "amp_dtype": "None",
        "channels_last": True,
        "mix": None,
        "augment": "NoneType",
        "max_epochs": 5,
        "lr": 0.005,
        "train_split": None,
    },
    "densenet_finetune": {
        "callbacks": [
            ["epoch_timer", "EpochTimer", {}],
            [
                "train_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "train_loss", "on_train": True},
            ],
            [
                "valid_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "valid_loss", "on_train": False},
            ],
            ["accuracy", "EpochAccuracy", {"task": "binary"}],
            ["ranked_accuracy", "RankedAccuracy", {}],
            [
                "early_stopping",
                "EarlyStopping",
                {
                    "load_best": True,
                    "lower_is_better": False,
                    "monitor": "valid_acc_rank",
                    "patience": 6.0,
                    "threshold": 0.0,
                    "threshold_mode": "abs",
                },
            ],
            [
                "stop_on_interrupt",
                "StopOnInterrupt",
                {"pressed": False, "requested": False},
            ],
            [
                "freeze_base",
                "Freezer",
                {
                    "at": "partial",
                    "fn": "function",
                    "patterns": "list",
                    "schedule": "method",
                },
            ],
            [
                "unfreeze",
                "Unfreezer",
                {
                    "at": "partial",
                    "fn": "function",
                    "patterns": "list",
                    "schedule": "method",
                },
            ],
        ],
        "optimizer": "Adam",
        "param_groups": [[32, 0.0001, 0.0], [2, 0.001, 0.0]],
        "momentum": None,
        "criterion": "BCEWithLogitsLoss",
        "label_smoothing": 0.0,
        "batch_size": 16,
        "amp_dtype": "None",
        "channels_last": True,
        "mix": None,
        "augment": "NoneType",
        "max_epochs": 2,
        "lr": 0.001,
        "train_split": None,
    },
    "densenet_tiny": {
        "callbacks": [
            ["epoch_timer", "EpochTimer", {}],
            [
                "train_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "train_loss", "on_train": True},
            ],
            [
                "valid_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "valid_loss", "on_train": False},
            ],
            ["accuracy", "EpochAccuracy", {"task": "binary"}],
            [
                "early_stopping",
                "EarlyStopping",
                {
                    "load_best": True,
                    "lower_is_better": True,
                    "monitor": "valid_loss",
                    "patience": 6.0,
                    "threshold": 0.0,
                    "threshold_mode": "abs",
                },
            ],
            [
                "stop_on_interrupt",
                "StopOnInterrupt",
                {"pressed": False, "requested": False},
            ],
        ],
        "optimizer": "Adam",
        "param_groups": [[34, 0.001, 0.0]],
        "momentum": None,
        "criterion": "BCEWithLogitsLoss",
        "label_smoothing": 0.0,
        "batch_size": 16,
        "amp_dtype": "None",
        "channels_last": True,
        "mix": None,
        "augment": "NoneType",
        "max_epochs": 2,
        "lr": 0.001,
        "train_split": None,
    },
    "pretrained_user_module": {
        "callbacks": [
            ["epoch_timer", "EpochTimer", {}],
            [
                "train_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "train_loss", "on_train": True},
            ],
            [
                "valid_loss",
                "PassthroughScoring",
                {"lower_is_better": True, "name": "valid_loss", "on_train": False},
            ],
            ["accuracy", "EpochAccuracy", {"task": "binary"}],
            [
                "early_stopping",
                "EarlyStopping",
                {
                    "load_best": True,
                    "lower_is_better": True,
                    "monitor": "valid_loss",
                    "patience": 6.0,
                    "threshold": 0.0,
                    "threshold_mode": "abs",
                },
            ],
            [
                "stop_on_interrupt",
                "StopOnInterrupt",
                {"pressed": False, "requested": False},
            ],
            [
                "freeze_base",
                "Freezer",
                {
                    "at": "partial",
                    "fn": "function",
                    "patterns": "list",
                    "schedule": "method",
                },
            ],
            [
                "unfreeze",
                "Unfreezer",
                {
                    "at": "partial",
                    "fn": "function",
                    "patterns": "list",
                    "schedule": "method",
                },
            ],
        ],
        "optimizer": "AdamW",
        "param_groups": [[4, 0.0001, 0.0], [2, 0.001, 0.0]],
        "momentum": None,
        "criterion": "BCEWithLogitsLoss",
        "label_smoothing": 0.1,
        "batch_size": 16,
        "amp_dtype": "None",
        "channels_last": True,
        "mix": None,
        "augment": "NoneType",
        "max_epochs": 2,
        "lr": 0.001,
        "train_split": None,
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_built_net_is_unchanged(case, data, tmp_path):
    est = _fit(case, data, tmp_path)
    assert snapshot(est) == EXPECTED[case]


@pytest.mark.parametrize("case", ["cnn_tiny", "cnn_regressor", "densenet_finetune"])
def test_a_loaded_model_builds_the_same_net(case, data, tmp_path):
    est = _fit(case, data, tmp_path)
    path = est.save(tmp_path / "m.safetensors")
    loaded = skcnn.load(path)
    got, want = snapshot(loaded), snapshot(est)
    assert got == want
