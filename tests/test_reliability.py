"""Bad input gets clear errors; model files are safe; interrupts and checkpoints."""

import os
import pickle
import signal
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

import skcnn
from skcnn import CNNClassifier, CNNRegressor, DenseNetClassifier

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


def test_safe_save_and_load_round_trip(tmp_path):
    names = np.array(["cat", "dog", "emu", "fox"])
    clf = CNNClassifier(**TINY, augment={"rotation": 5}).fit(X8, names[Y8])
    path = clf.save(tmp_path / "model.safetensors")
    restored = skcnn.load(path)
    np.testing.assert_array_equal(restored.predict_proba(X8), clf.predict_proba(X8))
    assert list(restored.predict(X8)) == list(clf.predict(X8))
    assert restored.get_params()["augment"] == {"rotation": 5}
    assert [h["train_loss"] for h in restored.history_] == [
        h["train_loss"] for h in clf.history_
    ]
    reg = CNNRegressor(**TINY).fit(X8, np.column_stack([Y8, -Y8]).astype(float))
    reg.save(tmp_path / "reg.safetensors")
    np.testing.assert_allclose(
        skcnn.load(tmp_path / "reg.safetensors").predict(X8), reg.predict(X8), rtol=1e-6
    )


def test_save_load_pretrained_densenet(tmp_path):
    from torchvision.models import densenet121

    torch.manual_seed(0)
    w = tmp_path / "d.pth"
    torch.save(densenet121().state_dict(), w)
    clf = DenseNetClassifier(
        arch="densenet121",
        weights=w,
        finetune_depth=0,
        input_size=32,
        max_epochs=1,
        device="cpu",
    ).fit(X8, Y8)
    clf.save(tmp_path / "dn.safetensors")
    os.remove(w)  # the weight file is not needed any more
    np.testing.assert_allclose(
        skcnn.load(tmp_path / "dn.safetensors").predict_proba(X8),
        clf.predict_proba(X8),
        atol=1e-6,
    )


def test_load_refuses_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not an skcnn model"):
        skcnn.load(tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="safe model file"):
        CNNClassifier(**TINY, optimizer=torch.optim.Adagrad).fit(X8, Y8).save(
            tmp_path / "y.safetensors"
        )


def test_ctrl_c_stops_after_the_batch_and_keeps_best_weights():
    # Background jobs (CI) start with SIGINT ignored; act as a terminal would.
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _check_ctrl_c()
    finally:
        signal.signal(signal.SIGINT, outer)


def _check_ctrl_c():
    calls = []

    def interrupting_augment(xb):
        calls.append(1)
        if len(calls) == 7:  # during the 4th epoch (2 batches per epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return xb

    clf = CNNClassifier(
        **{**TINY, "max_epochs": 50, "batch_size": 18}, augment=interrupting_augment
    )
    clf.fit(X8, Y8)
    assert clf.interrupted_
    assert len(calls) == 7  # the batch in flight finished, no further batch started
    assert clf.n_iter_ == 4
    assert clf.predict(X8).shape == (40,)
    # the handler is removed after fit: Ctrl-C behaves normally again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_checkpoints_per_fit_and_resume(tmp_path):
    CNNClassifier(**TINY, checkpoint_dir=tmp_path).fit(X8, Y8)
    GridSearchCV(
        CNNClassifier(**TINY, checkpoint_dir=tmp_path),
        {"dropout": [0.0, 0.2]},
        cv=2,
        n_jobs=2,
    ).fit(X8, Y8)
    folders = list(tmp_path.glob("fit-*"))
    assert len(folders) == 1 + 4 + 1  # one folder per fit, none shared
    assert all((f / "params.pt").is_file() for f in folders)
    resumed = CNNClassifier(
        **{**TINY, "max_epochs": 1}, checkpoint_dir=tmp_path, warm_start=True
    ).fit(X8, Y8)
    assert resumed.resumed_from_.endswith("params.pt")


def test_same_results_for_n_jobs_1_and_2():
    grid = {"dropout": [0.0, 0.3]}
    a = (
        GridSearchCV(CNNClassifier(**TINY), grid, cv=2, n_jobs=1)
        .fit(X8, Y8)
        .cv_results_
    )
    b = (
        GridSearchCV(CNNClassifier(**TINY), grid, cv=2, n_jobs=2)
        .fit(X8, Y8)
        .cv_results_
    )
    np.testing.assert_allclose(a["mean_test_score"], b["mean_test_score"])


def test_pickle_keeps_device_independent_state():
    clf = CNNClassifier(**TINY).fit(X8, Y8)
    state = pickle.dumps(clf)
    assert pickle.loads(state).net_.device == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_estimator_recorded_on_cuda_loads_on_cpu():
    clf = CNNClassifier(**{**TINY, "warm_start": True}).fit(X8, Y8)
    clf.device_ = "cuda:0"  # as if it had been fitted on a GPU
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.device_ == "cpu"
    restored.fit(X8, Y8)  # warm start continues on the CPU
    assert restored.n_iter_ > TINY["max_epochs"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_mixed_precision_of_a_gpu_model_becomes_float32_on_cpu(precision, tmp_path):
    clf = CNNClassifier(**{**TINY, "precision": "32"}).fit(X8, Y8)
    expected = clf.predict_proba(X8)
    # as if fitted on a GPU with bf16 ("auto") or fp16 and its grad scaler
    clf.set_params(precision=precision)
    clf.device_ = "cuda:0"
    clf.net_.amp_dtype = torch.bfloat16 if precision == "auto" else torch.float16
    clf.net_.grad_scaler_ = torch.amp.GradScaler("cpu")
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.net_.amp_dtype is None
    assert not hasattr(restored.net_, "grad_scaler_")
    np.testing.assert_allclose(restored.predict_proba(X8), expected, atol=1e-6)
    # the safe format too: an fp16 model file loads on a CPU machine
    clf.save(tmp_path / "m.safetensors")
    loaded = skcnn.load(tmp_path / "m.safetensors")
    assert loaded.net_.amp_dtype is None
    np.testing.assert_allclose(loaded.predict_proba(X8), expected, atol=1e-6)
    with pytest.raises(ValueError, match="fp16.*needs a CUDA device"):
        CNNClassifier(**{**TINY, "precision": "fp16"}).fit(X8, Y8)


def test_fp16_grad_scaler_path(small_digits, monkeypatch):
    """The fp16 training step (scale, unscaled step, update) that GPUs without
    bf16 take, run here with CPU fp16 autocast and a CPU grad scaler."""
    import skcnn._base

    calls = []

    class CountingScaler(torch.amp.GradScaler):
        def scale(self, outputs):
            calls.append("scale")
            return super().scale(outputs)

        def step(self, optimizer, *args, **kwargs):
            calls.append("step")
            return super().step(optimizer, *args, **kwargs)

        def update(self, new_scale=None):
            calls.append("update")
            return super().update(new_scale)

    X, y = small_digits
    monkeypatch.setattr(torch.amp, "GradScaler", CountingScaler)
    monkeypatch.setattr(skcnn._base, "resolve_precision", lambda *a, **k: torch.float16)
    clf = CNNClassifier(**TINY).fit(X, y)
    assert clf.net_.amp_dtype is torch.float16
    assert isinstance(clf.net_.grad_scaler_, CountingScaler)
    n_steps = len(calls) // 3
    assert calls == ["scale", "step", "update"] * n_steps
    # every batch of every epoch: at least 5 epochs x 8 batches of 32 from 270
    assert n_steps >= TINY["max_epochs"] * 8
    monkeypatch.undo()
    full = CNNClassifier(**TINY).fit(X, y)
    assert clf.score(X, y) > 0.8
    assert abs(clf.score(X, y) - full.score(X, y)) < 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_pickle_loads_and_predicts_on_cpu(tmp_path):
    clf = CNNClassifier(**{**TINY, "device": "cuda"}).fit(X8, Y8)
    blob = pickle.dumps(clf)
    import subprocess
    import sys

    (tmp_path / "m.pkl").write_bytes(blob)
    code = (
        "import pickle, numpy as np; "
        f"clf = pickle.load(open({str(tmp_path / 'm.pkl')!r}, 'rb')); "
        "print(clf.net_.device, clf.predict(np.random.rand(3, 8, 8).astype('float32')).shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
    )
    assert "cpu (3,)" in out.stdout, out.stderr
