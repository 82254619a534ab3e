"""Crafted bundles: nothing in a file runs code or writes files at skcnn.load.

Each crafted file is a real bundle whose ``objects.skops`` schema was edited
the way an attacker would: the loads must fail with a clear ValueError before
skops builds anything, in this process and in a fresh one.
"""

import io
import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

import skcnn
from skcnn import CNNClassifier
from skcnn._bundle import _schema_nodes
from skcnn.baselines import AddNoise, HOGTransformer

from .conftest import TINY

sio = pytest.importorskip("skops.io")


def _edit_schema(path, edit):
    """Rewrite the bundle at ``path`` with ``edit(schema)`` applied to its
    object tree (and any extra skops members ``edit`` returns)."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(io.BytesIO(members["objects.skops"])) as objects:
        inner = {n: objects.read(n) for n in objects.namelist()}
    schema = json.loads(inner["schema.json"])
    extra = edit(schema) or {}
    inner["schema.json"] = json.dumps(schema).encode()
    inner.update(extra)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as objects:
        for name, data in inner.items():
            objects.writestr(name, data)
    members["objects.skops"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _schema_of(value, files=None):
    """skops' schema of ``value``; its other members (bytes, arrays) go to
    ``files``."""
    with zipfile.ZipFile(io.BytesIO(sio.dumps(value))) as z:
        if files is not None:
            files.update({n: z.read(n) for n in z.namelist() if n != "schema.json"})
        return json.loads(z.read("schema.json"))


def _json(value):
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


class _WriteMarker:
    """Pickles to code that writes a file: what torch.load(weights_only=False)
    of the forged bytes would run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('ran')",))


@pytest.fixture(scope="module")
def hog_bundle(small_digits, tmp_path_factory):
    X, y = small_digits
    model = make_pipeline(HOGTransformer(), SVC()).fit(X, y)
    return skcnn.save(model, tmp_path_factory.mktemp("b") / "hog.skcnn"), X


def _copy(path, tmp_path, name="crafted.skcnn"):
    target = tmp_path / name
    target.write_bytes(path.read_bytes())
    return target


def _extractor_with_pickle_bytes(marker):
    """A fitted-looking PretrainedFeatureExtractor node whose state carries
    pickle bytes (the state skcnn 0.2's __setstate__ unpickled)."""
    payload = pickle.dumps(_WriteMarker(marker))

    def edit(schema):
        steps = schema["content"]["content"]["steps"]["content"]
        files = {}
        state = {"backbone": "resnet18", "device_": "cpu", "_module_bytes": payload}
        steps[0]["content"][1] = {
            "__class__": "PretrainedFeatureExtractor",
            "__module__": "skcnn._feature_extraction",
            "__loader__": "ObjectNode",
            "content": _schema_of(state, files),
        }
        return files

    return edit


def _write_profile_csv_call(target):
    """A node that makes skops call skcnn.robustness.write_profile_csv with
    arguments from the file (an attacker-chosen path)."""

    def edit(schema):
        steps = schema["content"]["content"]["steps"]["content"]
        steps[0]["content"][1] = {
            "__class__": "write_profile_csv",
            "__module__": "skcnn.robustness",
            "__loader__": "ConstructorFromReduceNode",
            "content": {
                "__class__": "tuple",
                "__module__": "builtins",
                "__loader__": "TupleNode",
                "content": [_schema_of({"a": [1]}), _json(str(target))],
            },
        }

    return edit


def _load_in_fresh_process(path, trusted=None):
    code = (
        "import skcnn, sys\n"
        "try:\n"
        f"    skcnn.load({str(path)!r}, trusted={trusted!r})\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc); sys.exit(3)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )


def test_pickle_bytes_in_an_extractor_never_run(hog_bundle, tmp_path):
    marker = tmp_path / "ran.txt"
    path = _edit_schema(
        _copy(hog_bundle[0], tmp_path), _extractor_with_pickle_bytes(marker)
    )
    with pytest.raises(ValueError, match="PretrainedFeatureExtractor with state"):
        skcnn.load(path)
    # trusting every type the file names changes nothing
    every = sio.get_untrusted_types(data=zipfile.ZipFile(path).read("objects.skops"))
    with pytest.raises(ValueError, match="PretrainedFeatureExtractor with state"):
        skcnn.load(path, trusted=every)
    done = _load_in_fresh_process(path, trusted=every)
    assert done.returncode == 3, done.stderr
    assert "PretrainedFeatureExtractor with state" in done.stdout
    assert not marker.exists()


def test_a_call_of_an_skcnn_function_is_refused(hog_bundle, tmp_path):
    target = tmp_path / "written.csv"
    path = _edit_schema(_copy(hog_bundle[0], tmp_path), _write_profile_csv_call(target))
    name = "skcnn.robustness.write_profile_csv"
    with pytest.raises(ValueError, match=f"refers to '{name}' as a Constructor"):
        skcnn.load(path)
    with pytest.raises(ValueError, match="as a ConstructorFromReduceNode"):
        skcnn.load(path, trusted=[name])
    done = _load_in_fresh_process(path, trusted=[name])
    assert done.returncode == 3, done.stderr
    assert not target.exists()


@pytest.mark.parametrize(
    "module, name, loader",
    [
        ("skcnn", "save", "FunctionNode"),  # the package's lazy attributes
        ("skcnn._engine.net", "TensorBatchNet", "ObjectNode"),  # skorch's __setstate__
        ("skcnn._bundle", "load_any", "FunctionNode"),
    ],
)
def test_only_listed_skcnn_types_as_plain_objects(
    hog_bundle, tmp_path, module, name, loader
):
    def edit(schema):
        steps = schema["content"]["content"]["steps"]["content"]
        node = steps[0]["content"][1]
        node.update({"__module__": module, "__class__": name, "__loader__": loader})

    path = _edit_schema(_copy(hog_bundle[0], tmp_path), edit)
    with pytest.raises(ValueError, match=f"refers to '{module}.{name}'"):
        skcnn.load(path, trusted=[f"{module}.{name}"])


@pytest.fixture(scope="module")
def net_bundle(small_digits, tmp_path_factory):
    X, y = small_digits
    model = make_pipeline(AddNoise(std=0.0), CNNClassifier(**TINY)).fit(X, y)
    return skcnn.save(model, tmp_path_factory.mktemp("n") / "net.skcnn"), model


def test_a_fitted_network_inside_the_tree_is_refused(net_bundle, tmp_path):
    path = _copy(net_bundle[0], tmp_path)

    def edit(schema):
        for node in _schema_nodes(schema):
            if node.get("__class__") == "SavedNetwork":
                # the placeholder turned into a network with fitted state
                node["__module__"], node["__class__"] = "skcnn._cnn", "CNNClassifier"
                node["content"] = _schema_of({"net_": 1, "layout_": 2})

    _edit_schema(path, edit)
    with pytest.raises(
        ValueError, match="CNNClassifier with state \\['layout_', 'net_'\\]"
    ):
        skcnn.load(path)


def test_legitimate_bundles_still_load(hog_bundle, net_bundle):
    path, X = hog_bundle
    restored = skcnn.load(path)
    assert restored.predict(X).shape == (len(X),)
    path, model = net_bundle
    np.testing.assert_array_equal(skcnn.load(path).predict(X), model.predict(X))


def test_placeholder_out_of_range(net_bundle, tmp_path):
    path = _copy(net_bundle[0], tmp_path)

    def edit(schema):
        for node in _schema_nodes(schema):
            if node.get("__class__") == "SavedNetwork":
                node["content"]["content"]["index"] = _json(7)

    _edit_schema(path, edit)
    with pytest.raises(ValueError, match="placeholder for network 7, but holds 1"):
        skcnn.load(path)


def test_damaged_bundles_name_the_file(hog_bundle, tmp_path):
    good = hog_bundle[0]
    truncated = tmp_path / "cut.skcnn"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    # a cut zip has no central directory: it is no zip, and no safetensors file
    with pytest.raises(ValueError, match="cut.skcnn.*not a readable skcnn model"):
        skcnn.load(truncated)

    manifest = tmp_path / "manifest.skcnn"
    with zipfile.ZipFile(good) as z, zipfile.ZipFile(manifest, "w") as out:
        for name in z.namelist():
            data = z.read(name)
            if name == "skcnn-bundle.json":
                data = json.dumps({"format": "skcnn-bundle-1", "networks": "2"})
            out.writestr(name, data)
    with pytest.raises(ValueError, match="damaged manifest.*networks='2'"):
        skcnn.load(manifest)

    with pytest.raises(TypeError, match="trusted must be a list"):
        skcnn.load(good, trusted="sklearn.svm._classes.SVC")


def test_a_pth_file_is_named_as_such(tmp_path):
    import torch

    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pth")
    with pytest.raises(ValueError, match="PyTorch checkpoint \\(.pth\\).*weights="):
        skcnn.load(tmp_path / "weights.pth")
