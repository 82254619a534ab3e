"""The run loop of a comparison: every model on the same folds, one row each."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from .._compare_names import GROUPS
from ..pretrained import hub_checkpoint_dir
from ..robustness import shift_profile
from .data import (
    MAX_IMAGE_SIZE,
    _check_folds,
    _short,
    chance_f1,
    describe_data,
    is_volumes,
    load_run_data,
    summarize_images,
)
from .plan import (
    DEFAULT_BUDGET_S,
    _n_candidates,
    calibrate,
    feature_step,
    is_network,
    plan_rows,
)
from .report import write_outputs
from .state import (
    elapsed_before,
    hold_folder,
    load_state,
    restore_rows,
    robustness_size,
    save_state,
)
from .stats import PairedBootstrap, _rank, calibration_error
from .zoo import CALIBRATE_AS, _shift_transforms, default_models, resolve_models

# Rows that hold a network (the ensemble's first member comes from these).
NETWORK_ROWS = GROUPS["networks"] + GROUPS["transfer"]


@dataclass
class ComparisonResult:
    rows: list
    data: str
    n_train: int
    n_val: int
    n_ext: int
    wall_time_s: float
    fitted: dict = field(default_factory=dict)
    # model -> (validation predictions, external predictions, more external sets')
    predictions: dict = field(default_factory=dict)
    external: str = ""
    searches: dict = field(default_factory=dict)  # model -> its search space
    data_description: str = ""
    robustness: dict = None  # the shift_profile table, when computed
    robustness_n: int = 0  # validation images it was computed on
    not_run: dict = field(default_factory=dict)  # default rows unavailable here
    # one dict per external set: label, name, description, summary, chance_f1
    externals: list = field(default_factory=list)
    data_summary: str = ""  # sizes and per-class counts of the data
    val_chance_f1: float = 0.0
    budget: float = None  # seconds; None: no budget
    plan: dict = field(default_factory=dict)  # model -> the first plan, in words
    calibration_s: float = 0.0
    # model -> (validation probabilities, [external probabilities per set])
    probabilities: dict = field(default_factory=dict)
    ensemble: dict = field(default_factory=dict)  # how the ensemble row was made
    finished: bool = False  # False while running, or after a stop
    args: dict = field(default_factory=dict)  # the arguments that shape the results
    resumed_s: float = 0.0  # seconds the stopped run had taken (resume)

    def columns(self):
        from .report import table_columns

        return table_columns(self)

    def to_markdown(self):
        from .report import table_markdown

        return table_markdown(self.rows, self.columns())

    def __str__(self):
        return self.to_markdown()


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


class _Clock:
    """Elapsed time and an estimate of what is left: the plan's estimate of
    each row still to run, scaled by the pace measured so far."""

    def __init__(self):
        self.start = time.perf_counter()
        self.left = {}  # row -> its planned seconds, set once the plan is made
        self.pace = 1.0

    def elapsed(self):
        return time.perf_counter() - self.start

    def finish(self, name):
        self.left.pop(name, None)

    def __str__(self):
        text = f"{self.elapsed():.0f}s elapsed"
        if self.left:
            text += f", about {self.pace * sum(self.left.values()):.0f}s left"
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
    n_jobs="auto",
    cv=3,
    weights=None,
    image_size=None,
    random_state=0,
    out=None,
    robustness=True,
    dask=None,
    budget=DEFAULT_BUDGET_S,
    resume=False,
    progress=_progress,
):
    """Run every model on the same folds; return a :class:`ComparisonResult`.

    Parameters
    ----------
    data : "digits", "lfw-subset", a folder path or an ``.npz`` file
        The images to compare on ("lfw" is an alias of "lfw-subset",
        scikit-image's 200 face / non-face images; an ``.npz`` file holds
        arrays ``X`` (n, H, W[, C]) and ``y``).
    external : folder, ``.npz`` file, "shifted", "digits-printed", a list of
        them, or None
        External test sets, each scored in its own columns; None uses
        printed digits for digits and a shifted copy of the validation split
        otherwise (:func:`describe_external`).
    models : list of names and groups, str or None
        Models of :data:`MODEL_NAMES` and groups of :data:`GROUPS` ("classic",
        "networks", "transfer", "noise", "all"), or a comma-separated string of
        them; None runs them all.
    quick : bool
        Fewer epochs, two folds, smaller searches, a smaller robustness
        profile, and only the summary figures.
    device : str, default="auto"
        Device of the network models.
    n_jobs : int or "auto", default="auto"
        Parallel search jobs. "auto": the scikit-learn rows' CV fits run in
        as many processes as there are free cores (one thread each), the
        network rows one fit at a time with the threads inside it (2 cores,
        digits: 2 x 1 took 0.56-0.61x the time of 1 x 2 for pca+svm and
        hog+svm, 0.91x for cnn; benchmarks/bench_parallel.py).
    cv : int, default=3
        Cross-validation folds of the searches.
    weights : path or None
        DenseNet-121 weights for the pretrained rows; None looks in the
        torch hub cache.
    image_size : int or None
        Size images from a folder (or an ``.npz`` file) are resized to
        (folders: default 32).
    random_state : int, default=0
        Seeds the splits, the models and the shifts.
    out : folder or None
        Write results.csv, results.md, report.md, robustness.csv and PNG
        figures there, updated after every row.
    robustness : bool, default=True
        Score every model under the controlled shifts of
        :func:`skcnn.robustness.shift_profile` (8 kinds x 3 severities) on
        validation images.
    dask : str or None, default=None
        Address of a Dask scheduler: the searches run on that cluster
        through joblib's dask backend.
    budget : float or None, default=300
        Seconds the whole run may take. Each row's cost is measured on the
        data first (:mod:`skcnn.compare.plan`); rows then get fewer folds,
        candidates or epochs, or are listed as not run with the time they
        would need, so that the run fits. None: every row at its full
        configuration, however long it takes.
    resume : bool, default=False
        Continue the run whose state is in ``out``: rows it finished are kept
        (one table and one verdict over all rows); the arguments that shape
        the results must be the ones it was started with. ``budget`` is then
        the time for the rows still to run.
    progress : callable, default=print to stderr
        Called with one line of progress text at a time.

    Returns
    -------
    result : ComparisonResult
        The table's rows, the fitted models, their predictions and the
        robustness profile.
    """
    clock = _Clock()
    externals = _as_list(external)
    _check_options(
        out=out,
        device=device,
        weights=weights,
        image_size=image_size,
        cv=cv,
        budget=budget,
        resume=resume,
    )
    with hold_folder(out):
        args = dict(
            data=str(data),
            external=[str(e) for e in externals],
            models=models,
            quick=bool(quick),
            cv=cv,
            weights=None if weights is None else str(weights),
            image_size=image_size,
            random_state=random_state,
            robustness=bool(robustness),
        )
        saved = load_state(out, args) if resume else None
        names = resolve_models(models)
        X_train, y_train, X_val, y_val, sets = load_run_data(
            data, externals, image_size, random_state
        )
        candidates = default_models(
            image_shape=X_train.shape[1:],
            quick=quick,
            device=device,
            weights=weights,
            random_state=random_state,
            pixel_std=float(np.std(X_train / 255.0)),
            volumes=is_volumes(X_train),
        )
        _check_folds(y_train, 2 if quick else cv)
        result = ComparisonResult(
            [], _short(data), len(X_train), len(X_val), len(sets[0].y), 0.0
        )
        result.external = sets[0].description
        result.args = args
        result.data_description = describe_data(data)
        if image_size is not None or Path(str(data)).is_dir():
            # said, not silent: every row trains on images of this size
            h, w = X_train.shape[1:3]
            result.data_description += f", resized to {h}x{w} (--image-size{'' if image_size else '; default 32'})"
        result.data_summary = summarize_images(
            np.concatenate([X_train, X_val]), np.concatenate([y_train, y_val])
        )
        result.val_chance_f1 = chance_f1(y_val)
        result.budget = budget
        result.externals = [
            dict(
                label=s.label,
                name=s.name,
                description=s.description,
                summary=summarize_images(s.X, s.y),
                chance_f1=chance_f1(s.y),
            )
            for s in sets
        ]
        if models is None:
            # The default run has the rows that can run here; the others are
            # named (with what they need), not listed as failed rows.
            result.not_run = {
                n: candidates[n][1] for n in names if candidates[n][0] is None
            }
            names = [n for n in names if n not in result.not_run]
            for name, reason in result.not_run.items():
                progress(f"not run: {name} ({reason.removeprefix('skipped: ')})")
        boot_val = PairedBootstrap(y_val, random_state=random_state)
        boots_ext = [PairedBootstrap(s.y, random_state=random_state) for s in sets]
        done = set()
        if saved:
            classes = np.unique(y_train)
            done = restore_rows(
                result,
                saved,
                (names, classes, [y_val, *(s.y for s in sets)]),
                lambda preds, probs: _scores(
                    preds, y_val, sets, (boot_val, boots_ext), probs, classes
                ),
                progress,
            )
            result.resumed_s = elapsed_before(saved, progress)
        todo = [n for n in names if n not in done and candidates[n][0] is not None]
        progress(
            f"skcnn compare: {result.data_description}\n"
            f"  train {len(X_train)}, validation {len(X_val)}, "
            + ", ".join(f"{s.name} {len(s.y)}" for s in sets)
            + f"; {len(names)} models, {2 if quick else cv} folds"
            + (f", budget {budget:.0f}s" if budget is not None else ", no time budget")
            + (f", {len(done)} rows from the stopped run" if done else "")
            + (f", searches on the Dask cluster {dask}" if dask else "")
            + "".join(f"\n  external set {s.label}: {s.description}" for s in sets)
        )
        _warn_flattered(sets, names, candidates)
        folds_max = 2 if quick else cv
        costs = _calibrate(todo, candidates, X_train, y_train, random_state, progress)
        result.calibration_s = sum(c.seconds for c in costs.values())
        # the robustness profile's shifts (rotation, blur, JPEG, ...) are 2-D
        profile = robustness and not is_volumes(X_train)
        rob_sizes = ([80, 0] if quick else [200, 80, 0]) if profile else [0]
        end_s = _ensemble_seconds(todo, candidates, costs, len(y_train))

        def replan(names, sizes, pace=1.0):
            """The plan of ``names`` with the time left now."""
            return _plan(
                names,
                candidates,
                costs,
                folds_max,
                len(y_train),
                len(y_val) + sum(len(s.y) for s in sets),
                # a resumed run: the budget is the time for the rows still to run
                None if budget is None else budget - clock.elapsed(),
                sizes,
                pace=pace,
                end_s=end_s,
                network_done=any(
                    r["model"] in NETWORK_ROWS and r.get("status") == "ok"
                    for r in result.rows
                ),
            )

        plan = replan(todo, rob_sizes)
        result.plan = {n: p.describe() for n, p in plan.rows.items()}
        result.plan["robustness"] = (
            f"{plan.robustness_n} images, ~{plan.robustness_s:.0f}s"
            if plan.robustness_n
            else "not run"
        )
        rob_n = robustness_size(saved, len(y_val)) if done else None
        rob_n = plan.robustness_n if rob_n is None else rob_n
        result.robustness_n = min(rob_n, len(y_val))
        if budget is not None or todo:
            progress(
                f"plan ({'budget ' + format(budget, '.0f') + 's, ' if budget is not None else ''}"
                f"calibrated in {result.calibration_s:.1f}s; estimate "
                f"{plan.seconds:.0f}s):\n"
                + "\n".join(f"  {n}: {p.describe()}" for n, p in plan.rows.items())
                + (
                    f"\n  robustness profile: {plan.robustness_n} validation images"
                    f" (~{plan.robustness_s:.0f}s)"
                    if plan.robustness_n
                    else "\n  robustness profile: not run"
                )
            )
        clock.left = {n: p.seconds for n, p in plan.rows.items() if p.run}
        rob_data = _robustness_images(X_val, y_val, result.robustness_n, random_state)
        backend = _dask_backend(dask) if dask else contextlib.nullcontext()
        estimated = actual = 0.0
        try:
            with backend:
                for i, name in enumerate(names, 1):
                    if name in done:
                        continue
                    tag = f"[{i}/{len(names)}] {name}"
                    if candidates[name][0] is None:
                        _not_available(result, name, candidates[name][1], tag, progress)
                        continue
                    rest = [
                        n for n in todo if n not in {r["model"] for r in result.rows}
                    ]
                    # Slower than planned: the rest is planned slower. Faster: the
                    # time saved is left over for the rest, but no estimate is cut
                    # (digits: the classic rows ran 2-4x faster than planned, the
                    # DenseNet 1.2x slower; a pace below 1 made it overrun).
                    pace = min(max(actual / estimated, 1.0), 4.0) if estimated else 1.0
                    clock.pace = pace
                    now = replan(rest, [result.robustness_n], pace)
                    row_plan = now.rows[name]
                    if not row_plan.run:
                        progress(f"{tag}: not run ({row_plan.note})")
                        result.rows.append(
                            {
                                "model": name,
                                "status": f"not run: {row_plan.note}",
                                "plan": row_plan.describe(),
                            }
                        )
                    else:
                        t0 = time.perf_counter()
                        _run_row(
                            result,
                            name,
                            *candidates[name],
                            row_plan,
                            tag=tag,
                            data=(X_train, y_train, X_val, y_val, sets),
                            random_state=random_state,
                            n_jobs=-1
                            if dask
                            else _row_jobs(n_jobs, candidates[name][0]),
                            boots=(boot_val, boots_ext),
                            progress=progress,
                            clock=clock,
                        )
                        if rob_data is not None:
                            _robustness(result, name, rob_data, random_state)
                        actual += time.perf_counter() - t0
                        estimated += row_plan.seconds / pace
                    clock.finish(name)
                    if (
                        out is not None
                    ):  # a crash, Ctrl-C or kill later loses no finished row
                        _write_progress(
                            result, out, args, clock, (X_val, y_val), sets, quick, name
                        )
                _ensemble_row(
                    result,
                    candidates,
                    (X_train, y_train, X_val, y_val, sets),
                    (boot_val, boots_ext),
                    rob_data,
                    random_state,
                    progress,
                )
        except BaseException:
            if out is not None and result.rows:
                result.wall_time_s = clock.elapsed() + result.resumed_s
                _rank_all(result, boots_ext)
                write_outputs(
                    result, out, y_val, [s.y for s in sets], per_model_figures=[]
                )
            raise
        _rank_all(result, boots_ext)
        result.finished = True
        result.wall_time_s = clock.elapsed() + result.resumed_s
        if out is not None:
            _write_progress(result, out, args, clock, (X_val, y_val), sets, quick)
        return result


def _as_list(external):
    if external is None:
        return []
    if isinstance(external, (str, Path)):
        return [external]
    return list(external)


def _warn_flattered(sets, names, candidates):
    if not any(s.name == "shifted validation" for s in sets):
        return
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
            stacklevel=3,
        )


def _calibrate(names, candidates, X, y, random_state, progress):
    """name -> Cost, each row's estimator timed on a subsample of the data."""
    costs = {}
    if names:
        progress(f"calibrating {len(names)} rows on a subsample of the training images")
    for name in sorted(names, key=lambda n: n in CALIBRATE_AS):
        like = CALIBRATE_AS.get(name)
        if like in costs:  # the same model with noise or one more step
            costs[name] = replace(costs[like], seconds=0.0)
            continue
        with _thread_limits(candidates[name][0]):
            costs[name] = calibrate(
                candidates[name][0], X, y, random_state=random_state
            )
    return costs


def _plan(
    names,
    candidates,
    costs,
    cv,
    n_train,
    n_predict,
    budget,
    rob_sizes,
    pace=1.0,
    end_s=0.0,
    network_done=False,
):
    """The plan of ``names`` within ``budget`` seconds, less a reserve for
    the end of the run: ``end_s`` (the ensemble; not kept when no network
    row has run or will run, ``network_done`` saying whether one has) plus
    the ranks, the report and the figures (a few seconds, and 5% of the
    budget for the estimates' error)."""

    def plan(reserve, chosen):
        left = budget
        if left is not None:
            left = max(0.95 * left - reserve * pace - 2.0 - 0.3 * len(names), 0.0)
        rows = {n: (candidates[n][0], candidates[n][1], costs[n]) for n in chosen}
        return plan_rows(
            rows,
            left,
            cv=cv,
            n_train=n_train,
            n_predict=n_predict,
            pace=pace,
            robustness=rob_sizes,
        )

    planned = plan(end_s, names)
    if (
        end_s
        and not network_done
        and not any(p.run for n, p in planned.rows.items() if n in NETWORK_ROWS)
    ):
        # No network row runs, so there will be no ensemble: its reserve goes
        # to the other rows (the network rows stay out, or they would run
        # and bring the ensemble back without its time).
        freed = plan(0.0, [n for n in names if n not in NETWORK_ROWS])
        freed.rows = {n: freed.rows.get(n) or planned.rows[n] for n in names}
        planned = freed
    return planned


def _ensemble_seconds(names, candidates, costs, n_train):
    """The ensemble's cost: a classic row without probabilities (an SVM) is
    refitted through CalibratedClassifierCV (3 folds and a refit)."""
    return max(
        (
            3.5 * costs[n].fit(n_train)
            for n in names
            if n in GROUPS["classic"] and not hasattr(candidates[n][0], "predict_proba")
        ),
        default=0.0,
    )


def _thread_limits(estimator):
    """The BLAS / OpenMP pools of a scikit-learn row limited as skcnn limits
    torch's threads (the cores other processes do not keep busy): on a busy
    2-core machine hog+pca+svm took 86 s with free pools and 7.4 s with one
    thread. A network row sets its own threads."""
    if is_network(estimator):
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    from .._device import fit_threads

    return threadpool_limits(limits=fit_threads("auto"))


def _not_available(result, name, reason, tag, progress):
    hint = (
        f"; or place densenet121-a639ec97.pth in {hub_checkpoint_dir()}"
        if "DenseNet" in reason
        else ""
    )
    progress(f"{tag}: {reason}{hint}")
    result.rows.append({"model": name, "status": reason})


def _row_jobs(n_jobs, estimator):
    """A row's search jobs: ``n_jobs`` as given; "auto": the free cores for a
    scikit-learn row (its fits are single-threaded or small), 1 for a
    network (its threads already use the cores)."""
    if n_jobs != "auto":
        return n_jobs
    if is_network(estimator):
        return 1
    from .._device import fit_threads

    return fit_threads("auto")


def _search(estimator, grid, scoring, folds, n_jobs, X, y):
    return GridSearchCV(
        estimator,
        grid,
        scoring=scoring,
        cv=folds,
        n_jobs=n_jobs,
        refit=True,
        error_score="raise",
    ).fit(X, y)


@dataclass
class _FeatureSearch:
    """What :func:`_feature_search` found, as GridSearchCV's attributes."""

    best_estimator_: object
    best_params_: dict
    best_score_: float
    best_index_: int
    cv_results_: dict


def _feature_search(estimator, grid, scoring, folds, n_jobs, X, y):
    """GridSearchCV of a Pipeline that starts with a pretrained feature
    extractor, with each extractor candidate's features computed once.

    The extractor learns nothing from the images (``fit`` records their
    layout), so the features of a fold are the rows of the features of the
    whole training split: each extractor setting of the grid extracts the
    training images once, and the rest of the pipeline is searched on those
    features with the same folds and candidates, and refit on all of them.
    A search of 2 layers x 3 folds extracts the training images 2 times
    instead of 2 x 3 + 1.
    """
    from sklearn.model_selection import ParameterGrid
    from sklearn.pipeline import Pipeline

    step = feature_step(estimator)
    prefix = f"{step}__"
    feature_grid = {
        k[len(prefix) :]: v for k, v in grid.items() if k.startswith(prefix)
    }
    head_grid = {k: v for k, v in grid.items() if not k.startswith(prefix)}
    head = Pipeline(estimator.steps[1:])
    best, means, stds, params = None, [], [], []
    for feature_params in ParameterGrid(feature_grid):
        extractor = clone(estimator.named_steps[step]).set_params(**feature_params)
        features = extractor.fit(X[:1]).transform(X)
        search = _search(head, head_grid, scoring, folds, n_jobs, features, y)
        results = search.cv_results_
        for i, candidate in enumerate(results["params"]):
            params.append(
                {**{prefix + k: v for k, v in feature_params.items()}, **candidate}
            )
            means.append(float(results["mean_test_score"][i]))
            stds.append(float(results["std_test_score"][i]))
        if best is None or search.best_score_ > best[1].best_score_:
            best = (extractor, search, len(params) - len(results["params"]))
    extractor, search, offset = best
    fitted = Pipeline([(step, extractor), *search.best_estimator_.steps])
    index = offset + int(search.best_index_)
    return _FeatureSearch(
        fitted,
        params[index],
        means[index],
        index,
        {"params": params, "mean_test_score": means, "std_test_score": stds},
    )


def _run_row(
    result,
    name,
    estimator,
    grid,
    row_plan,
    *,
    tag,
    data,
    random_state,
    n_jobs,
    boots,
    progress,
    clock,
):
    """Search, refit and score one model as planned; append its row."""
    X_train, y_train, X_val, y_val, sets = data
    estimator = clone(estimator).set_params(**row_plan.params)
    if row_plan.epochs is not None:
        estimator.set_params(max_epochs=row_plan.epochs)
    t0 = time.perf_counter()
    cv_f1 = cv_std = None
    with _thread_limits(estimator):
        if row_plan.grid is None:
            progress(f"{tag}: one fit on the training split ({clock})")
            best, best_params = estimator.fit(X_train, y_train), dict(row_plan.params)
        else:
            folds = StratifiedKFold(
                n_splits=row_plan.folds, shuffle=True, random_state=random_state
            )
            n_cand = _n_candidates(row_plan.grid)
            n_fits = n_cand * row_plan.folds
            progress(
                f"{tag}: {n_cand} candidate(s) x {row_plan.folds} folds + refit ({clock})"
            )
            scoring = (
                # fits in this process report each fold; other processes cannot
                _FitProgress(progress, n_fits, clock)
                if n_jobs in (None, 1)
                else "f1_macro"
            )
            search = (_feature_search if feature_step(estimator) else _search)(
                estimator, row_plan.grid, scoring, folds, n_jobs, X_train, y_train
            )
            best, best_params = search.best_estimator_, search.best_params_
            cv_f1 = float(search.best_score_)
            cv_std = float(search.cv_results_["std_test_score"][search.best_index_])
        fit_time = time.perf_counter() - t0
        if hasattr(best, "predict_proba"):
            # one pass per set: the labels are the probabilities' argmax, as
            # every classifier of the table predicts them
            probs = [best.predict_proba(X) for X in (X_val, *(s.X for s in sets))]
            preds = [best.classes_[p.argmax(1)] for p in probs]
            result.probabilities[name] = (probs[0], probs[1:])
        else:
            preds = [best.predict(X) for X in (X_val, *(s.X for s in sets))]
    row = {
        "model": name,
        "status": "ok",
        "best_params": best_params,
        "cv_f1": cv_f1,
        "cv_f1_std": cv_std,
    }
    probs = result.probabilities.get(name)
    row.update(
        _scores(preds, y_val, sets, boots, probs, getattr(best, "classes_", None))
    )
    row["fit_time_s"] = float(fit_time)
    row["plan"] = row_plan.describe()
    row["planned_s"] = float(row_plan.seconds)
    result.rows.append(row)
    result.fitted[name] = best
    result.searches[name] = row_plan.grid
    result.predictions[name] = tuple(preds)
    progress(
        f"    val F1 {row['val_f1']:.3f}  "
        + "  ".join(f"{s.name} F1 {row[s.label + '_f1']:.3f}" for s in sets)
        + f"  ({fit_time:.1f}s; planned ~{row_plan.seconds:.0f}s)"
    )


def _scores(preds, y_val, sets, boots, probs=None, classes=None):
    """F1, interval and accuracy on the validation split and every external
    set, the calibration error of ``probs`` (validation, [external sets]; the
    columns of ``classes``) when the row has them, and what a reader must
    know about them (one class, chance level)."""
    boot_val, boots_ext = boots
    out = {
        "val_f1": float(f1_score(y_val, preds[0], average="macro")),
        "val_f1_ci": boot_val.interval(preds[0]),
        "val_acc": float(accuracy_score(y_val, preds[0])),
    }
    if probs is not None:
        out["val_ece"] = calibration_error(y_val, probs[0], classes)
    notes = []
    for i, (s, pred, boot) in enumerate(zip(sets, preds[1:], boots_ext)):
        out[f"{s.label}_f1"] = float(f1_score(s.y, pred, average="macro"))
        out[f"{s.label}_f1_ci"] = boot.interval(pred)
        out[f"{s.label}_acc"] = float(accuracy_score(s.y, pred))
        if probs is not None:
            out[f"{s.label}_ece"] = calibration_error(s.y, probs[1][i], classes)
    for label, y, pred in [("val", y_val, preds[0])] + [
        (s.label, s.y, p) for s, p in zip(sets, preds[1:])
    ]:
        if len(np.unique(pred)) == 1:
            notes.append(f"{label}: predicts one class")
        elif out[f"{label}_f1_ci"][0] <= chance_f1(y) + 1e-9:
            notes.append(f"{label}: not above chance")
    if len(sets) > 1:
        out["worst_ext_f1"] = min(out[f"{s.label}_f1"] for s in sets)
    out["notes"] = "; ".join(notes)
    return out


def _robustness_images(X_val, y_val, n, random_state):
    """A stratified part of the validation images for the shift profile:
    the same images, shifted the same way, for every model."""
    if n <= 0:
        return None
    if n < len(y_val):
        X_val, _, y_val, _ = train_test_split(
            X_val, y_val, train_size=n, stratify=y_val, random_state=random_state
        )
    return X_val, y_val


def _robustness(result, name, rob_data, random_state):
    """Add the shift profile of one fitted model (seeded: every model sees
    the same shifted images)."""
    profile = shift_profile(
        {name: result.fitted[name]},
        *rob_data,
        scoring="f1_macro",
        random_state=random_state,
    )
    if result.robustness is None:
        result.robustness = {k: [] for k in profile}
    for k, v in profile.items():
        result.robustness[k].extend(v)


def _rank_all(result, boots_ext):
    for i, (s, boot) in enumerate(zip(result.externals, boots_ext)):
        _rank(result, boot, i, s["label"])


def _write_progress(result, out, args, clock, val, sets, quick, name=None):
    """The table, report.md, the finished row's figures and the state of the
    run as they stand (a run stopped at any point leaves a report and can be
    resumed); ``name=None``: the end of the run, with the summary figures.
    ``val``: the validation images and labels."""
    X_val, y_val = val
    result.wall_time_s = clock.elapsed() + result.resumed_s
    if quick:
        figures = False
    elif name is None:
        figures = [n for n in result.predictions if n == "ensemble"]
    else:
        figures = [name] if name in result.predictions else []
    write_outputs(
        result,
        out,
        y_val,
        [s.y for s in sets],
        per_model_figures=figures,
        summary_figures=name is None,
        images=[X_val, *(s.X for s in sets)],
    )
    save_state(out, args, result, result.wall_time_s)  # last: the report exists


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


def _check_options(*, out, device, weights, image_size, cv, budget, resume):
    """Everything a run needs, checked before the first model trains."""
    from .._device import resolve_device

    resolve_device(device)
    if budget is not None and (
        isinstance(budget, bool)
        or not isinstance(budget, (int, float))
        or not np.isfinite(budget)
        or budget <= 0
    ):
        raise ValueError(
            f"budget must be a positive number of seconds or None (no budget); got {budget!r}."
        )
    if resume and out is None:
        raise ValueError("resume needs out: the folder of the run to continue.")
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


def _pick(rows):
    """The best row by CV F1 (rows without one by validation F1, said so)."""
    with_cv = [r for r in rows if r.get("cv_f1") is not None]
    if with_cv:
        return max(with_cv, key=lambda r: r["cv_f1"]), "CV F1"
    return (
        (max(rows, key=lambda r: r["val_f1"]), "validation F1") if rows else (None, "")
    )


def _ensemble_row(result, candidates, data, boots, rob_data, random_state, progress):
    """A soft vote of the best network and the best classic row (by CV F1):
    the mean of their predicted probabilities, scored like every row."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.frozen import FrozenEstimator

    X_train, y_train, X_val, y_val, sets = data
    ok = [
        r for r in result.rows if r.get("status") == "ok" and r["model"] != "ensemble"
    ]
    nets = [
        r
        for r in ok
        if r["model"] in NETWORK_ROWS and r["model"] in result.probabilities
    ]
    classic = [r for r in ok if r["model"] in GROUPS["classic"]]
    (net, net_by), (cla, cla_by) = _pick(nets), _pick(classic)
    if net is None or cla is None:
        return
    t0 = time.perf_counter()
    members = [net["model"], cla["model"]]
    progress(
        f"[+] ensemble: soft vote of {members[0]} (best network by {net_by}) and "
        f"{members[1]} (best classic model by {cla_by})"
    )
    if cla["model"] not in result.probabilities:
        # No probabilities (an SVC): calibrated on CV predictions (sklearn's
        # replacement for SVC(probability=True), deprecated in 1.9).
        from sklearn.calibration import CalibratedClassifierCV

        est, _ = candidates[cla["model"]]
        classic_model = CalibratedClassifierCV(
            clone(est).set_params(**cla["best_params"]), cv=3, ensemble=False
        )
        with _thread_limits(est):
            classic_model.fit(X_train, y_train)
            result.probabilities[cla["model"]] = (
                classic_model.predict_proba(X_val),
                [classic_model.predict_proba(s.X) for s in sets],
            )
    else:
        classic_model = result.fitted.get(cla["model"])
    classes = np.unique(y_train)
    p_net, p_cla = (
        result.probabilities[net["model"]],
        result.probabilities[cla["model"]],
    )
    probs = [(a + b) / 2 for a, b in zip([p_net[0], *p_net[1]], [p_cla[0], *p_cla[1]])]
    preds = [classes[p.argmax(1)] for p in probs]
    row = {
        "model": "ensemble",
        "status": "ok",
        "best_params": {"members": " + ".join(members)},
        "cv_f1": None,
        "cv_f1_std": None,
    }
    row.update(_scores(preds, y_val, sets, boots, (probs[0], probs[1:]), classes))
    row["fit_time_s"] = time.perf_counter() - t0
    row["plan"] = "soft vote of two fitted rows"
    result.rows.append(row)
    result.predictions["ensemble"] = tuple(preds)
    result.probabilities["ensemble"] = (probs[0], probs[1:])
    result.ensemble = {
        "members": members,
        "chosen_by": [net_by, cla_by],
        "classic": None if classic_model is None else clone(classic_model),
    }
    if net["model"] in result.fitted and classic_model is not None:
        vote = VotingClassifier(
            [
                ("network", FrozenEstimator(result.fitted[net["model"]])),
                ("classic", FrozenEstimator(classic_model)),
            ],
            voting="soft",
        ).fit(X_train, y_train)
        result.fitted["ensemble"] = vote
        if rob_data is not None:
            _robustness(result, "ensemble", rob_data, random_state)
    progress(
        f"    val F1 {row['val_f1']:.3f}  "
        + "  ".join(f"{s.name} F1 {row[s.label + '_f1']:.3f}" for s in sets)
        + f"  ({row['fit_time_s']:.1f}s)"
    )
