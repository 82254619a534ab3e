"""The run loop of a comparison: every row on the same folds, one value each.

The rows come from the registry (:mod:`skcnn.compare.registry`), each row is
fitted by :func:`skcnn.compare.fit.fit_row`, which returns a value, the plan
comes from :mod:`skcnn.compare.plan` and the report modules format what the
loop collected. This module only orders the work.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .data import _check_folds, is_volumes, load_run_data, load_selection_sets
from .fit import profile_images, row_jobs
from .lanes import Job, Lanes, lane_count, lane_order
from .options import as_list, check_options, dask_backend, flattered, warn_flattered
from .plan import DEFAULT_BUDGET_S, Pace, Planner, calibrate_rows
from .progress import Clock, say, say_not_available, say_plan, say_start
from .registry import Context
from .report import writer
from .result import ComparisonResult
from .row import Row, Sets
from .state import (
    elapsed_before,
    hold_folder,
    load_state,
    restore_rows,
    robustness_size,
)
from .zoo import registered, resolve_models

__all__ = ["ComparisonResult", "run_comparison"]


def run_comparison(
    data="digits",
    *,
    external=None,
    select=None,
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
    replay=None,
    extra_rows=(),
    progress=say,
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
    select : folder, ``.npz`` file, "digits-other-faces", "none", a list of
        them, or None
        Selection sets: populations the run may look at to choose (the
        recommended model, the vote's members), scored in their own columns
        (``sel_*``), never used for training nor counted as external. None:
        300 digits drawn by font faces the printed digits do not use for
        digits, none otherwise.
    models : list of names and groups, str or None
        Rows of the registry and their groups ("classic", "networks",
        "transfer", "noise", "all"), or a comma-separated string of them;
        None runs them all.
    quick : bool
        Fewer epochs, two folds, smaller searches, a smaller robustness
        profile, and only the summary figures.
    device : str, default="auto"
        Device of the network models.
    n_jobs : int or "auto", default="auto"
        "auto": the rows run side by side in lanes, a worker process per
        free core, each row's fits one after another in its lane
        (:mod:`skcnn.compare.lanes`; on 2 cores the full digits run took
        0.49x the time of 0.3's); one free core, one row or ``dask``: the
        rows one after another in this process. An int: the rows in this
        process, each row's CV fits in that many processes (1: each fit's
        progress line).
        Network rows train with one thread per fit whatever the load, so
        that the table does not depend on it (1 and 2 threads train a CNN
        to different weights); a lane and this process give the same table.
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
        Write results.csv, results.md, report.md, robustness.csv, PNG
        figures and state.json there, updated after every row.
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
    replay : folder or None
        The output folder of an earlier run: run exactly the plan it ran
        (each row's candidates, folds and epochs), with no time budget, into
        ``out``. The arguments that shape the results must be that run's.
    extra_rows : list of :class:`~skcnn.compare.registry.RowSpec`
        Rows of your own, for this run (after the registered ones).
    progress : callable, default=print to stderr
        Called with one line of progress text at a time.

    Returns
    -------
    result : ComparisonResult
        The table's rows, the fitted models, their predictions and the
        robustness profile.
    """
    clock = Clock()
    externals = as_list(external)
    check_options(
        out=out,
        device=device,
        weights=weights,
        image_size=image_size,
        cv=cv,
        budget=budget,
        resume=resume,
    )
    specs = registered(extra_rows)
    n_lanes = lane_count(n_jobs, dask, len(resolve_models(models, specs)))
    # the lanes start now: they import torch while this process loads the data
    with hold_folder(out), Lanes(n_lanes, progress, clock).warm() as lanes:
        args = dict(
            data=str(data),
            external=[str(e) for e in externals],
            select=None if select is None else [str(e) for e in as_list(select)],
            models=models,
            quick=bool(quick),
            cv=cv,
            weights=None if weights is None else str(weights),
            image_size=image_size,
            random_state=random_state,
            robustness=bool(robustness),
        )
        saved = load_state(out, args) if resume else None
        replayed = load_state(replay, args) if replay is not None else None
        budget = None if replayed else budget
        run = _Run(args, specs, device, progress)
        result = run.result(budget)
        done = run.restore(saved) if saved else set()
        todo = [n for n in run.names if n not in done and run.built[n].reason is None]
        result.to_run = list(todo)
        say_start(progress, result, run.ext, run.names, done, budget, dask, run.folds)
        result.flattered = flattered(run.ext, [run.built[n] for n in run.names])
        warn_flattered(result.flattered)
        lanes.keep(len(todo))  # and a calibration measures with the lanes started
        costs = {}
        if budget is not None and not replayed:  # no budget: nothing to plan
            costs = calibrate_rows(
                {n: run.built[n] for n in todo},
                run.X_train,
                run.y_train,
                random_state=random_state,
                progress=progress,
            )
        result.calibration_s = sum(c.seconds for c in costs.values())
        n_predict = sum(len(y) for y in run.sets.ys)
        planner = Planner(
            run.built, costs, run.folds, len(run.y_train), n_predict, budget, clock
        )
        planner.lanes = clock.lanes = lanes.n
        sizes = [80, 0] if quick else [200, 80, 0]
        profile = robustness and not is_volumes(run.X_train)
        plan = planner.first(todo, sizes if profile else [0], replayed)
        rob_n = robustness_size(saved, len(run.sets.ys[0])) if done else None
        rob_n = plan.robustness_n if rob_n is None else rob_n
        result.robustness_n = min(rob_n, len(run.sets.ys[0]))
        say_plan(progress, result, plan, budget, replayed)
        run.rob_data = profile_images(
            run.X_sets[0], run.sets.ys[0], result.robustness_n, random_state
        )
        write = writer(result, out, args, clock, run.sets, run.X_sets, quick)
        queue = lane_order(plan, budget, run.built, lanes.n)
        try:
            with dask_backend(dask) if dask else contextlib.nullcontext():
                run.say_not_available(done)
                run.rows(queue, lanes, planner, write, replayed, n_jobs, dask)
                run.add_ensemble()
        except BaseException:
            lanes.close(kill=True)
            write(None, final=False)
            raise
        result.finished = True
        write(None)
        return result


class _Run:
    """The data and rows of one run, and fitting one row of it."""

    def __init__(self, args, specs, device, progress):
        self.args, self.progress = args, progress
        self.quick, self.random_state = args["quick"], args["random_state"]
        self.folds = 2 if self.quick else args["cv"]
        self.names = resolve_models(args["models"], specs)
        X_train, y_train, X_val, y_val, ext = load_run_data(
            args["data"], args["external"], args["image_size"], self.random_state
        )
        _check_folds(y_train, self.folds)
        sel = load_selection_sets(args["data"], args.get("select"), X_train, y_train)
        self.X_train, self.y_train, self.ext, self.sel = X_train, y_train, ext, sel
        self.X_sets = [X_val, *(s.X for s in ext), *(s.X for s in sel)]
        self.sets = Sets.of(y_val, ext, self.random_state, selections=sel)
        self.classes = np.unique(y_train)
        ctx = Context(
            tuple(X_train.shape[1:]),
            self.quick,
            device,
            args["weights"],
            self.random_state,
            float(np.std(X_train / 255.0)),
            is_volumes(X_train),
        )
        self.built = {n: _one_thread(specs[n].make(ctx)) for n in self.names}
        self.families = {n: specs[n].group for n in self.names}
        self.reasons = {n: specs[n].why for n in self.names}
        self.rob_data = None
        self.plans = {}  # row -> (its plan, its tag) while it runs

    def result(self, budget):
        X_val, y_val = self.X_sets[0], self.sets.ys[0]
        split = (self.X_train, self.y_train, X_val, y_val)
        self._result = result = ComparisonResult.new(
            self.args["data"],
            self.args["image_size"],
            self.args,
            budget,
            split,
            self.ext,
            self.sel,
        )
        result.families, result.reasons = self.families, self.reasons
        missing = {n: b.reason for n, b in self.built.items() if b.reason is not None}
        if self.args["models"] is None:  # the default run names what cannot run here
            result.not_run = missing
            self.names = [n for n in self.names if n not in missing]
            for name, reason in missing.items():
                self.progress(f"not run: {name} ({reason.removeprefix('skipped: ')})")
        return result

    def restore(self, saved):
        """The rows of the stopped run in ``saved``, kept in the result."""
        sets, classes = self.sets, self.classes

        def score(name, preds, probs, fields):
            # probs as stored: (validation, [external sets])
            flat = None if probs is None else (probs[0], *probs[1])
            return sets.row(name, preds, flat, classes, **fields)

        result = self._result
        done = restore_rows(
            result, saved, (self.names, classes, sets.ys), score, self.progress
        )
        result.resumed_s = elapsed_before(saved, self.progress)
        result.keep_plans(saved, self.built, self.args["cv"], done)
        return done

    def say_not_available(self, done):
        for name in self.names:
            reason = self.built[name].reason
            if reason is not None and name not in done:
                say_not_available(name, reason, self.progress)
                self._result.add(Row(name, reason))

    def add_ensemble(self):
        val = (self.X_sets[0], self.sets.ys[0])
        self._result.add_ensemble(
            self.sets,
            self.classes,
            val,
            self.rob_data,
            self.random_state,
            self.progress,
        )

    def rows(self, queue, lanes, planner, write, replayed, n_jobs, dask):
        """Run the rows of ``queue``, each planned again as it starts, in
        ``lanes``; write each as it finishes."""
        result, pace = self._result, Pace()
        # a row's search jobs: in a lane, its lane
        jobs = 1 if lanes.n > 1 else (-1 if dask else row_jobs(n_jobs))
        unwritten = []  # rows done in lanes: written once their lane has its next row
        while queue or lanes.running:
            if not (queue and lanes.free):
                while unwritten:
                    write(unwritten.pop(0))
                name, work = lanes.next_done()
                self.finish(name, work, planner, pace)
                result.to_run.remove(name)
                (unwritten.append if lanes.n > 1 else write)(name)
                continue
            name = queue.pop(0)
            tag = f"[{len(result.rows) + len(lanes.running) + 1}/{len(self.names)}] {name}"
            row_plan = planner.now(
                name,
                queue,
                pace,
                result.robustness_n,
                replayed,
                busy_s=lanes.busy_seconds(),
            )
            if not row_plan.run and planner.defer(name):
                queue.append(name)  # another try once the others ran
                self.progress(f"{tag}: later ({row_plan.note})")
                continue
            if row_plan.run:
                self.start(name, row_plan, tag, jobs, lanes)
                continue
            self.progress(f"{tag}: not run ({row_plan.note})")
            status = f"not run: {row_plan.note}"
            result.add(Row(name, status, plan=row_plan.describe()))
            result.to_run.remove(name)
            planner.clock.left.pop(name, None)
            write(name)
        for name in unwritten:
            write(name)
        lanes.close(wait=False)  # the lanes end while the report is written

    def start(self, name, row_plan, tag, n_jobs, lanes):
        """Fit row ``name`` as planned: now (one lane: this process) or in a
        free lane."""
        job = Job(
            self.built[name],
            row_plan,
            (self.X_train, self.y_train, self.X_sets),
            self.sets,
            self.rob_data,
            self.random_state,
            n_jobs,
            tag,
        )
        self.plans[name] = (row_plan, tag)
        if lanes.n > 1:
            self.progress(f"{tag}: {row_plan.trained()}, in a lane ({lanes.clock})")
        lanes.start(name, job, row_plan.seconds)

    def finish(self, name, work, planner, pace):
        """Keep a finished row: its table row, model, profile and pace."""
        result = self._result
        row_plan, tag = self.plans.pop(name)
        fitted = work.fitted
        result.collect(fitted, self.built[name], row_plan)
        planned = f"; planned ~{row_plan.seconds:.0f}s" if row_plan.estimated else ""
        head = f"{tag} done\n" if planner.lanes > 1 else ""
        self.progress(
            f"{head}    {self.sets.line(fitted.row)}  "
            f"({fitted.row.fit_time_s:.1f}s{planned})"
        )
        if work.profile is not None:
            result.add_profile(work.profile, self.rob_data, self.random_state)
        estimated = planner.estimate(name, row_plan, result.robustness_n)
        pace.record(self.built[name].spec.group, estimated, work.seconds)
        planner.clock.left.pop(name, None)


def _one_thread(built):
    """A network row trains with one thread per fit whatever the load: 1 and
    2 threads train a CNN to different weights, and a run's table must not
    depend on the load (its CV fits run in parallel processes instead)."""
    key = built.step_param("num_threads") if built.network else None
    if key is not None:
        built.estimator.set_params(**{key: 1})
    return built
