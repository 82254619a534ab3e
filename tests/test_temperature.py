"""Temperature scaling of a classifier's probabilities (``temperature``)."""

import warnings

import numpy as np
import pytest
import torch

import skcnn
from skcnn import CNNClassifier
from skcnn._targets import fit_temperature
from skcnn.compare.stats import calibration_error

from .conftest import TINY


def test_auto_temperature_lowers_the_validation_log_loss(small_digits):
    X, y = small_digits
    params = {**TINY, "max_epochs": 8, "early_stopping": False, "label_smoothing": 0.0}
    plain = CNNClassifier(**params).fit(X, y)
    scaled = CNNClassifier(**params, temperature="auto").fit(X, y)
    assert plain.temperature_ == 1.0
    assert 0.05 < scaled.temperature_ < 20 and scaled.temperature_ != 1.0
    # the same network (same seed), only the confidences differ
    np.testing.assert_array_equal(plain.predict(X), scaled.predict(X))
    p, q = plain.predict_proba(X), scaled.predict_proba(X)
    assert not np.allclose(p, q)
    np.testing.assert_allclose(q.sum(1), 1, atol=1e-6)


def test_auto_is_the_temperature_of_the_lowest_log_loss(small_digits, heldout_digits):
    from skcnn._data import prepare_images
    from skcnn._targets import TEMPERATURE_RANGE

    X, y = small_digits
    Xt, yt = heldout_digits
    # 8 epochs, no label smoothing: about 0.93 held out (mistakes to weigh)
    params = {**TINY, "max_epochs": 8, "early_stopping": False, "label_smoothing": 0.0}
    weak = CNNClassifier(**params).fit(X, y)
    data, _, _ = prepare_images(weak, Xt, reset=False)
    valid = data.with_targets(torch.as_tensor(np.searchsorted(weak.classes_, yt)))
    z = weak.net_.predict_logits(valid.with_targets(None))
    z = torch.as_tensor(z, dtype=torch.float64)

    def nll(temp):
        return float(torch.nn.functional.cross_entropy(z / temp, valid.y.long()))

    t = fit_temperature(weak.set_params(temperature="auto"), valid)
    assert TEMPERATURE_RANGE[0] < t < TEMPERATURE_RANGE[1]
    assert nll(t) <= min(nll(t * 0.9), nll(t * 1.1)) + 1e-9
    # a split the network gets all right has no best temperature: clipped, said
    right = weak.predict(Xt) == yt
    perfect = data.subset(np.flatnonzero(right)).with_targets(
        torch.as_tensor(np.searchsorted(weak.classes_, yt[right]))
    )
    with pytest.warns(UserWarning, match="outside \\[0.2, 5.0\\]"):
        assert fit_temperature(weak, perfect) == TEMPERATURE_RANGE[0]


def test_a_fixed_temperature_and_none(small_digits):
    X, y = small_digits
    base = CNNClassifier(**{**TINY, "max_epochs": 2}).fit(X, y)
    hot = CNNClassifier(**{**TINY, "max_epochs": 2}, temperature=2.0).fit(X, y)
    assert hot.temperature_ == 2.0
    logits = np.log(base.predict_proba(X[:5]))
    want = torch.softmax(torch.as_tensor(logits) / 2.0, 1).numpy()
    np.testing.assert_allclose(hot.predict_proba(X[:5]), want, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="temperature"):
        CNNClassifier(**TINY, temperature=0.0).fit(X, y)
    with pytest.raises(ValueError, match="temperature"):
        CNNClassifier(**TINY, temperature="hot").fit(X, y)


def test_auto_without_a_validation_split_says_so(small_digits):
    X, y = small_digits
    with pytest.warns(
        UserWarning, match="temperature='auto' is fitted on the internal"
    ):
        clf = CNNClassifier(
            **{**TINY, "early_stopping": False},
            validation_fraction=None,
            temperature="auto",
        ).fit(X, y)
    assert clf.temperature_ == 1.0


def test_the_temperature_is_saved_loaded_and_exported(small_digits, tmp_path):
    X, y = small_digits
    clf = CNNClassifier(**{**TINY, "max_epochs": 3}, temperature="auto").fit(X, y)
    restored = skcnn.load(clf.save(tmp_path / "m.safetensors"))
    assert restored.temperature_ == clf.temperature_
    np.testing.assert_allclose(
        restored.predict_proba(X), clf.predict_proba(X), rtol=1e-6
    )
    ort = pytest.importorskip("onnxruntime")
    path = clf.to_onnx(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: X[:20]})
    np.testing.assert_allclose(out, clf.predict_proba(X[:20]), atol=1e-5)


def test_a_model_file_before_0_3_loads_at_temperature_one(small_digits, tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    X, y = small_digits
    clf = CNNClassifier(**{**TINY, "max_epochs": 1}).fit(X, y)
    path = clf.save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["skcnn"])
    del header["params"]["temperature"], header["fitted"]["temperature"]
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata={"skcnn": json.dumps(header)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = skcnn.load(old)
    assert loaded.temperature is None and loaded.temperature_ == 1.0
    header["fitted"]["temperature"] = -1
    save_file(load_file(str(path)), str(old), metadata={"skcnn": json.dumps(header)})
    with pytest.raises(ValueError, match="invalid fitted temperature"):
        skcnn.load(old)


def test_calibration_error_is_what_the_temperature_moves(small_digits, heldout_digits):
    X, y = small_digits
    Xt, yt = heldout_digits
    params = {**TINY, "max_epochs": 8, "early_stopping": False, "label_smoothing": 0.0}
    hot = CNNClassifier(**params, temperature=5.0).fit(X, y)
    plain = CNNClassifier(**params).fit(X, y)
    # a temperature far too high makes every prediction unsure: a larger gap
    # between confidence and accuracy
    assert calibration_error(yt, hot.predict_proba(Xt), hot.classes_) > (
        calibration_error(yt, plain.predict_proba(Xt), plain.classes_)
    )
