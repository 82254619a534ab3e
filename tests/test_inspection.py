import numpy as np
import pytest

from skcnn import CNNClassifier, DenseNetClassifier
from skcnn.inspection import (
    conv_kernels,
    feature_maps,
    plot_feature_maps,
    plot_kernels,
    plot_learning_curves,
    plot_saliency,
    saliency,
    summary,
)

from .conftest import TINY_DN

KERAS = dict(
    padding="valid", batch_norm=False, dropout=0.0, device="cpu", random_state=0
)


@pytest.fixture(scope="module")
def mnist_like_net():
    rng = np.random.RandomState(0)
    X = (rng.rand(40, 28, 28) * 255).astype(np.uint8)
    y = np.arange(40) % 10
    clf = CNNClassifier(
        conv_filters=(32, 32), dense_units=(64,), max_epochs=3, **KERAS
    ).fit(X, y)
    return clf, X


def test_keras_mnist_count_and_summary_text(mnist_like_net):
    clf, _ = mnist_like_net
    s = summary(clf)
    assert s.total_params == 61_482 and s.trainable_params == 61_482
    text = str(s)
    assert "Total params: 61,482" in text
    assert "(None, 32, 26, 26)" in text and "(None, 800)" in text


def test_keras_cats_vs_dogs_count():
    X = np.zeros((4, 150, 150, 3), np.float32)
    y = np.array([0, 1, 0, 1])
    clf = CNNClassifier(
        conv_filters=(32, 64, 128, 128),
        dense_units=(512,),
        max_epochs=1,
        validation_fraction=0,
        **KERAS,
    ).fit(X, y)
    assert summary(clf).total_params == 3_453_121


def test_batch_norm_counted_as_keras():
    X = np.zeros((8, 8, 8), np.float32)
    y = np.arange(8) % 2
    clf = CNNClassifier(
        conv_filters=(4,),
        dense_units=(),
        max_epochs=1,
        validation_fraction=0,
        device="cpu",
    ).fit(X, y)
    s = summary(clf)
    assert s.non_trainable_params == 2 * 4  # moving mean and variance
    assert s.trainable_params == 4 * 9 + 2 * 4 + (4 * 16 + 1)


def test_kernels_maps_saliency_shapes(mnist_like_net):
    clf, X = mnist_like_net
    assert conv_kernels(clf, layer=0).shape == (32, 1, 3, 3)
    assert conv_kernels(clf, layer="features.1.0").shape == (32, 32, 3, 3)
    assert feature_maps(clf, X[:2], layer=0).shape == (2, 32, 26, 26)
    for method in ["gradient", "smoothgrad", "integrated_gradients"]:
        maps = saliency(clf, X[:3], method=method, n_samples=3, steps=4)
        assert maps.shape == (3, 28, 28) and np.isfinite(maps).all() and maps.max() > 0
    assert saliency(clf, X[:2], target=[3, 4]).shape == (2, 28, 28)
    with pytest.raises(ValueError, match="out of range"):
        conv_kernels(clf, layer=7)


def test_plots_write_pngs(mnist_like_net, tmp_path):
    clf, X = mnist_like_net
    for name, fig in {
        "lc": plot_learning_curves(clf),
        "k": plot_kernels(clf),
        "fm": plot_feature_maps(clf, X[0]),
        "sal": plot_saliency(clf, X[:3]),
    }.items():
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        assert path.stat().st_size > 1000


def test_image_plots_label_each_panel_and_have_a_colour_bar(mnist_like_net):
    clf, X = mnist_like_net
    expected = {
        "weight": (plot_kernels(clf), "filter 0"),
        "activation": (plot_feature_maps(clf, X[0]), "map 0"),
        "saliency": (plot_saliency(clf, X[:3]), f"predicted {clf.predict(X[:1])[0]}"),
    }
    for bar_label, (fig, first_title) in expected.items():
        bars = [a for a in fig.axes if a.get_ylabel() == bar_label]
        assert len(bars) == 1, bar_label
        titles = [a.get_title() for a in fig.axes if a.get_title()]
        assert titles[0] == first_title
    fig = plot_learning_curves(clf, title="cnn: learning curves")
    assert fig._suptitle.get_text() == "cnn: learning curves"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "early-stopping split" in legend


def test_densenet_summary(small_digits):
    X, y = small_digits
    clf = DenseNetClassifier(**{**TINY_DN, "max_epochs": 1}).fit(X[:50], y[:50])
    s = summary(clf)
    assert s.total_params == sum(p.numel() for p in clf.module_.parameters()) + sum(
        b.numel()
        for n, b in clf.module_.named_buffers()
        if n.endswith(("running_mean", "running_var"))
    )
    assert feature_maps(clf, X[:2], layer=0).shape[:2] == (2, 8)
