"""A model file or bundle chooses no paths, peers or machine settings.

Parameters that name a folder, a peer or this machine's resources are marked
in the parameter registry (``skcnn._params.places``); ``skcnn.load`` restores
none of them, whoever wrote the file, and creates no folder.
"""

import json
import os
import pickle
import re
import subprocess
import sys
import warnings
import zipfile

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import skcnn
from skcnn import (
    CNNClassifier,
    CNNRegressor,
    DenseNetClassifier,
    PretrainedClassifier,
    PretrainedFeatureExtractor,
    _bundle,
)
from skcnn._bundle import bundle_types, network_classes
from skcnn._params import PARAMS, PLACES, names_a_place, places

from .conftest import TINY, TINY_DN

X8 = np.random.RandomState(0).rand(40, 8, 8).astype(np.float32)
Y8 = np.arange(40) % 4
X32 = np.random.RandomState(1).rand(12, 32, 32, 3).astype(np.float32)

# Constraint types and words that say a parameter names a place, a peer or
# machine resources: such a parameter must be in the registry's places.
_PLACE_TYPES = (os.PathLike, joblib.Memory, torch.device)
_PLACE_WORDS = re.compile(
    r"(dir|path|memory$|device|thread|worker|jobs|address|url|host|cache|callbacks)"
)


def _skcnn_estimator_classes():
    return [
        c
        for c in bundle_types().values()
        if isinstance(c, type) and issubclass(c, BaseEstimator)
    ]


def _looks_like_a_place(name, constraint):
    types = [c for c in constraint if isinstance(c, type)]
    return bool(_PLACE_WORDS.search(name)) or any(
        issubclass(t, _PLACE_TYPES) for t in types
    )


def test_every_place_like_parameter_is_marked_in_the_registry():
    for name, p in PARAMS.items():
        assert p.place in (None, *PLACES)
        if _looks_like_a_place(name, p.constraint):
            assert p.place is not None, f"shared parameter {name} names a place"
    checked = 0
    for cls in _skcnn_estimator_classes():
        constraints = getattr(cls, "_parameter_constraints", {})
        marked = places(cls)
        for name, constraint in constraints.items():
            if name == "memory_format" or name == "memory_efficient":
                continue  # a tensor layout and gradient checkpointing
            if _looks_like_a_place(name, constraint):
                checked += 1
                assert name in marked, f"{cls.__name__}.{name} names a place"
    assert checked >= 20  # the five networks' device/threads/workers/dirs/...


def test_a_source_is_a_place_only_as_a_file_or_url():
    assert names_a_place("source", "https://example.org/w.pth")
    assert names_a_place("source", "/tmp/w.pth")
    assert names_a_place("source", "w.safetensors")
    assert not names_a_place("source", "DEFAULT")
    assert not names_a_place("source", "IMAGENET1K_V1")
    assert not names_a_place("source", None)
    assert names_a_place("path", "anything") and names_a_place("machine", 1)


# -- one fitted model of every class, saved ----------------------------------------
def _fit(cls):
    if cls is CNNClassifier:
        return CNNClassifier(**TINY).fit(X8, Y8)
    if cls is CNNRegressor:
        return CNNRegressor(**TINY).fit(X8, Y8.astype(float))
    if cls is DenseNetClassifier:
        return DenseNetClassifier(**TINY_DN).fit(X8, Y8)
    if cls is PretrainedClassifier:
        return PretrainedClassifier(
            backbone="resnet18",
            weights=None,
            input_size=None,
            max_epochs=1,
            head_init="random",
            device="cpu",
            random_state=0,
        ).fit(X32, Y8[:12])
    if cls is PretrainedFeatureExtractor:
        return PretrainedFeatureExtractor(
            backbone="resnet18", weights=None, input_size=None, device="cpu"
        ).fit(X32)
    raise AssertionError(f"no fit for {cls.__name__}: add one")


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {
        cls: _fit(cls).save(folder / f"{cls.__name__}.safetensors")
        for cls in network_classes()
    }


def _hostile(name, kind, tmp_path):
    """A value an attacker's file could hold for this parameter."""
    by_name = {
        "device": "cuda:7",
        "num_threads": 1,
        "num_workers": 8,
        "callbacks": {"__tuple__": ["os.system"]},
    }
    if name in by_name:
        return by_name[name]
    if kind == "source":
        return "https://198.51.100.7/weights.pth"
    if kind == "machine":
        return 3
    return str(tmp_path / f"chosen-by-the-file-{name}")


def _with_params(path, out, params):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["skcnn"])
    header["params"].update(params)
    save_file(load_file(str(path)), str(out), metadata={"skcnn": json.dumps(header)})
    return out


def _cases():
    return [
        (cls, name, kind)
        for cls in network_classes()
        for name, kind in places(cls).items()
    ]


@pytest.mark.parametrize(
    "cls, name, kind", _cases(), ids=lambda v: getattr(v, "__name__", str(v))
)
def test_no_place_parameter_is_read_from_a_file(
    cls, name, kind, saved_models, tmp_path
):
    value = _hostile(name, kind, tmp_path)
    path = _with_params(
        saved_models[cls], tmp_path / "crafted.safetensors", {name: value}
    )
    before = set(tmp_path.iterdir())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = skcnn.load(path)
    assert loaded.get_params()[name] == cls().get_params()[name]
    said = [str(w.message) for w in caught if "not restored" in str(w.message)]
    if name != "device":  # the device is load()'s own argument
        assert len(said) == 1 and f"{name}=" in said[0], said
    assert set(tmp_path.iterdir()) == before  # loading made no file or folder
    # the file's own save writes none of them
    again = loaded.save(tmp_path / "again.safetensors")
    from safetensors import safe_open

    with safe_open(str(again), framework="pt") as f:
        header = json.loads(f.metadata()["skcnn"])
    assert name not in header["params"] or not names_a_place(
        kind, header["params"][name]
    )


def test_every_class_has_a_fitted_case():
    assert {c for c, _, _ in _cases()} == set(network_classes())


def test_load_is_the_only_reader_of_file_parameters():
    """grep-level: a file's params reach an estimator only through
    ``restorable`` (the place filter), in _persistence.load."""
    import inspect

    from skcnn import _persistence

    src = inspect.getsource(_persistence)
    assert src.count('header["params"]') == 2  # the check and the decoding
    load_src = inspect.getsource(_persistence.load)
    assert "restorable(cls, params, shown)" in load_src
    assert load_src.index("restorable(") < load_src.index("_from_fitted_state(")


class _RunsCode:
    """Pickles to code that writes a marker file (what a poisoned joblib
    cache entry holds)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('ran')",))


def test_a_poisoned_feature_cache_named_by_a_file_runs_nothing(tmp_path):
    """The bad case of round four: a file's ``memory`` folder made transform
    unpickle a cache entry planted there, in a fresh process."""
    fe = PretrainedFeatureExtractor(
        backbone="resnet18", weights=None, input_size=None, device="cpu"
    ).fit(X32)
    honest = fe.save(tmp_path / "honest.safetensors")
    cache = tmp_path / "cache"
    # plant: a real cache entry for these images, its output replaced
    fe.set_params(memory=str(cache)).transform(X32)
    outputs = list(cache.rglob("output.pkl"))
    assert len(outputs) == 1
    marker = tmp_path / "marker"
    outputs[0].write_bytes(pickle.dumps(_RunsCode(marker)))
    crafted = _with_params(
        honest, tmp_path / "crafted.safetensors", {"memory": str(cache)}
    )
    np.save(tmp_path / "x.npy", X32)
    code = (
        "import warnings, numpy as np, skcnn\n"
        "warnings.simplefilter('ignore')\n"
        f"m = skcnn.load({str(crafted)!r})\n"
        f"print(m.memory, m.transform(np.load({str(tmp_path / 'x.npy')!r})).shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "None"
    assert not marker.exists()
    # the planted entry is live: a memory the user sets again is theirs to trust
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = skcnn.load(crafted).set_params(memory=str(cache))
    try:
        again.transform(X32)
    except Exception:  # noqa: BLE001 - whatever the planted object returns
        pass
    assert marker.exists()


def test_loading_creates_no_checkpoint_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clf = CNNClassifier(**{**TINY, "max_epochs": 2}, checkpoint_dir="ckpt").fit(X8, Y8)
    assert (tmp_path / "ckpt").is_dir()  # training writes its checkpoints
    path = clf.save(tmp_path / "m.safetensors")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    crafted = _with_params(
        path, tmp_path / "c.safetensors", {"checkpoint_dir": str(tmp_path / "made")}
    )
    for _ in range(3):
        for f in (path, crafted):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                skcnn.load(f).predict(X8)
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "made").exists()


def test_a_net_is_built_without_making_its_checkpoint_folder(tmp_path):
    from skorch.callbacks import Checkpoint

    from skcnn._engine.checkpoints import BestCheckpoint

    # skorch's own Checkpoint makes the folder at initialize; ours at the
    # first save (the private helper it calls is pinned here)
    assert callable(Checkpoint._validate_filenames)
    BestCheckpoint(str(tmp_path / "later"), key=None).initialize()
    assert not (tmp_path / "later").exists()
    # a fit that saves its best weights does make it
    CNNClassifier(**{**TINY, "max_epochs": 1}, checkpoint_dir=tmp_path / "c").fit(
        X8, Y8
    )
    assert list((tmp_path / "c").glob("fit-*/params.pt"))


# -- bundles -------------------------------------------------------------------------
pytest.importorskip("skops.io")


def test_a_bundle_restores_no_pipeline_memory_or_network_place(tmp_path, monkeypatch):
    pipe = Pipeline(
        [
            (
                "features",
                PretrainedFeatureExtractor(
                    backbone="resnet18",
                    weights=None,
                    input_size=None,
                    device="cpu",
                    memory=str(tmp_path / "fe-cache"),
                ),
            ),
            ("clf", LogisticRegression(max_iter=200)),
        ],
        memory=str(tmp_path / "pipe-cache"),
    ).fit(X32, Y8[:12])
    unfitted = CNNClassifier(checkpoint_dir=str(tmp_path / "ck"), num_workers=2)
    # an honest save writes no places
    path = skcnn.save({"pipe": pipe, "spare": unfitted}, tmp_path / "honest.skcnn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = skcnn.load(path)
    assert loaded["pipe"].memory is None
    assert loaded["pipe"][0].memory is None
    assert loaded["spare"].checkpoint_dir is None
    assert pipe.memory is not None and unfitted.num_workers == 2  # untouched
    # a bundle written without that care (a crafted one) still restores none
    monkeypatch.setattr(_bundle, "_forget_places", lambda *a, **k: None)
    crafted = skcnn.save({"pipe": pipe, "spare": unfitted}, tmp_path / "c.skcnn")
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="not restored") as caught:
        loaded = skcnn.load(crafted)
    text = " ".join(str(w.message) for w in caught)
    assert "Pipeline.memory=" in text and "CNNClassifier.checkpoint_dir=" in text
    assert loaded["pipe"].memory is None and loaded["spare"].checkpoint_dir is None
    assert loaded["spare"].num_workers == 0
    np.testing.assert_allclose(
        loaded["pipe"].predict_proba(X32), pipe.predict_proba(X32), atol=1e-5
    )


def _bundle_with(tmp_path, member, data, compress):
    clf = CNNClassifier(**TINY).fit(X8, Y8)
    path = skcnn.save(Pipeline([("cnn", clf)]), tmp_path / "b.skcnn")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members[member] = data
    out = tmp_path / "bomb.skcnn"
    with zipfile.ZipFile(out, "w") as z:
        for name, value in members.items():
            z.writestr(name, value, compress_type=compress if name == member else 0)
    return out


@pytest.mark.parametrize("member", ["objects.skops", "network-0.safetensors"])
def test_zip_bombs_are_refused_from_the_directory(member, tmp_path, monkeypatch):
    # a small stand-in for a 4 GiB member: the guard's threshold lowered
    monkeypatch.setattr(_bundle, "_RATIO_FROM", 1 << 20)
    bomb = _bundle_with(tmp_path, member, bytes(64 << 20), zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2 << 20
    read = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(
        zipfile.ZipFile,
        "open",
        lambda self, name, *a, **k: (
            read.append(getattr(name, "filename", name))
            or real_open(self, name, *a, **k)
        ),
    )
    with pytest.raises(ValueError, match=r"compressed \d+ times .*max_size"):
        skcnn.load(bomb)
    assert member not in read  # refused before a byte of it was inflated


def test_member_and_total_limits_and_the_override(tmp_path, monkeypatch):
    clf = CNNClassifier(**TINY).fit(X8, Y8)
    path = skcnn.save(Pipeline([("cnn", clf)]), tmp_path / "b.skcnn")
    monkeypatch.setattr(_bundle, "_LIMITS", {**_bundle._LIMITS, "network": 1000})
    with pytest.raises(ValueError, match="more than the .* a network member may hold"):
        skcnn.load(path)
    monkeypatch.setattr(_bundle, "_MAX_TOTAL", 1000)
    monkeypatch.setattr(_bundle, "_LIMITS", {k: 1 << 30 for k in _bundle._LIMITS})
    with pytest.raises(ValueError, match="inflates to .* more than"):
        skcnn.load(path)
    assert skcnn.load(path, max_size=1 << 30).predict(X8).shape == (40,)
    with pytest.raises(ValueError, match="max_size must be a positive int"):
        skcnn.load(path, max_size=0)
    with pytest.raises(ValueError, match="max_size"):
        skcnn.load(path, max_size=100)
