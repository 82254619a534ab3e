"""Volumes: 3-D grids (n, D, H, W[, C]) as a first-class input of the CNN estimators."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

import skcnn
from skcnn import (
    CNNClassifier,
    CNNRegressor,
    DenseNetClassifier,
    PretrainedFeatureExtractor,
)
from skcnn._data import ImageLayout
from skcnn._engine.plan import auto_batch_size
from skcnn.augmentation import Augment
from skcnn.baselines import ColorHistogram, HOGTransformer, ImageFlattener
from skcnn.datasets import make_shapes_3d
from skcnn.inspection import conv_kernels, feature_maps, summary

SMALL = dict(conv_filters=(4, 8), dense_units=(16,), max_epochs=2, random_state=0)


@pytest.fixture(scope="module")
def shapes():
    X, y, voxels = make_shapes_3d(240, size=12, random_state=0, return_voxels=True)
    return X, y, voxels


@pytest.fixture(scope="module")
def fitted(shapes):
    X, y, _ = shapes
    return CNNClassifier(channels="none", **SMALL).fit(X[:60], y[:60])


def test_make_shapes_3d():
    X, y, voxels = make_shapes_3d(30, size=10, random_state=1, return_voxels=True)
    assert X.shape == (30, 10, 10, 10) and X.dtype == np.uint8
    assert np.bincount(y).tolist() == [10, 10, 10]
    bright = (X > 0.45 * 255).sum((1, 2, 3))  # the object, up to noise
    assert np.corrcoef(bright, voxels)[0, 1] > 0.95
    X2, y2 = make_shapes_3d(30, size=10, random_state=1)
    np.testing.assert_array_equal(X, X2)
    with pytest.raises(ValueError, match="at least 8"):
        make_shapes_3d(3, size=4)


def test_every_volume_layout_is_the_same_network(shapes, fitted):
    """(n, D, H, W) with channels="none", (n, D, H, W, 1), (n, 1, D, H, W)
    and flattened with image_shape=(D, H, W) are the same samples."""
    X, y, _ = shapes
    assert fitted.layout_ == ImageLayout((1, 12, 12, 12))
    assert fitted.layout_.describe() == "12x12x12 volumes with 1 channel(s)"
    assert any(isinstance(m, torch.nn.Conv3d) for m in fitted.module_.modules())
    assert not any(isinstance(m, torch.nn.Conv2d) for m in fitted.module_.modules())
    reference = fitted.predict_proba(X[60:70])
    for Xv, params in [
        (X[..., None], {}),
        (X[:, None], {}),
        (X.reshape(len(X), -1), {"image_shape": (12, 12, 12), "channels": "none"}),
        (X.reshape(len(X), -1), {"image_shape": (12, 12, 12, 1)}),
    ]:
        other = CNNClassifier(**SMALL, **params).fit(Xv[:60], y[:60])
        assert other.layout_ == fitted.layout_
        np.testing.assert_allclose(other.predict_proba(Xv[60:70]), reference, atol=1e-4)


def test_an_ambiguous_4d_array_says_how_to_ask_for_volumes(shapes):
    X, y, _ = shapes
    with pytest.raises(ValueError, match="channels='none' for gray volumes"):
        CNNClassifier(**SMALL).fit(X[:20], y[:20])
    # a small last axis is still read as an image's channels, as before
    images = CNNClassifier(**SMALL).fit(X[:20, :, :, :3], y[:20])
    assert images.layout_.shape == (3, 12, 12)
    with pytest.raises(ValueError, match="fitted on 12x12x12 volumes"):
        CNNClassifier(channels="none", **SMALL).fit(X[:20], y[:20]).predict(
            X[:2, :, :, :11]
        )


def test_colour_volumes_channels_last_and_first(shapes):
    X, y, _ = shapes
    Xc = np.stack([X, 255 - X], -1)  # (n, D, H, W, 2)
    a = CNNClassifier(**SMALL).fit(Xc[:40], y[:40])
    b = CNNClassifier(**SMALL).fit(np.moveaxis(Xc, -1, 1)[:40], y[:40])
    assert a.layout_.shape == b.layout_.shape == (2, 12, 12, 12)
    assert a.layout_.order == "channels_last" and b.layout_.order == "channels_first"
    np.testing.assert_allclose(
        a.predict_proba(Xc[40:45]),
        b.predict_proba(np.moveaxis(Xc, -1, 1)[40:45]),
        atol=1e-4,
    )


def test_float_volumes_are_used_as_they_are(shapes):
    X, y, _ = shapes
    clf = CNNClassifier(channels="none", **SMALL).fit(X[:40] / 255.0, y[:40])
    assert clf.layout_.pixels is False
    pixels = CNNClassifier(channels="none", **SMALL).fit(X[:40], y[:40])
    assert pixels.layout_.pixels is True


def test_shape_task_learns():
    """The benchmark's task (16^3), smaller: 240 train volumes, a narrower
    network, 15 epochs, well above chance (benchmarks/bench_volumes.py
    measures the defaults on 450 / 150)."""
    X, y = make_shapes_3d(300, random_state=0)
    clf = CNNClassifier(
        channels="none", conv_filters=(8, 16), max_epochs=15, random_state=0
    ).fit(X[:240], y[:240])
    assert clf.score(X[240:], y[240:]) >= 0.9


def test_save_load_onnx_and_summary(shapes, tmp_path):
    X, y, _ = shapes
    clf = CNNClassifier(channels="none", batch_norm=False, **SMALL).fit(X[:60], y[:60])
    loaded = skcnn.load(clf.save(tmp_path / "v.safetensors"))
    np.testing.assert_array_equal(
        loaded.predict_proba(X[60:]), clf.predict_proba(X[60:])
    )
    # Keras' Conv3D count: k_d*k_h*k_w*c_in*c_out + c_out
    s = summary(clf)
    convs = [r for r in s.rows if r[1] == "Conv3d"]
    assert [r[3] for r in convs] == [27 * 1 * 4 + 4, 27 * 4 * 8 + 8]
    assert convs[0][2] == (None, 4, 12, 12, 12)
    flat = 8 * 3 * 3 * 3  # two 2x2x2 pools: 12 -> 6 -> 3
    assert s.total_params == (112 + 872) + (flat * 16 + 16) + (16 * 3 + 3)
    pytest.importorskip("onnxruntime")
    ort = pytest.importorskip("onnxruntime")
    path = clf.to_onnx(tmp_path / "v.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (proba,) = session.run(None, {"images": X[60:80]})
    np.testing.assert_allclose(proba, clf.predict_proba(X[60:80]), atol=1e-4)


def test_inspection_on_volumes(fitted, shapes):
    X, _, _ = shapes
    assert conv_kernels(fitted).shape == (4, 1, 3, 3, 3)
    maps = feature_maps(fitted, X[:2], layer=1)
    assert maps.shape == (2, 8, 6, 6, 6)
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skcnn.inspection import plot_feature_maps, plot_kernels, plot_saliency

    fig = plot_feature_maps(fitted, X[0])
    assert "middle depth slice" in fig._suptitle.get_text()
    plot_kernels(fitted)
    plot_saliency(fitted, X[:2])


def test_regressor_search_and_cross_validation(shapes):
    X, _, voxels = shapes
    reg = CNNRegressor(channels="none", **SMALL)
    scores = cross_val_score(reg, X[:60], voxels[:60].astype(float), cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    X, y, _ = shapes
    search = GridSearchCV(
        CNNClassifier(channels="none", **SMALL), {"kernel_size": [3, 5]}, cv=2
    ).fit(X[:60], y[:60])
    assert search.best_params_["kernel_size"] in (3, 5)
    assert search.predict(X[:3]).shape == (3,)


def test_volume_augmentation():
    x = torch.rand(6, 1, 5, 6, 7)
    flipped = Augment(dflip=True).seed(0)(x)
    for a, b in zip(flipped, x):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(
            a, b.flip(1), atol=1e-5
        )
    assert not torch.allclose(flipped, x, atol=1e-5)  # some were flipped
    shifted = Augment(shift=0.2, rotation=20, zoom=0.1, brightness=0.1).seed(0)(x)
    assert shifted.shape == x.shape and not torch.allclose(shifted, x)
    # images draw what they always drew: dflip is not drawn for them
    images = torch.rand(4, 1, 8, 8)
    np.testing.assert_array_equal(
        Augment(shift=0.2, dflip=True).seed(3)(images),
        Augment(shift=0.2).seed(3)(images),
    )
    assert Augment(blur=1, dflip=True).unused_on(3) == ["blur"]
    assert Augment(blur=1, dflip=True).unused_on(2) == ["dflip"]


def test_augmentation_and_tta_fit_on_volumes(shapes):
    X, y, _ = shapes
    clf = CNNClassifier(
        channels="none", augment={"shift": 0.1, "dflip": True}, tta=2, **SMALL
    ).fit(X[:40], y[:40])
    proba = clf.predict_proba(X[40:46])
    np.testing.assert_array_equal(proba, clf.predict_proba(X[40:46]))
    # each volume's views are its own (float sums differ by batch only)
    np.testing.assert_allclose(proba[:3], clf.predict_proba(X[40:43]), atol=1e-6)
    with pytest.warns(UserWarning, match=r"\['blur'\] do nothing on volumes"):
        CNNClassifier(channels="none", augment={"blur": 1.0}, **SMALL).fit(
            X[:20], y[:20]
        )


def test_the_2d_estimators_say_they_take_images(shapes):
    X, y, _ = shapes
    with pytest.raises(ValueError, match="works on 2-D images.*CNNClassifier"):
        DenseNetClassifier(channels="none", max_epochs=1).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="works on 2-D images"):
        PretrainedFeatureExtractor("resnet18", weights=None).fit(X[:4, ..., None])
    with pytest.raises(ValueError, match="HOGTransformer works on 2-D images"):
        HOGTransformer().fit(X[:4, ..., None])


def test_flattening_baselines_take_volumes(shapes):
    X, y, _ = shapes
    assert ImageFlattener(channels="none").fit_transform(X[:5]).shape == (5, 1728)
    hist = ColorHistogram(channels="none", bins=4).fit_transform(X[:5])
    np.testing.assert_allclose(hist.sum(1), 1.0, rtol=1e-6)
    pipe = make_pipeline(ImageFlattener(channels="none"), PCA(10), SVC()).fit(
        X[:120], y[:120]
    )
    assert pipe.score(X[120:], y[120:]) > 1 / 3


def test_auto_batch_size_counts_voxels():
    volume = ImageLayout((1, 64, 64, 64))
    assert auto_batch_size("auto", 10_000, volume) == 16
    assert auto_batch_size("auto", 10_000, ImageLayout((1, 128, 128, 128))) == 2
    assert auto_batch_size("auto", 10_000, ImageLayout((1, 16, 16, 16))) == 64
    # images keep their rule; an explicit batch size is kept
    assert auto_batch_size("auto", 10_000, ImageLayout((3, 512, 512))) == 64
    assert auto_batch_size(32, 10_000, volume) == 32


def test_compare_runs_on_a_volume_npz(tmp_path):
    """skcnn compare --data volumes.npz: the classic and network rows run on
    volumes; the 2-D rows are listed as not run, with the reason."""
    from skcnn.cli import main
    from skcnn.compare import run_comparison

    X, y = make_shapes_3d(150, size=10, random_state=0)
    np.savez(tmp_path / "vol.npz", X=X, y=y)
    Xe, ye = make_shapes_3d(60, size=10, noise=0.15, random_state=1)
    np.savez(tmp_path / "ext.npz", X=Xe[..., None], y=ye)  # (n, D, H, W, 1)
    result = run_comparison(
        tmp_path / "vol.npz",
        external=[tmp_path / "ext.npz"],
        quick=True,
        budget=None,
        out=tmp_path / "out",
        progress=lambda *a, **k: None,
    )
    rows = {r["model"]: r for r in result.rows}
    for name in ("pixels+rf", "hist+rf", "pca+svm", "pca+svm+noise", "cnn", "cnn+aug"):
        assert rows[name]["status"] == "ok", (name, rows[name]["status"])
        assert rows[name]["ext_f1"] > 0
    assert set(result.not_run) >= {"hog+svm", "densenet", "lite0+logreg"}
    assert "volumes" in result.not_run["hog+svm"]
    assert "150 volumes, 10x10x10 gray" in result.data_summary
    assert result.robustness is None  # the 2-D shift profile is not run
    cnn = result.fitted["cnn"]
    assert any(isinstance(m, torch.nn.Conv3d) for m in cnn.module_.modules())
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Not run: hog+svm (works on 2-D images; the data are volumes)" in report
    # volumes are never resized: a clear error from the command line
    code = main(
        ["compare", "--data", str(tmp_path / "vol.npz"), "--image-size", "8",
         "--quick", "--out", str(tmp_path / "o2")]
    )  # fmt: skip
    assert code == 2
