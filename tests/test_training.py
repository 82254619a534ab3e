"""The training engine's contract with skorch, and the package's import graph."""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest
import skorch
import torch
from skorch import NeuralNet

from skcnn import CNNClassifier
from skcnn._engine.net import TensorBatchNet

from .conftest import TINY

# What TensorBatchNet relies on in skorch, as skorch 1.4 declares it. A skorch
# release that changes any of these must be looked at before it is allowed
# (pyproject.toml pins skorch to the tested minor versions).
SKORCH_SIGNATURES = {
    # overridden
    "get_dataset": "(self, X, y=None)",
    "get_iterator": "(self, dataset, training=False)",
    "run_single_epoch": "(self, iterator, training, prefix, step_fn, **fit_params)",
    "on_epoch_begin": "(self, net, dataset_train=None, dataset_valid=None, **kwargs)",
    "_set_training": "(self, training=True)",
    "__getstate__": "(self)",
    "__setstate__": "(self, state)",
    "infer": "(self, x, **fit_params)",
    "get_loss": "(self, y_pred, y_true, X=None, training=False)",
    "train_step_single": "(self, batch, **fit_params)",
    "_step_optimizer": "(self, step_fn)",
    # called, or relied on (train_step runs train_step_single, then notifies
    # on_grad_computed: user callbacks see the clipped gradients)
    "notify": "(self, method_name, **cb_kwargs)",
    "train_step": "(self, batch, **fit_params)",
    "_zero_grad_optimizer": "(self, set_to_none=None)",
    "get_all_learnable_params": "(self)",
    "partial_fit": "(self, X, y=None, classes=None, **fit_params)",
    "initialize": "(self)",
}
# Constructor arguments TensorBatchNet passes on.
SKORCH_INIT_ARGS = {
    "module",
    "criterion",
    "optimizer",
    "lr",
    "max_epochs",
    "batch_size",
    "train_split",
    "callbacks",
    "predict_nonlinearity",
    "device",
    "compile",
    "verbose",
}


def test_skorch_version_is_a_tested_one():
    major, minor = (int(p) for p in skorch.__version__.split(".")[:2])
    assert (major, minor) == (1, 4), skorch.__version__


@pytest.mark.parametrize("name", sorted(SKORCH_SIGNATURES))
def test_skorch_signatures_we_rely_on(name):
    assert str(inspect.signature(getattr(NeuralNet, name))) == SKORCH_SIGNATURES[name]


def test_every_override_is_guarded():
    overridden = {
        name
        for name, value in vars(TensorBatchNet).items()
        if callable(value) and hasattr(NeuralNet, name) and name != "__init__"
    }
    assert overridden <= set(SKORCH_SIGNATURES), overridden - set(SKORCH_SIGNATURES)


# What skcnn._engine.logging.EpochTable relies on in skorch's PrintLog.
PRINTLOG_SIGNATURES = {
    "__init__": "(self, keys_ignored=None, sink=<built-in function print>, "
    "tablefmt='simple', floatfmt='.4f', stralign='right')",
    "_sink": "(self, text, verbose)",
    "initialize": "(self)",
    "on_epoch_end": "(self, net, **kwargs)",
}


def test_printlog_contract():
    from skorch.callbacks import PrintLog

    from skcnn._engine.logging import EpochTable

    for name, signature in PRINTLOG_SIGNATURES.items():
        assert str(inspect.signature(getattr(PrintLog, name))) == signature, name
    assert "first_iteration_" in inspect.getsource(PrintLog.on_epoch_end)
    overridden = {
        n for n, v in vars(EpochTable).items() if callable(v) and hasattr(PrintLog, n)
    }
    assert overridden <= set(PRINTLOG_SIGNATURES) | {"on_train_begin", "on_train_end"}


def test_skorch_init_arguments_and_private_state():
    params = inspect.signature(NeuralNet.__init__).parameters
    assert SKORCH_INIT_ARGS <= set(params)
    net = TensorBatchNet(torch.nn.Linear(2, 2), torch.nn.MSELoss).initialize()
    # Read by TensorBatchNet.train_step / _step_optimizer.
    assert net._optimizers == ["optimizer"]
    assert isinstance(net.history, skorch.history.History)


def _skcnn_imports():
    """module -> skcnn modules it imports (top level and inside functions)."""
    root = Path(__file__).resolve().parents[1] / "skcnn"
    graph = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("skcnn"):
                    continue
                if node.module:  # "from . import x" imports x, not the package
                    deps.add(target)
                # "from . import x" / "from .models import y": x, y may be modules
                deps.update(f"{target}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("skcnn"))
        graph[name] = deps
    return {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}


def test_no_import_circle():
    graph = _skcnn_imports()
    # The package __init__ re-exports; nothing may import it back.
    importers = sorted(k for k, v in graph.items() if "skcnn" in v)
    assert importers == [], importers
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycle = path[path.index(dep) :] + [dep]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_compiled_checkpoint_resumes_into_plain_network(small_digits, tmp_path):
    X, y = small_digits
    CNNClassifier(**TINY, compile=True, checkpoint_dir=tmp_path).fit(X, y)
    (saved,) = tmp_path.glob("fit-*/params.pt")
    keys = torch.load(saved, weights_only=True).keys()
    # Written from the unwrapped module: the plain network's names.
    assert set(keys) == set(CNNClassifier(**TINY).fit(X, y).module_.state_dict())

    plain = CNNClassifier(
        **{**TINY, "max_epochs": 1}, warm_start=True, checkpoint_dir=tmp_path
    ).fit(X, y)
    assert plain.resumed_from_ == str(saved)
    fresh = CNNClassifier(**{**TINY, "max_epochs": 1}).fit(X, y)
    # Started from the compiled fit's best weights, not from scratch.
    assert plain.history_[0]["train_loss"] < 0.5 * fresh.history_[0]["train_loss"]


def test_batch_size_one_trains_or_says_why(small_digits):
    X, y = small_digits
    clf = CNNClassifier(
        **{**TINY, "max_epochs": 1, "batch_size": 1},
        batch_norm=False,
        validation_fraction=0,
    ).fit(X[:40], y[:40])
    assert clf.history_[0]["train_batch_count"] == 40
    with pytest.raises(ValueError, match="Batch normalisation cannot train"):
        CNNClassifier(**{**TINY, "batch_size": 1}).fit(X[:40], y[:40])


def test_a_fit_without_any_step_raises():
    from skcnn import CNNRegressor

    # One sample, batch_size 32: the lone last batch is skipped, nothing trains.
    X = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="no optimizer step"):
        CNNRegressor(**TINY, batch_norm=False, validation_fraction=0).fit(X, [1.0])


@pytest.mark.parametrize(
    "case",
    ["huge_lr", "huge_targets", "huge_inputs"],
)
def test_divergence_stops_with_a_clear_error(small_digits, case):
    from skcnn import CNNRegressor

    X, y = small_digits
    if case == "huge_lr":
        est, Xf, yf = CNNClassifier(**{**TINY, "lr": 1e6}, optimizer="sgd"), X, y
    elif case == "huge_targets":
        # (with the default scale_target=True these targets train fine)
        assert np.isfinite(CNNRegressor(**TINY).fit(X, y * 1e30).predict(X[:5])).all()
        est, Xf, yf = CNNRegressor(**TINY, scale_target=False), X, y * 1e30
    else:
        est, Xf, yf = CNNClassifier(**TINY), X.astype(np.float32) * 1e30, y
    with pytest.raises(ValueError, match="diverged") as info:
        est.fit(Xf, yf)
    assert info.value.kept_weights == hasattr(est, "net_")
    if hasattr(est, "net_"):
        # fitted with the last good weights: finite outputs, marked as cut short
        assert est.interrupted_
        assert np.isfinite(est.predict(Xf[:5]).astype(float)).all()


def test_failed_refit_keeps_the_previous_model(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**TINY).fit(X, y)
    before = clf.predict_proba(X[:20])
    with pytest.raises(ValueError):
        clf.set_params(lr=1e6, optimizer="sgd").fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X[:20]), before)
    with pytest.raises(ValueError):
        clf.set_params(lr=1e-3, optimizer="adam", dropout=2.0).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X[:20]), before)


def test_partial_fit_trains_on_every_row_and_classes_do_not_leak(small_digits):
    X, y = small_digits
    clf = CNNClassifier(**{**TINY, "batch_size": 10})
    clf.partial_fit(X[:50], y[:50], classes=np.arange(12))  # two never-seen classes
    assert clf.history_[-1]["train_batch_count"] == 5  # all 50 rows, no hold-out
    assert "valid_loss" not in clf.history_[-1]
    assert len(clf.classes_) == 12
    clf.fit(X, y)  # a full fit starts over from its own data
    np.testing.assert_array_equal(clf.classes_, np.arange(10))


def test_failed_refit_keeps_private_fitted_state_too(small_digits):
    from skcnn import CNNRegressor

    X, y = small_digits
    Y = np.column_stack([y, -y]).astype(float)
    reg = CNNRegressor(**TINY).fit(X, Y)
    assert reg.predict(X[:3]).shape == (3, 2)
    with pytest.raises(ValueError):
        # 1-D y (one output) fails after the targets were read: batch norm
        # cannot train on batches of one sample.
        reg.set_params(batch_size=1).fit(X, y.astype(float))
    assert reg.predict(X[:3]).shape == (3, 2)


def _package_files():
    root = Path(__file__).resolve().parents[1] / "skcnn"
    return root, sorted(root.rglob("*.py"))


def test_no_import_by_string_hides_a_dependency():
    # The import graph above sees only import statements: a module imported
    # by name (importlib.import_module, __import__) would hide a circle. Only
    # the package's lazy attributes (skcnn/__init__.py) import by name.
    root, files = _package_files()
    hidden = []
    for path in files:
        if path == root / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = getattr(func, "attr", getattr(func, "id", None))
                if name in ("import_module", "__import__"):
                    hidden.append(f"{path.relative_to(root)}:{node.lineno}")
    assert hidden == [], hidden


# What the engine may import from skcnn: no estimator module, not even
# through another module.
ENGINE_MAY_IMPORT = {
    "skcnn._data",
    "skcnn._device",
    "skcnn._files",
    "skcnn._params",
    "skcnn._validation",
    "skcnn.augmentation",
    "skcnn.models",
    "skcnn.models.adapter",
    "skcnn.models.backbone",
    "skcnn.models.convnet",
    "skcnn.models.densenet",
    "skcnn.models.finetune",
    # a leaf (imports no skcnn module): what a weights value names, which the
    # registry's "source" places ask (_params.names_a_place)
    "skcnn.pretrained",
}


def test_the_engine_never_sees_an_estimator():
    graph = _skcnn_imports()
    reached, todo = set(), [m for m in graph if m.startswith("skcnn._engine")]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in reached:
                reached.add(dep)
                todo.append(dep)
    outside = {m for m in reached if not m.startswith("skcnn._engine")}
    assert outside <= ENGINE_MAY_IMPORT, sorted(outside - ENGINE_MAY_IMPORT)


def test_only_the_engine_imports_skorch():
    root, files = _package_files()
    importers = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "skorch" or n.startswith("skorch.") for n in names):
                importers.add(str(path.relative_to(root).parent))
    assert importers == {"_engine"}, importers


class _GradNorms(skorch.callbacks.Callback):
    """Records the global gradient norm skorch's on_grad_computed sees."""

    def initialize(self):
        self.norms = []
        return self

    def on_grad_computed(self, net, named_parameters, **kwargs):
        grads = [p.grad for _, p in named_parameters if p.grad is not None]
        self.norms.append(
            float(
                torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g) for g in grads])
                )
            )
        )


def test_clip_grad_norm_bounds_every_step(small_digits):
    X, y = small_digits
    params = {**TINY, "max_epochs": 2, "early_stopping": False}
    free = _GradNorms()
    CNNClassifier(**params, callbacks=[free]).fit(X, y)
    clipped = _GradNorms()
    clf = CNNClassifier(**params, clip_grad_norm=0.05, callbacks=[clipped]).fit(X, y)
    assert max(free.norms) > 0.5  # unclipped steps are far above the bound
    assert len(clipped.norms) == len(free.norms)
    assert max(clipped.norms) <= 0.05 * (1 + 1e-4)
    # a bound no step reaches changes nothing
    loose = CNNClassifier(**params, clip_grad_norm=1e6).fit(X, y)
    plain = CNNClassifier(**params).fit(X, y)
    np.testing.assert_allclose(
        loose.predict_proba(X), plain.predict_proba(X), atol=1e-6
    )
    assert not np.allclose(clf.predict_proba(X), plain.predict_proba(X), atol=1e-3)


def test_clip_grad_norm_is_validated():
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="clip_grad_norm"):
        CNNClassifier(**TINY, clip_grad_norm=0).fit(np.zeros((4, 8, 8)), [0, 1, 0, 1])


def test_the_sklearn_face_stays_small():
    """BaseNetEstimator keeps the scikit-learn face and the subclass hooks;
    how a fit runs lives in skcnn/_engine (issue 24: at most 350 lines)."""
    import ast
    import inspect

    import skcnn._base

    tree = ast.parse(inspect.getsource(skcnn._base))
    (cls,) = [
        n
        for n in tree.body
        if isinstance(n, ast.ClassDef) and n.name == "BaseNetEstimator"
    ]
    assert cls.end_lineno - cls.lineno + 1 <= 350


def test_prediction_batches_follow_the_networks_input_size():
    """Up to 1024 images a prediction batch, fewer when the network's input
    (after an input adapter's resize) is large: EfficientNet-Lite0 predicting
    1024 digits enlarged to 112 px peaked at 4.8 GB (2.6 GB after)."""
    from torch import nn

    from skcnn._data import TensorData
    from skcnn._engine.net import _infer_batch
    from skcnn.models.adapter import InputAdapter

    small = TensorData(torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    assert _infer_batch(nn.Conv2d(1, 2, 3), small) == 1024
    enlarged = nn.Sequential(InputAdapter(1, 3, input_size=112), nn.Conv2d(3, 2, 3))
    digits28 = TensorData(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))
    assert _infer_batch(enlarged, digits28) == (1 << 23) // (3 * 112 * 112)
    big = TensorData(torch.zeros(2, 3, 512, 512))
    assert _infer_batch(nn.Conv2d(3, 2, 3), big) == (1 << 23) // (3 * 512 * 512)
