"""Safe model files, pickling, and models made on a GPU loaded on a CPU."""

import os
import pickle

import numpy as np
import pytest
import torch

import skcnn
from skcnn import CNNClassifier, CNNRegressor, DenseNetClassifier

from .conftest import TINY

X8 = np.random.RandomState(0).rand(40, 8, 8).astype(np.float32)
Y8 = np.arange(40) % 4


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


def test_a_fresh_process_loads_with_the_lazy_package(tmp_path):
    import subprocess
    import sys

    clf = CNNClassifier(**TINY).fit(X8, Y8)
    path = clf.save(tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", X8)
    code = (
        "import sys, numpy as np, skcnn\n"
        "assert 'torch' not in sys.modules  # import skcnn is lazy\n"
        f"m = skcnn.load({str(path)!r})\n"
        f"print(m.predict(np.load({str(tmp_path / 'x.npy')!r})).tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str(clf.predict(X8).tolist())


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
    clf.device_ = clf.net_.device = "cuda:0"
    clf.net_.precision = precision
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
    import skcnn._engine.plan

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
    monkeypatch.setattr(
        skcnn._engine.plan, "resolve_precision", lambda *a, **k: torch.float16
    )
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


def _tampered(tmp_path, edit):
    """Save a small model, then rewrite its header with ``edit``."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = tmp_path / "m.safetensors"
    CNNClassifier(**TINY).fit(X8, Y8).save(path)
    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["skcnn"])
    edit(header)
    out = tmp_path / "tampered.safetensors"
    save_file(load_file(str(path)), str(out), metadata={"skcnn": json.dumps(header)})
    return out


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda h: h["params"].update(new_option=1), "does not know"),
        (lambda h: h["fitted"].pop("task"), "lacks the fitted field 'task'"),
        (lambda h: h["fitted"].update(task="ranking"), "invalid task"),
        (
            lambda h: h["fitted"].update(layout=[1, 30000, 30000]),
            "invalid input layout",
        ),
        (lambda h: h["fitted"].update(layout=[1, 16, 16]), "do not match its header"),
        (lambda h: h["params"].update(lr=-1), "'lr' parameter"),
        (lambda h: h.update({"class": "os.system"}), "Unknown estimator class"),
    ],
    ids=["newer-param", "no-task", "bad-task", "huge-layout", "layout", "lr", "class"],
)
def test_load_checks_the_whole_header_before_building(tmp_path, edit, match):
    import time

    path = _tampered(tmp_path, edit)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        skcnn.load(path)
    assert time.perf_counter() - start < 5


def test_a_format_1_file_from_skcnn_0_1_still_loads(tmp_path):
    """skcnn 0.1 wrote fitted attributes flat and scaled by dtype alone."""

    def to_format_1(h):
        f = h["fitted"]
        h.update(
            format="skcnn-model-1",
            layout=f["layout"],
            history=f["history"],
            classes=f["classes"],
            fitted={
                "n_features_in_": f["n_features_in"],
                "n_iter_": f["n_iter"],
                "best_epoch_": f["best_epoch"],
                "batch_size_": f["batch_size"],
                "_task": f["task"],
            },
        )

    path = _tampered(tmp_path, to_format_1)
    old = skcnn.load(path)
    assert old.layout_.pixels is None  # 0.1 models keep 0.1's reading of values
    new = CNNClassifier(**TINY).fit(X8, Y8)
    np.testing.assert_allclose(old.predict_proba(X8), new.predict_proba(X8), atol=1e-6)


# -- files written all or nothing; file-level errors name the file ------------


def _identity(batch):
    return batch


def _file_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_a_failed_save_keeps_the_good_file(tmp_path, monkeypatch):
    import errno

    import safetensors.torch

    clf = CNNClassifier(**TINY).fit(X8, Y8)
    path = clf.save(tmp_path / "m.safetensors")
    good = path.read_bytes()
    assert path.stat().st_mode & 0o777 == _file_mode()

    def full_disk(state, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError, match="m.safetensors.*No space left"):
        clf.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_a_failed_pipeline_save_keeps_the_good_bundle(tmp_path):
    pytest.importorskip("skops")
    from sklearn.pipeline import make_pipeline

    from skcnn.baselines import AddNoise

    good_model = make_pipeline(AddNoise(std=0.0), CNNClassifier(**TINY)).fit(X8, Y8)
    path = skcnn.save(good_model, tmp_path / "m.skcnn")
    good = path.read_bytes()
    assert path.stat().st_mode & 0o777 == _file_mode()
    unsavable = make_pipeline(
        AddNoise(std=0.0), CNNClassifier(**TINY, augment=_identity)
    ).fit(X8, Y8)
    with pytest.raises(TypeError, match="augment=.*cannot be written"):
        skcnn.save(unsavable, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.skcnn"]
    skcnn.load(path)


def test_saving_into_a_folder_or_a_missing_folder(tmp_path):
    clf = CNNClassifier(**TINY).fit(X8, Y8)
    with pytest.raises(ValueError, match="is a folder; give a file name"):
        clf.save(tmp_path)
    with pytest.raises(ValueError, match="the folder .*nope' does not exist"):
        skcnn.save(clf, tmp_path / "nope" / "m.safetensors")


def _raw_safetensors(path, header):
    import json
    import struct

    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data + b"\0" * 8)
    return path


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda p: p.write_bytes(
                (p.parent / "good.safetensors").read_bytes()[:-100]
            ),
            "bad.safetensors.*not a readable skcnn model file",
        ),
        (
            lambda p: _raw_safetensors(
                p,
                {"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 8]}},
            ),
            "bad.safetensors.*not a readable skcnn model file",
        ),
        (
            lambda p: _raw_safetensors(
                p,
                {
                    "__metadata__": {"skcnn": "[1, 2]"},
                    "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                },
            ),
            "header of .*bad.safetensors.* is not a JSON object",
        ),
        (
            lambda p: _raw_safetensors(
                p,
                {
                    # nested deeper than the JSON reader goes
                    "__metadata__": {"skcnn": "[" * 100_000 + "]" * 100_000},
                    "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                },
            ),
            "header of .*bad.safetensors.* is not a JSON object",
        ),
    ],
    ids=["truncated", "huge-shape", "header-not-object", "header-too-deep"],
)
def test_unreadable_model_files_are_named(tmp_path, make, match):
    CNNClassifier(**TINY).fit(X8, Y8).save(tmp_path / "good.safetensors")
    bad = tmp_path / "bad.safetensors"
    make(bad)
    with pytest.raises(ValueError, match=match):
        skcnn.load(bad)


def test_nan_weights_are_refused_where_they_are_read(tmp_path):
    from safetensors.torch import load_file, save_file

    path = CNNClassifier(**TINY).fit(X8, Y8).save(tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name][0] = float("nan")
    save_file(state, str(path), metadata=meta)
    with pytest.raises(ValueError, match=f"NaN or infinite values .*{name}"):
        skcnn.load(path)

    from skcnn.pretrained import load_state_dict

    torch.save({"w": torch.tensor([1.0, float("inf")])}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="w.pth' has NaN or infinite values"):
        load_state_dict(tmp_path / "w.pth")


def test_the_input_arrangement_is_kept_and_checked(tmp_path):
    X = np.random.RandomState(0).rand(40, 3, 8, 8).astype(np.float32)
    clf = CNNClassifier(**TINY, channels="first").fit(X, Y8)
    assert clf.layout_.order == "channels_first"
    assert skcnn.load(clf.save(tmp_path / "m.safetensors")).layout_.order == (
        "channels_first"
    )
    bad = _tampered(tmp_path, lambda h: h["fitted"].update(input_layout="sideways"))
    with pytest.raises(ValueError, match="invalid fitted field input_layout"):
        skcnn.load(bad)
