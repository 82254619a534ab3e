import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skcnn import CNNClassifier, CNNRegressor

from .conftest import TINY


def test_default_digits_accuracy(digits_uint8):
    Xtr, Xte, ytr, yte = digits_uint8
    clf = CNNClassifier(random_state=0).fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= 0.98
    assert clf.n_iter_ <= clf.max_epochs
    assert {"train_loss", "valid_loss", "train_acc", "valid_acc"} <= set(
        clf.history_[0]
    )
    # 2-D convolutions run channels-last on every device (faster with oneDNN too)
    convs = [m for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def _as_layout(X, layout):
    if layout == "channels_last":
        return np.repeat(X[..., None], 3, axis=-1), {}
    if layout == "channels_first":
        return np.repeat(X[:, None], 3, axis=1), {}
    if layout == "flat":
        return X.reshape(len(X), -1), {"image_shape": (8, 8)}
    if layout == "flat_rgb":
        flat = np.repeat(X[..., None], 3, axis=-1).reshape(len(X), -1)
        return flat, {"image_shape": (8, 8, 3)}
    if layout == "float64":
        return X.astype(np.float64) / 255, {}
    return X, {}


@pytest.mark.parametrize(
    "layout",
    ["gray", "channels_last", "channels_first", "flat", "flat_rgb", "float64"],
)
def test_input_layouts(small_digits, heldout_digits, layout):
    X, kwargs = _as_layout(small_digits[0], layout)
    X_test, _ = _as_layout(heldout_digits[0], layout)
    clf = CNNClassifier(**TINY, **kwargs).fit(X, small_digits[1])
    expected_channels = (
        3 if layout in ("channels_last", "channels_first", "flat_rgb") else 1
    )
    assert clf.layout_.shape == (expected_channels, 8, 8)
    assert clf.predict(X_test).shape == (len(X_test),)
    assert clf.score(X_test, heldout_digits[1]) > 0.8


def test_uint8_and_float_inputs_agree(small_digits):
    X, y = small_digits
    a = CNNClassifier(**TINY).fit(X, y).predict_proba(X)
    b = (
        CNNClassifier(**TINY)
        .fit(X.astype(np.float32) / 255, y)
        .predict_proba(X.astype(np.float32) / 255)
    )
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_one_dimensional_signals_use_conv1d():
    rng = np.random.RandomState(0)
    t = np.linspace(0, 1, 32)
    y = rng.randint(0, 2, 120)
    X = np.sin(2 * np.pi * (2 + 3 * y[:, None]) * t) + 0.1 * rng.randn(120, 32)
    clf = CNNClassifier(**{**TINY, "max_epochs": 15}).fit(X, y)
    assert type(clf.module_.features[0][0]).__name__ == "Conv1d"
    assert clf.score(X, y) > 0.9


def test_string_and_binary_labels(small_digits):
    X, y = small_digits
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    clf = CNNClassifier(**TINY).fit(X, names[y])
    assert set(clf.predict(X)) <= set(names)
    binary = np.where(y < 5, "low", "high")
    bclf = CNNClassifier(**TINY).fit(X, binary)
    assert bclf.module_.classifier.out_features == 1  # one sigmoid logit
    proba = bclf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(1), 1)
    assert list(bclf.classes_) == ["high", "low"]
    assert bclf.score(X, binary) > 0.6


def test_multilabel(small_digits):
    X, y = small_digits
    Y = np.column_stack([y % 2 == 0, y > 4, y == 0]).astype(int)
    clf = CNNClassifier(**TINY).fit(X, Y)
    assert clf.predict(X).shape == Y.shape
    assert clf.predict_proba(X).shape == Y.shape
    assert (clf.predict(X) == Y).mean() > 0.7


def test_regression_single_and_multi_output(small_digits):
    X, y = small_digits
    reg = CNNRegressor(**{**TINY, "max_epochs": 30, "early_stopping": False}).fit(
        X, y.astype(float)
    )
    assert reg.predict(X).shape == (len(X),)
    assert reg.score(X, y) > 0.5
    Y = np.column_stack([y, -y]).astype(float)
    reg2 = CNNRegressor(**TINY).fit(X, Y)
    assert reg2.predict(X).shape == (len(X), 2)


def test_regressor_standardises_targets(small_digits, heldout_digits, tmp_path):
    import skcnn

    X, y = small_digits
    Xt, yt = heldout_digits
    big = 1000.0 * y + 5000.0  # unscaled targets: mean 9500, std ~2900
    params = {**TINY, "max_epochs": 15, "random_state": 0}
    scaled = CNNRegressor(**params).fit(X, big)
    raw = CNNRegressor(**params, scale_target=False).fit(X, big)
    np.testing.assert_allclose(scaled.target_mean_, [big.mean()], rtol=1e-6)
    np.testing.assert_allclose(scaled.target_scale_, [big.std()], rtol=1e-5)
    assert raw.target_mean_.tolist() == [0.0] and raw.target_scale_.tolist() == [1.0]
    r2_scaled = scaled.score(Xt, 1000.0 * yt + 5000.0)
    r2_raw = raw.score(Xt, 1000.0 * yt + 5000.0)
    assert r2_scaled > 0.5 and r2_scaled > r2_raw + 0.3
    # predictions are in the units of y, also after a save / load
    restored = skcnn.load(scaled.save(tmp_path / "reg.safetensors"))
    np.testing.assert_allclose(restored.predict(Xt), scaled.predict(Xt), rtol=1e-6)
    # partial_fit keeps the standardisation of the first fit
    before = scaled.target_mean_.copy()
    scaled.partial_fit(X[:50], big[:50] * 2)
    np.testing.assert_array_equal(scaled.target_mean_, before)
    # multi-output: one mean and scale per output
    Y = np.column_stack([y, 100.0 * y]).astype(float)
    multi = CNNRegressor(**TINY).fit(X, Y)
    np.testing.assert_allclose(multi.target_scale_, Y.std(0), rtol=1e-5)


def test_class_and_sample_weight_change_the_model(small_digits, heldout_digits):
    X, y = small_digits
    base = CNNClassifier(**TINY).fit(X, y).predict_proba(X)
    weighted = CNNClassifier(**TINY, class_weight={0: 20.0}).fit(X, y).predict_proba(X)
    assert weighted[:, 0].mean() > base[:, 0].mean()
    sw = np.where(y == 1, 20.0, 1.0)
    sw_proba = CNNClassifier(**TINY).fit(X, y, sample_weight=sw).predict_proba(X)
    assert sw_proba[:, 1].mean() > base[:, 1].mean()
    balanced = CNNClassifier(**TINY, class_weight="balanced").fit(X, y)
    assert balanced.score(*heldout_digits) > 0.8


def test_reproducible_for_fixed_random_state(small_digits):
    X, y = small_digits
    a = CNNClassifier(**TINY, dropout=0.5).fit(X, y).predict_proba(X)
    b = CNNClassifier(**TINY, dropout=0.5).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = (
        CNNClassifier(**{**TINY, "random_state": 1}, dropout=0.5)
        .fit(X, y)
        .predict_proba(X)
    )
    assert not np.array_equal(a, c)


def test_early_stopping_restores_best_weights(small_digits):
    X, y = small_digits
    clf = CNNClassifier(
        **{**TINY, "max_epochs": 60, "lr": 0.05}, n_iter_no_change=3
    ).fit(X, y)
    assert clf.n_iter_ < 60
    losses = [h["valid_loss"] for h in clf.history_]
    assert clf.best_epoch_ == int(np.argmin(losses)) + 1
    assert clf.n_iter_ == clf.best_epoch_ + 3


def _stopped_after(clf):
    """Epochs trained after the one early stopping kept."""
    return clf.n_iter_ - clf.best_epoch_


@pytest.mark.parametrize("monitor", ["smoothed_loss", "accuracy"])
def test_early_stopping_monitors(small_digits, monitor):
    X, y = small_digits
    clf = CNNClassifier(
        **{**TINY, "max_epochs": 60, "lr": 0.05, "monitor": monitor},
        n_iter_no_change=3,
    ).fit(X, y)
    assert clf.n_iter_ < 60 and _stopped_after(clf) == 3
    if monitor == "accuracy":
        acc = [h["valid_acc"] for h in clf.history_]
        loss = [h["valid_loss"] for h in clf.history_]
        # the best accuracy is kept, and among its epochs the lowest loss
        tied = [i for i, a in enumerate(acc) if a == max(acc)]
        assert clf.best_epoch_ - 1 == min(tied, key=loss.__getitem__)
    else:
        raw = [h["valid_loss"] for h in clf.history_]
        smooth = [h["valid_loss_smooth"] for h in clf.history_]
        assert smooth[0] == raw[0]
        assert smooth[1] == pytest.approx(0.4 * raw[1] + 0.6 * raw[0])
        assert clf.best_epoch_ == int(np.argmin(smooth)) + 1


def test_patience_as_fraction_and_tol(small_digits):
    X, y = small_digits
    params = {**TINY, "max_epochs": 40, "lr": 0.05}
    frac = CNNClassifier(**params, n_iter_no_change=0.1).fit(X, y)
    assert _stopped_after(frac) == 4  # ceil(0.1 * 40)
    # a tolerance larger than any loss change: only the first epoch counts
    tol = CNNClassifier(**params, n_iter_no_change=2, tol=100.0).fit(X, y)
    assert tol.best_epoch_ == 1 and tol.n_iter_ == 3


def test_auto_monitor_smooths_augmented_fits(small_digits):
    X, y = small_digits
    params = {**TINY, "monitor": "auto", "max_epochs": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0.3: no FutureWarning about 0.2's change
        plain = CNNClassifier(**params).fit(X, y)
        assert "valid_loss_smooth" not in plain.history_[-1]
        for extra in ({"augment": {"rotation": 10}}, {"mixup": 0.2}):
            aug = CNNClassifier(**params, **extra).fit(X, y)
            assert "valid_loss_smooth" in aug.history_[-1]
        # an explicit monitor is kept
        kept = CNNClassifier(**{**params, "monitor": "loss"}, mixup=0.2).fit(X, y)
    assert "valid_loss_smooth" not in kept.history_[-1]


def test_a_default_cnn_fit_is_quiet(small_digits):
    """The README's first example: no FutureWarning about skcnn 0.2's changed
    defaults any more (0.3), and uint8 pixels give no scale warning."""
    X, y = small_digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CNNClassifier(max_epochs=1, device="cpu", random_state=0).fit(X[:100], y[:100])


def test_accuracy_monitor_needs_a_classifier(small_digits):
    X, y = small_digits
    with pytest.raises(ValueError, match="monitor='accuracy' needs a classifier"):
        CNNRegressor(**{**TINY, "monitor": "accuracy"}).fit(X, y.astype(float))


def test_no_validation_split(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**TINY, validation_fraction=0).fit(X, y)
    assert "valid_loss" not in clf.history_[-1]
    assert clf.history_[-1]["train_batch_count"] == int(np.ceil(len(X) / 32))


def test_partial_fit_and_warm_start(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**TINY)
    clf.partial_fit(X, y, classes=np.arange(10))
    assert clf.n_iter_ == 1
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 2
    warm = CNNClassifier(**{**TINY, "early_stopping": False}, warm_start=True).fit(X, y)
    first = warm.n_iter_
    warm.fit(X, y)
    assert warm.n_iter_ == first + TINY["max_epochs"]


def test_clone_and_pickle(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**TINY).fit(X, y)
    fresh = clone(clf)
    assert not hasattr(fresh, "net_") and not hasattr(fresh, "classes_")
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_predict_checks_layout(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**TINY).fit(X, y)
    with pytest.raises(ValueError, match="fitted on 8x8 images with 1 channel"):
        clf.predict(np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(2, 10, 10\) does not hold .* 8x8 images"):
        clf.predict(np.zeros((2, 10, 10), dtype=np.uint8))


def test_grid_search_parallel_and_randomized(small_digits):
    X, y = small_digits
    grid = GridSearchCV(
        CNNClassifier(**TINY), {"dropout": [0.0, 0.3]}, cv=2, n_jobs=2
    ).fit(X, y)
    assert grid.best_score_ > 0.6  # mean of the held-out folds
    assert len(grid.cv_results_["params"]) == 2
    rnd = RandomizedSearchCV(
        CNNClassifier(**TINY),
        {"lr": loguniform(1e-4, 1e-1)},
        n_iter=2,
        cv=2,
        random_state=0,
    ).fit(X, y)
    assert 1e-4 <= rnd.best_params_["lr"] <= 1e-1


def test_in_pipeline(small_digits, heldout_digits):
    X, y = small_digits
    pipe = make_pipeline(
        FunctionTransformer(lambda a: a.reshape(len(a), -1)),
        CNNClassifier(**TINY, image_shape=(8, 8)),
    )
    assert pipe.fit(X, y).score(*heldout_digits) > 0.8


@pytest.mark.parametrize(
    "optimizer, expected",
    [
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
        ("rmsprop", torch.optim.RMSprop),
        (torch.optim.Adagrad, torch.optim.Adagrad),
    ],
)
def test_optimizers_are_used_and_train(small_digits, optimizer, expected):
    X, y = small_digits
    clf = CNNClassifier(
        **{**TINY, "max_epochs": 8},
        optimizer=optimizer,
        activation="elu",
        weight_decay=1e-4,
        validation_fraction=0,
    ).fit(X, y)
    opt = clf.net_.optimizer_
    assert type(opt) is expected
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(1e-4)
    if expected is torch.optim.SGD:
        assert opt.param_groups[0]["momentum"] == 0.9
    assert any(isinstance(m, torch.nn.ELU) for m in clf.module_.modules())
    losses = [h["train_loss"] for h in clf.history_]
    assert losses[-1] < 0.7 * losses[0]


def test_unknown_optimizer_and_incompatible_optimizer_class(small_digits):
    X, y = small_digits
    with pytest.raises(ValueError, match="'optimizer' parameter of CNNClassifier"):
        CNNClassifier(**TINY, optimizer="lbfgs2").fit(X[:64], y[:64])

    class NoWeightDecay(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3):
            super().__init__(params, {"lr": lr})

    with pytest.raises(ValueError, match="cannot take the arguments"):
        CNNClassifier(**TINY, optimizer=NoWeightDecay).fit(X[:64], y[:64])


def test_augmentation_only_changes_training(small_digits):
    X, y = small_digits
    plain = CNNClassifier(**TINY).fit(X, y)
    aug = CNNClassifier(
        **TINY, augment={"rotation": 10, "shift": 0.1, "noise": 0.05}
    ).fit(X, y)
    assert not np.allclose(plain.predict_proba(X), aug.predict_proba(X))
    # prediction is deterministic: no augmentation at predict time
    np.testing.assert_array_equal(aug.predict_proba(X), aug.predict_proba(X))


def test_bf16_on_cpu(small_digits, heldout_digits):
    X, y = small_digits
    clf = CNNClassifier(**TINY, precision="bf16").fit(X, y)
    assert clf.net_.amp_dtype is torch.bfloat16
    assert clf.score(*heldout_digits) > 0.8


@pytest.mark.slow
def test_torch_compile_trains_saves_and_loads(small_digits, tmp_path):
    import skcnn

    X, y = small_digits
    clf = CNNClassifier(**{**TINY, "max_epochs": 2}, compile=True).fit(X, y)
    assert type(clf.net_.module_).__name__ == "OptimizedModule"
    assert type(clf.module_).__name__ == "ConvNet"
    clf.save(tmp_path / "m.safetensors")
    restored = skcnn.load(tmp_path / "m.safetensors")
    np.testing.assert_allclose(
        restored.predict_proba(X[:20]), clf.predict_proba(X[:20]), atol=1e-5
    )


def test_defaults_train_on_a_small_image_set():
    # 150 training faces: 'auto' batch size keeps several steps per epoch, so
    # batch-norm statistics settle before early stopping judges the net.
    from sklearn.model_selection import train_test_split

    from skcnn.datasets import load_lfw

    X, y = load_lfw()
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    clf = CNNClassifier(random_state=0, device="cpu").fit(Xtr, ytr)
    assert clf.batch_size_ == 16
    assert clf.score(Xte, yte) >= 0.9
