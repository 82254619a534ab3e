"""The training recipe: LR schedules, label smoothing, mixup / CutMix, TTA."""

import numpy as np
import pytest
import torch

import skcnn
from skcnn import CNNClassifier, CNNRegressor
from skcnn._engine.recipe import EpochFactor, MixBatch

from .conftest import TINY


def _lrs(est):
    return [h["event_lr"] for h in est.history_]


@pytest.mark.parametrize(
    "kind, warmup, expected",
    [
        # onecycle: lr/25 -> lr over 30% of 10 epochs (3), then cosine down
        ("onecycle", 0, [0.04, 0.36, 0.68, 1.0]),
        ("cosine", 2, [1 / 3, 2 / 3, 1.0]),
    ],
)
def test_schedules_follow_their_shape(small_digits, kind, warmup, expected):
    X, y = small_digits
    clf = CNNClassifier(
        **{**TINY, "max_epochs": 10, "early_stopping": False, "lr_schedule": kind},
        warmup_epochs=warmup,
    ).fit(X, y)
    lrs = np.array(_lrs(clf)) / clf.lr
    np.testing.assert_allclose(lrs[: len(expected)], expected, rtol=1e-6)
    assert lrs[-1] < 0.05  # annealed by the last epoch
    assert np.argmax(lrs) == len(expected) - 1


def test_plateau_halves_when_the_validation_loss_stalls(small_digits):
    X, y = small_digits
    clf = CNNClassifier(
        **{
            **TINY,
            "max_epochs": 25,
            "early_stopping": False,
            "lr": 0.05,
            "lr_schedule": "plateau",
        },
    ).fit(X, y)
    lrs = np.array(_lrs(clf))
    assert np.all(np.diff(lrs) <= 0)  # only ever lowered
    assert set(np.round(lrs / 0.05, 6)) <= {0.5**k for k in range(12)}


def test_partial_fit_and_warm_start_continue_the_schedule(small_digits, tmp_path):
    X, y = small_digits
    params = {**TINY, "max_epochs": 4, "early_stopping": False}
    clf = CNNClassifier(**{**params, "lr_schedule": "cosine"})
    for _ in range(3):
        clf.partial_fit(X, y, classes=np.unique(y))
    factor = EpochFactor("cosine", 4)
    np.testing.assert_allclose(
        _lrs(clf), [clf.lr * factor(e) for e in range(3)], rtol=1e-6
    )
    # a loaded model (a fresh optimizer) continues too
    loaded = skcnn.load(clf.save(tmp_path / "m.safetensors"))
    loaded.partial_fit(X, y)
    assert _lrs(loaded)[-1] == pytest.approx(clf.lr * factor(3))
    # warm_start: the next fit is a new cycle of max_epochs
    warm = CNNClassifier(**{**params, "lr_schedule": "onecycle"}, warm_start=True)
    warm.fit(X, y)
    warm.fit(X, y)
    lrs = _lrs(warm)
    assert len(lrs) == 8 and lrs[4] == pytest.approx(lrs[0])


def test_schedule_epochs_spans_several_fits(small_digits):
    X, y = small_digits
    clf = CNNClassifier(
        **{**TINY, "max_epochs": 2, "early_stopping": False, "lr_schedule": "cosine"},
        schedule_epochs=6,
        warm_start=True,
    )
    for _ in range(3):
        clf.fit(X, y)
    factor = EpochFactor("cosine", 6)
    np.testing.assert_allclose(
        _lrs(clf), [clf.lr * factor(e) for e in range(6)], rtol=1e-6
    )


def test_label_smoothing(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**TINY, label_smoothing=0.2).fit(X, y)
    assert clf.net_.criterion_.label_smoothing == 0.2
    binary = CNNClassifier(**TINY, label_smoothing=0.2).fit(X, y > 4)
    net = binary.net_
    logits = torch.tensor([[8.0], [-8.0]])
    target = torch.tensor([[1.0], [0.0]])
    smoothed = net.get_loss(logits, target)
    net.label_smoothing = 0.0
    # a confident, right prediction costs more with smoothed targets
    assert smoothed > 10 * net.get_loss(logits, target)
    # the smoothed model is less confident
    plain = CNNClassifier(**TINY).fit(X, y > 4)
    assert binary.predict_proba(X).max(1).mean() < plain.predict_proba(X).max(1).mean()


def test_mix_batch():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    mixed, perm, lam = MixBatch(mixup=0.4, seed=0)(x)
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[perm])
    cut, perm, lam = MixBatch(cutmix=1.0, seed=3)(x)
    pasted = (cut != x).float().mean().item()
    # lam is the share of each image that stayed its own
    assert pasted <= 1 - lam + 1e-6 and 0 <= lam <= 1
    again = MixBatch(cutmix=1.0, seed=3)(x)
    torch.testing.assert_close(again[0], cut)


def test_mixed_loss_equals_the_loss_on_mixed_targets_for_sigmoids():
    bce = torch.nn.BCEWithLogitsLoss()
    p = torch.randn(6, 3)
    y1, y2 = (torch.rand(6, 3) > 0.5).float(), (torch.rand(6, 3) > 0.5).float()
    lam = 0.3
    torch.testing.assert_close(
        lam * bce(p, y1) + (1 - lam) * bce(p, y2), bce(p, lam * y1 + (1 - lam) * y2)
    )


@pytest.mark.parametrize("target", ["multiclass", "binary", "multilabel", "regression"])
def test_mixup_and_cutmix_train_every_target_type(small_digits, heldout_digits, target):
    X, y = small_digits
    Xt, yt = heldout_digits
    make = {
        "multiclass": lambda v: v,
        "binary": lambda v: v > 4,
        "multilabel": lambda v: np.column_stack([v % 2 == 0, v > 4]).astype(int),
        "regression": lambda v: v.astype(float),
    }[target]
    cls = CNNRegressor if target == "regression" else CNNClassifier
    extra = {"class_weight": "balanced"} if target in ("multiclass", "binary") else {}
    params = {**TINY, "max_epochs": 12}
    for mix in ({"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.2, "cutmix": 1.0}):
        est = cls(**params, **mix, **extra).fit(X, make(y))
        score = est.score(Xt, make(yt))
        floor = {"multiclass": 0.5, "binary": 0.7, "multilabel": 0.3, "regression": 0.3}
        assert score > floor[target], (mix, score)


def test_tta_averages_views(small_digits, heldout_digits):
    X, y = small_digits
    Xt = heldout_digits[0][:50]
    clf = CNNClassifier(**TINY, augment={"shift": 0.1}).fit(X, y)
    plain = clf.predict_proba(Xt)
    clf.set_params(tta=3)
    tta = clf.predict_proba(Xt)
    assert not np.allclose(tta, plain)
    np.testing.assert_allclose(tta.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(tta, clf.predict_proba(Xt))  # repeatable
    # each image's views depend on the image only, not on the rest of the call
    np.testing.assert_allclose(clf.predict_proba(Xt[10:20]), tta[10:20], atol=1e-6)
    np.testing.assert_array_equal(clf.predict(Xt), clf.classes_[tta.argmax(1)])
    # the views are the plain images and 3 shifted copies, averaged
    from skcnn._data import prepare_images
    from skcnn._engine.recipe import tta_views

    data, _, _ = prepare_images(clf, Xt, reset=False)
    views = [clf._proba(clf.net_.predict_logits(data))] + [
        clf._proba(clf.net_.predict_logits(data, transform=v))
        for v in tta_views(3, clf.augment, clf.random_state)
    ]
    np.testing.assert_allclose(tta, np.mean(views, 0), rtol=1e-6)
    # a list of specs: one view each
    clf.set_params(tta=[{"rotation": 10}, {"shift": 0.05}])
    assert clf.predict_proba(Xt).shape == plain.shape
    reg = CNNRegressor(**TINY, tta=2).fit(X, y.astype(float))
    assert reg.predict(Xt).shape == (50,)


@pytest.mark.parametrize(
    "param, value",
    [
        ("lr_schedule", "linear"),
        ("warmup_epochs", -1),
        ("mixup", -0.5),
        ("cutmix", "yes"),
        ("label_smoothing", 1.0),
        ("tta", -2),
    ],
)
def test_bad_recipe_parameters(small_digits, param, value):
    X, y = small_digits
    with pytest.raises(ValueError, match=param):
        CNNClassifier(**{**TINY, param: value}).fit(X, y)
