"""The robustness profile: controlled shifts and the scores under them."""

import matplotlib
import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from skcnn import CNNClassifier
from skcnn.baselines import HOGTransformer
from skcnn.robustness import (
    SHIFT_KINDS,
    plot_shift_profile,
    shift_images,
    shift_profile,
    write_profile_csv,
)

from .conftest import TINY

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def hog_svc(small_digits):
    X, y = small_digits
    return make_pipeline(HOGTransformer(), SVC()).fit(X, y)


@pytest.mark.parametrize("kind", list(SHIFT_KINDS))
def test_each_kind_grows_with_severity(kind, heldout_digits):
    X = heldout_digits[0][:60]
    diffs = [
        np.abs(shift_images(X, kind, s).astype(float) - X).mean() for s in (0, 1, 2, 3)
    ]
    assert diffs[0] == 0
    assert diffs[1] > 0
    assert diffs[1] < diffs[2] < diffs[3]


@pytest.mark.parametrize("kind", list(SHIFT_KINDS))
def test_layouts_and_dtypes_are_kept(kind):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 12, 10), dtype=np.uint8)
    shifted = shift_images(gray, kind, 2)
    assert shifted.shape == gray.shape and shifted.dtype == np.uint8
    # the same images, channels-last floats / channels-first / flattened
    rgb_last = np.repeat(gray[..., None], 3, -1).astype(np.float32) / 255
    out_last = shift_images(rgb_last, kind, 2)
    assert out_last.shape == rgb_last.shape and out_last.dtype == np.float32
    out_first = shift_images(rgb_last.transpose(0, 3, 1, 2), kind, 2)
    np.testing.assert_allclose(out_first.transpose(0, 2, 3, 1), out_last, atol=1e-6)
    flat = shift_images(gray.reshape(5, -1), kind, 2, image_shape=(12, 10))
    np.testing.assert_array_equal(flat.reshape(gray.shape), shifted)
    # values stay in the input's range
    assert out_last.min() >= 0 and out_last.max() <= 1


def test_seeded():
    X = np.random.default_rng(1).random((8, 16, 16))
    a = shift_images(X, "occlusion", 2, random_state=3)
    np.testing.assert_array_equal(a, shift_images(X, "occlusion", 2, random_state=3))
    assert not np.array_equal(a, shift_images(X, "occlusion", 2, random_state=4))


def test_translation_moves_content():
    X = np.zeros((1, 20, 20))
    X[0, 8:12, 8:12] = 1
    out = shift_images(X, "translation", 3)  # 0.24 of the side: ~5 px
    ys, xs = np.nonzero(X[0])
    yo, xo = np.nonzero(out[0] > 0.5)
    moved = np.hypot(yo.mean() - ys.mean(), xo.mean() - xs.mean())
    assert 3.5 < moved < 6.5


def test_profile_of_a_baseline(hog_svc, heldout_digits):
    X, y = heldout_digits
    X, y = X[:150], y[:150]
    p = shift_profile(hog_svc, X, y, kinds=["rotation", "noise"], scoring="f1_macro")
    assert set(p) == {"kind", "severity", "magnitude", "score"}
    assert p["kind"] == ["rotation"] * 4 + ["noise"] * 4
    assert p["severity"] == [0.0, 1.0, 2.0, 3.0] * 2
    assert p["magnitude"][:4] == [0.0, 10.0, 20.0, 30.0]
    clean = f1_score(y, hog_svc.predict(X), average="macro")
    assert p["score"][0] == pytest.approx(clean)
    rot = p["score"][:4]
    assert rot[3] < rot[0] - 0.2  # 30 degrees hurts HOG a lot
    # each score is that of the shifted images
    Xs = shift_images(X, "rotation", 2)
    assert p["score"][2] == pytest.approx(
        f1_score(y, hog_svc.predict(Xs), average="macro")
    )


def test_profile_of_several_models_including_a_cnn(
    hog_svc, small_digits, heldout_digits
):
    X, y = small_digits
    cnn = CNNClassifier(**TINY).fit(X, y)
    Xt, yt = heldout_digits[0][:100], heldout_digits[1][:100]
    p = shift_profile(
        {"hog": hog_svc, "cnn": cnn}, Xt, yt, kinds=["scale"], severities=[2]
    )
    assert p["model"] == ["hog", "cnn", "hog", "cnn"]
    assert p["severity"] == [0.0, 0.0, 2.0, 2.0]
    assert p["score"][1] == pytest.approx(cnn.score(Xt, yt))  # default: est.score
    assert p["score"][3] == pytest.approx(cnn.score(shift_images(Xt, "scale", 2), yt))


def test_profile_csv_and_plot(hog_svc, heldout_digits, tmp_path):
    X, y = heldout_digits[0][:60], heldout_digits[1][:60]
    p = shift_profile({"hog": hog_svc}, X, y, severities=[1])
    write_profile_csv(p, tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "model,kind,severity,magnitude,score"
    assert len(lines) == 1 + 2 * len(SHIFT_KINDS)
    fig = plot_shift_profile(p, ylabel="macro F1")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(SHIFT_KINDS)
    assert all(ax.get_title() for ax in visible)
    assert visible[0].get_ylabel() == "macro F1"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kinds": ["swirl"]}, "Unknown shift kind"),
        ({"severities": [7]}, r"severities must be numbers in \[0, 5\]"),
        ({"severities": ["high"]}, "severities must be numbers"),
    ],
)
def test_bad_options(hog_svc, heldout_digits, kwargs, match):
    X, y = heldout_digits[0][:10], heldout_digits[1][:10]
    with pytest.raises(ValueError, match=match):
        shift_profile(hog_svc, X, y, **kwargs)


def test_bad_input(hog_svc, heldout_digits):
    X, y = heldout_digits[0][:10], heldout_digits[1][:10]
    with pytest.raises(ValueError, match="X has 10 samples but y has 9"):
        shift_profile(hog_svc, X, y[:9])
    with pytest.raises(ValueError, match="Shifts need images"):
        shift_images(np.zeros((4, 30)), "blur", 1)
