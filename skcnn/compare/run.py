"""The run loop of a comparison: every model on the same folds, one row each."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from .._compare_names import EXPECTED_S
from ..pretrained import hub_checkpoint_dir
from ..robustness import shift_profile
from .data import (
    MAX_IMAGE_SIZE,
    _check_folds,
    describe_data,
    describe_external,
    load_comparison_data,
)
from .report import write_outputs, write_table
from .stats import PairedBootstrap, _rank
from .zoo import _shift_transforms, default_models, resolve_models


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
        from .report import table_markdown

        return table_markdown(self.rows)

    def __str__(self):
        return self.to_markdown()


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


def _check_weights_file(weights):
    """The DenseNet-121 weights load into the architecture, before any row."""
    from torchvision.models import densenet121

    from ..pretrained import load_state_dict, remap_legacy_keys

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
    from .._device import resolve_device

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
