"""What a model can do for populations it was not trained on (issue 36):
batch-norm statistics re-estimated on unlabelled images (``adapt_bn``),
WiSE-FT (``wise_alpha``, ``with_wise_alpha``), augmentation presets, and the
font populations the benchmark selects and reports on."""

import numpy as np
import pytest
import torch

from skcnn import CNNClassifier, DenseNetClassifier, PretrainedClassifier
from skcnn.augmentation import PRESETS, Augment, make_augment
from skcnn.datasets import (
    FONT_FILES,
    OTHER_FONT_FILES,
    load_digits_external,
    render_font_digits,
)

from .conftest import TINY, TINY_DN
from .test_lpft import CUT, _net


def _norms(model):
    return [
        m
        for m in model.module_.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]


def test_adapt_bn_takes_the_statistics_of_the_new_images(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**{**TINY, "batch_norm": True}).fit(X, y)
    weights = {k: v.clone() for k, v in clf.module_.named_parameters()}
    dark = (X // 3).astype(np.uint8)  # another population: a third of the ink
    first = _norms(clf)[0]
    before = first.running_mean.clone()
    assert clf.adapt_bn(dark) is clf
    # the first batch norm sees the convolution of the images: its mean is
    # the batch mean of that convolution over all of `dark`
    conv = next(m for m in clf.module_.modules() if isinstance(m, torch.nn.Conv2d))
    assert not torch.allclose(first.running_mean, before)
    with torch.no_grad():
        out = conv(torch.as_tensor(dark, dtype=torch.float32)[:, None] / 255)
    assert torch.allclose(first.running_mean, out.mean((0, 2, 3)), atol=1e-4)
    # weights do not move, momentum is restored, the model is in eval mode
    for k, v in clf.module_.named_parameters():
        assert torch.equal(v, weights[k])
    assert first.momentum == 0.1 and not clf.module_.training
    assert clf.predict(dark).shape == (len(X),)


def test_adapt_bn_is_repeatable_and_subset_order_free(small_digits):
    X, y = small_digits
    import copy

    a = CNNClassifier(**{**TINY, "batch_norm": True}).fit(X, y)
    b = copy.deepcopy(a)
    a.adapt_bn(X[:100])
    b.adapt_bn(X[:100][::-1])  # a cumulative average: order does not matter
    for na, nb in zip(_norms(a), _norms(b)):
        assert torch.allclose(na.running_mean, nb.running_mean, atol=1e-5)
        assert torch.allclose(na.running_var, nb.running_var, atol=1e-4)


def test_adapt_bn_errors(small_digits):
    X, y = small_digits
    with pytest.raises(Exception, match="fitted|fit"):
        CNNClassifier(**TINY).adapt_bn(X)
    plain = CNNClassifier(**{**TINY, "batch_norm": False}).fit(X, y)
    with pytest.raises(ValueError, match="no batch-norm layer"):
        plain.adapt_bn(X)
    bn = CNNClassifier(**{**TINY, "batch_norm": True}).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 images"):
        bn.adapt_bn(X[:1])
    with pytest.raises(ValueError):
        bn.adapt_bn(np.zeros((5, 9, 9), dtype=np.uint8))  # not the fitted shape


def test_wise_alpha_interpolates_between_the_probe_and_the_fine_tuned(small_digits):
    X, y = small_digits
    X, y = X[:150], y[:150]
    kw = dict(CUT, max_epochs=3, lr=1e-2, early_stopping=False, random_state=0)
    kw["num_threads"] = 1  # fits that do not follow the load: the same weights
    kw["validation_fraction"] = None  # both fits see the same images
    end = PretrainedClassifier(_net(), **kw).fit(X, y)
    # the weights the fine-tuning started from: the probe, nothing trained after
    start = PretrainedClassifier(_net(), finetune_depth=0, **kw).fit(X, y)
    assert start.n_iter_ == 0
    half = PretrainedClassifier(_net(), wise_alpha=0.5, **kw).fit(X, y)
    s0, s1, sh = (m.module_.state_dict() for m in (start, end, half))
    moved = [
        k for k in s1 if s1[k].is_floating_point() and not torch.equal(s0[k], s1[k])
    ]
    assert moved  # fine-tuning changed the weights
    for k in moved:
        assert torch.allclose(sh[k], (s0[k] + s1[k]) / 2, atol=1e-5)
    # with_wise_alpha: the same interpolations of one fit, without training
    assert end.with_wise_alpha(0.5).wise_alpha == 0.5
    for k in moved:
        assert torch.allclose(
            end.with_wise_alpha(0.5).module_.state_dict()[k], sh[k], atol=1e-5
        )
        assert torch.allclose(end.with_wise_alpha(0.0).module_.state_dict()[k], s0[k])
    back = half.with_wise_alpha(1.0)
    for k in moved:
        assert torch.allclose(back.module_.state_dict()[k], s1[k], atol=1e-6)
    # the original is left as it was
    for k in moved:
        assert torch.equal(end.module_.state_dict()[k], s1[k])
    np.testing.assert_array_equal(
        end.with_wise_alpha(1.0).predict_proba(X), end.predict_proba(X)
    )


def test_wise_alpha_checks(small_digits, tmp_path):
    X, y = small_digits
    with pytest.raises(ValueError, match="wise_alpha"):
        PretrainedClassifier(_net(), wise_alpha=1.5, **CUT).fit(X[:60], y[:60])
    clf = PretrainedClassifier(_net(), max_epochs=1, **CUT).fit(X[:60], y[:60])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clf.with_wise_alpha(2)
    import skcnn

    # DenseNetClassifier has it too; a model file keeps only the fitted weights
    dn = DenseNetClassifier(**TINY_DN, wise_alpha=0.5).fit(X[:100], y[:100])
    loaded = skcnn.load(dn.save(tmp_path / "m.safetensors"))
    assert loaded.wise_alpha == 0.5
    np.testing.assert_allclose(loaded.predict_proba(X), dn.predict_proba(X), atol=1e-6)
    with pytest.raises(ValueError, match="not fitted in this session"):
        loaded.with_wise_alpha(0.5)


def test_augment_presets():
    assert make_augment(True) == Augment(**PRESETS["geometric"])
    drawing = make_augment("drawing")
    assert drawing.elastic and drawing.stroke and drawing.shear
    with pytest.raises(ValueError, match="Unknown augment preset 'handwriting'"):
        make_augment("handwriting")
    with pytest.raises(ValueError, match="augment"):
        CNNClassifier(**{**TINY, "augment": "handwriting"}).fit(
            np.zeros((20, 8, 8), np.uint8), np.arange(20) % 2
        )


def test_a_preset_trains_and_saves(small_digits, tmp_path):
    import skcnn

    X, y = small_digits
    clf = CNNClassifier(**{**TINY, "augment": "drawing"}).fit(X, y)
    loaded = skcnn.load(clf.save(tmp_path / "m.safetensors"))
    assert loaded.augment == "drawing"
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_font_populations():
    X, y = render_font_digits(3, random_state=0)
    bundled, labels = load_digits_external()
    # the bundled set is this function's output at its defaults
    np.testing.assert_array_equal(X[:3], bundled[:3])
    assert not set(FONT_FILES) & set(OTHER_FONT_FILES)
    other, _ = render_font_digits(3, random_state=0, fonts=OTHER_FONT_FILES)
    assert not np.array_equal(other, X)
    framed, ylab = render_font_digits(3, random_state=0, frame="28px")
    assert framed.shape == (30, 8, 8) and framed.dtype == np.uint8
    np.testing.assert_array_equal(ylab, np.repeat(np.arange(10), 3))
    # a 20 px glyph in a 28 px frame: the border of the 8x8 image is empty
    # more often than in the UCI framing, and there are gray levels between
    # the 17 counts of the UCI reduction
    assert (framed[:, 0, :] == 0).mean() > (X[:, 0, :] == 0).mean()
    counts = np.round(np.arange(17) * 255 / 16)
    assert not np.isin(framed, counts).all()
    with pytest.raises(ValueError, match="frame"):
        render_font_digits(1, frame="mnist")


def test_surgical_fine_tuning_trains_the_first_stages_only(small_digits):
    X, y = small_digits
    kw = dict(CUT, max_epochs=2, lr=1e-2, early_stopping=False, random_state=0)
    kw.update(validation_fraction=None, layer=-1)  # both stages kept
    start = PretrainedClassifier(_net(), finetune_depth=0, **kw).fit(X[:150], y[:150])
    first = PretrainedClassifier(_net(), finetune_depth=-1, **kw).fit(X[:150], y[:150])
    assert first.finetune_depth_ == -1
    s0, s1 = start.module_.state_dict(), first.module_.state_dict()
    # the first stage (the conv and its batch norm) trained; the second did not
    assert not torch.equal(s0["body.0.0.weight"], s1["body.0.0.weight"])
    assert torch.equal(s0["body.1.0.weight"], s1["body.1.0.weight"])
    with pytest.raises(ValueError, match="finetune_depth"):
        PretrainedClassifier(_net(), finetune_depth=1.5, **kw).fit(X[:50], y[:50])
