"""ONNX export: the graph does skcnn's preprocessing; onnxruntime agrees."""

import json

import numpy as np
import pytest

from skcnn import (
    CNNClassifier,
    CNNRegressor,
    DenseNetClassifier,
    PretrainedClassifier,
    PretrainedFeatureExtractor,
)
from skcnn.export import to_onnx

from .conftest import TINY, TINY_DN

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _run(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: X})
    return out, session.get_modelmeta().custom_metadata_map


def _check_classifier(clf, X, path):
    assert clf.to_onnx(path) == path  # the method and the function are one
    # any batch size: 7 here, 2 at export
    proba, meta = _run(path, X[:7])
    np.testing.assert_allclose(proba, clf.predict_proba(X[:7]), atol=1e-5)
    classes = np.asarray(json.loads(meta["classes"]))
    np.testing.assert_array_equal(classes[proba.argmax(1)], clf.predict(X[:7]))
    return meta


def test_cnn_uint8_gray_with_string_labels(small_digits, tmp_path):
    X, y = small_digits
    names = np.array(list("abcdefghij"))[y]
    clf = CNNClassifier(**TINY).fit(X, names)
    meta = _check_classifier(clf, X, tmp_path / "cnn.onnx")
    assert meta["task"] == "multiclass" and meta["input_dtype"] == "uint8"
    assert meta["input_layout"] == "gray"
    assert json.loads(meta["classes"]) == list("abcdefghij")


def test_densenet_colour_channels_last(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 12, 12, 3), dtype=np.uint8)
    y = (X[..., 0].mean((1, 2)) > 127).astype(int)  # binary: one sigmoid
    clf = DenseNetClassifier(**TINY_DN).fit(X, y)
    meta = _check_classifier(clf, X, tmp_path / "dn.onnx")
    assert meta["task"] == "binary" and meta["input_layout"] == "channels_last"


def test_flattened_floats_and_multilabel(small_digits, tmp_path):
    X, y = small_digits
    Xf = X.reshape(len(X), -1).astype(np.float32) / 255
    Y = np.column_stack([y % 2 == 0, y > 4]).astype(int)
    clf = CNNClassifier(**TINY, image_shape=(8, 8)).fit(Xf, Y)
    to_onnx(clf, tmp_path / "ml.onnx")
    proba, meta = _run(tmp_path / "ml.onnx", Xf[:9])
    np.testing.assert_allclose(proba, clf.predict_proba(Xf[:9]), atol=1e-5)
    assert meta["input_layout"] == "flat" and meta["input_dtype"] == "float32"


def test_regressor_undoes_target_scaling(small_digits, tmp_path):
    X, y = small_digits
    reg = CNNRegressor(**TINY).fit(X, 100.0 * y + 7)
    to_onnx(reg, tmp_path / "reg.onnx")
    pred, meta = _run(tmp_path / "reg.onnx", X[:5])
    np.testing.assert_allclose(pred[:, 0], reg.predict(X[:5]), rtol=1e-5)
    assert meta["task"] == "regression" and "classes" not in meta


@pytest.mark.slow
def test_pretrained_backbone_resizes_and_normalises_inside(small_digits, tmp_path):
    pytest.importorskip("timm")
    X, y = small_digits
    clf = PretrainedClassifier(
        "test_efficientnet",
        weights=None,
        input_size=32,
        max_epochs=1,
        head_epochs=0,
        random_state=0,
    ).fit(X[:80], y[:80])
    _check_classifier(clf, X, tmp_path / "pre.onnx")


def test_feature_extractor_features(small_digits, tmp_path):
    X, _ = small_digits
    torch = pytest.importorskip("torch")
    from torchvision.models import resnet18

    weights = tmp_path / "r18.pth"
    torch.manual_seed(0)
    torch.save(resnet18().state_dict(), weights)
    fe = PretrainedFeatureExtractor(
        "resnet18", weights=str(weights), layer=-2, input_size=32
    ).fit(X)
    fe.to_onnx(tmp_path / "fe.onnx")
    feats, meta = _run(tmp_path / "fe.onnx", X[:6])
    np.testing.assert_allclose(feats, fe.transform(X[:6]), rtol=1e-4, atol=1e-5)
    assert meta["task"] == "features"


def test_export_errors(small_digits, tmp_path):
    X, y = small_digits
    with pytest.raises(Exception, match="not fitted"):
        to_onnx(CNNClassifier(), tmp_path / "x.onnx")
    clf = CNNClassifier(**TINY).fit(X.astype(np.float32) / 255, y)
    with pytest.raises(ValueError, match="fitted on floats"):
        to_onnx(clf, tmp_path / "x.onnx", input_dtype="uint8")
    with pytest.raises(ValueError, match="input_layout must be"):
        to_onnx(clf, tmp_path / "x.onnx", input_layout="nhwc")
    with pytest.raises(ValueError, match="1-channel"):
        to_onnx(clf, tmp_path / "x.onnx", input_layout="signal")
    with pytest.raises(ValueError, match="opset 18 or later"):
        to_onnx(clf, tmp_path / "x.onnx", opset=17)
    with pytest.raises(TypeError, match="opset must be an int"):
        to_onnx(clf, tmp_path / "x.onnx", opset="18")
    assert not (tmp_path / "x.onnx").exists()
    # a pixel model can take [0, 1] floats instead of uint8
    pix = CNNClassifier(**TINY).fit(X, y)
    to_onnx(pix, tmp_path / "f.onnx", input_dtype="float32")
    proba, _ = _run(tmp_path / "f.onnx", X[:4].astype(np.float32) / 255)
    np.testing.assert_allclose(proba, pix.predict_proba(X[:4]), atol=1e-5)
    # any batch size, one image included (the batch dimension is free)
    for n in (1, 37):
        proba, _ = _run(tmp_path / "f.onnx", X[:n].astype(np.float32) / 255)
        np.testing.assert_allclose(proba, pix.predict_proba(X[:n]), atol=1e-5)
    import onnx

    assert onnx.load(str(tmp_path / "f.onnx")).opset_import[0].version == 18


def test_a_failed_export_keeps_the_good_file(small_digits, tmp_path, monkeypatch):
    import errno
    import os

    import onnx

    X, y = small_digits
    clf = CNNClassifier(**TINY).fit(X, y)
    path = clf.to_onnx(tmp_path / "m.onnx")
    good = path.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as est.save writes

    def full_disk(model, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save", full_disk)
    with pytest.raises(OSError, match="m.onnx.*No space left"):
        clf.to_onnx(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    with pytest.raises(ValueError, match="is a folder"):
        clf.to_onnx(tmp_path)


def test_tta_is_not_in_the_graph_and_the_export_says_so(small_digits, tmp_path):
    X, y = small_digits
    clf = CNNClassifier(**TINY, tta=2).fit(X, y)
    with pytest.warns(UserWarning, match="tta=2.*cannot replay"):
        path = clf.to_onnx(tmp_path / "m.onnx")
    proba, meta = _run(path, X[:20])
    assert meta["tta_in_graph"] == "false"
    # the graph is the plain prediction, exactly
    np.testing.assert_allclose(
        proba, clf.set_params(tta=0).predict_proba(X[:20]), atol=1e-5
    )


def test_auto_layout_follows_a_channels_first_fit(tmp_path):
    rng = np.random.RandomState(0)
    X = (rng.rand(60, 3, 8, 8) * 255).astype(np.uint8)
    y = np.arange(60) % 3
    clf = CNNClassifier(**TINY).fit(X, y)  # axis 1 is the only small one
    path = clf.to_onnx(tmp_path / "m.onnx")
    proba, meta = _run(path, X[:7])
    assert meta["input_layout"] == "channels_first"
    np.testing.assert_allclose(proba, clf.predict_proba(X[:7]), atol=1e-5)


def test_an_opset_the_exporter_does_not_write_is_an_error(tmp_path):
    import onnx

    X = np.random.RandomState(0).rand(20, 8, 8)
    clf = CNNClassifier(**TINY).fit(X, np.arange(20) % 2)
    with pytest.raises(ValueError, match="knows opsets up to"):
        clf.to_onnx(tmp_path / "m.onnx", opset=99)
    assert not (tmp_path / "m.onnx").exists()
    newest = onnx.defs.onnx_opset_version()
    try:
        clf.to_onnx(tmp_path / "n.onnx", opset=newest)
    except ValueError as exc:  # the exporter fell back: said, and no file
        assert f"opset={newest}: torch.onnx" in str(exc) and "wrote opset" in str(exc)
        assert not (tmp_path / "n.onnx").exists()
    else:
        model = onnx.load(str(tmp_path / "n.onnx"))
        assert {o.version for o in model.opset_import if o.domain == ""} == {newest}


def test_a_network_torch_export_cannot_trace_gets_one_plain_error(tmp_path):
    from .conftest import Branchy

    X = np.random.RandomState(0).randint(0, 255, (4, 8, 8, 3)).astype(np.uint8)
    fe = PretrainedFeatureExtractor(Branchy(), weights=None, device="cpu").fit(X)
    with pytest.raises(ValueError, match="torch.onnx could not export") as info:
        fe.to_onnx(tmp_path / "b.onnx")
    assert "\x1b[" not in str(info.value) and "torch.export" in str(info.value)
    assert len(str(info.value)) < 800
