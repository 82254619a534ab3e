"""A comparison within a time budget: each row's cost measured on the user's
own images (calibration), then a plan that says per row how many candidates,
CV folds and epochs it gets, or that it does not run and why.

The cost of a row is measured, not looked up: a short fit of the row's own
estimator on a stratified subsample of the training split (for networks one
and two epochs, which separates the per-epoch cost from the fixed cost),
timed, and scaled to the split's size. The plan starts every row at its full
configuration and, while the estimated total exceeds the budget, steps down
the row whose next step saves the most time (fewer folds, one candidate, no
search, fewer epochs); a row with no step left is not run and is listed with
the time it would need. While the run goes, each row is planned again with
the time that is left and the pace measured so far.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import train_test_split

__all__ = [
    "DEFAULT_BUDGET_S",
    "Cost",
    "Pace",
    "Planner",
    "RowPlan",
    "calibrate",
    "calibrate_rows",
    "checked_plan",
    "plan_record",
    "plan_rows",
]

# The default budget of a run (seconds). The full digits table takes about
# 120-230 s on 2 cores; a user's folder gets what fits in the same time.
DEFAULT_BUDGET_S = 300.0
# Seconds a row costs beyond its fits (its scores, table and report files).
ROW_OVERHEAD_S = 1.0
# Fewest epochs a network row is planned with: at least this, and at least
# half of its own epochs. benchmarks/bench_min_epochs.py (the CNN row, 3
# seeds): on 16^3 volumes 3-8 of its 30 onecycle epochs gave F1 0.24-0.77,
# 15 gave 1.0 as 30 did; on digits 3 gave 0.87-0.93, 15 the score of 30.
MIN_EPOCHS = 3
MIN_EPOCH_SHARE = 0.5
# A network row's search keeps the best half of its candidates at each rung of
# epochs (with 3, the default of EpochHalvingSearchCV, 2 candidates race no rung).
HALVING_FACTOR = 2


@dataclass
class Cost:
    """A row's measured costs: ``const`` seconds per fit whatever the data
    (building the model, loading weights), and on ``m`` training images
    ``fixed`` seconds per fit plus ``per_epoch`` seconds per epoch (networks;
    one "epoch" for the others), both scaled by (n / m) ** exponent for a
    fit on n images; ``predict`` seconds per predicted image."""

    m: int
    const: float
    fixed: float
    per_epoch: float
    predict: float
    exponent: float = 1.0
    seconds: float = 0.0  # what the calibration itself took
    # a feature row: seconds per image of its first step's features (part of
    # ``fit``; a search computes them once per setting, not once per fit)
    extract: float = 0.0

    def fit(self, n, epochs=1):
        scale = (max(n, 1) / self.m) ** self.exponent
        return self.const + (self.fixed + self.per_epoch * epochs) * scale


# The cost of a row a run did not calibrate (no budget: nothing to plan).
UNMEASURED = Cost(m=1, const=0.0, fixed=0.0, per_epoch=0.0, predict=0.0)


@dataclass
class RowPlan:
    """What one row does: ``grid`` (None: one fit, no search), ``folds``,
    ``epochs`` (None: the estimator's own), the estimated ``seconds`` and
    a few words of what was cut (``note``), or ``run=False`` with why."""

    grid: dict | None
    folds: int
    epochs: int | None
    seconds: float
    note: str = "full"
    run: bool = True
    cuts_epochs: bool = False  # this level trains fewer epochs than the row's own
    params: dict = field(default_factory=dict)  # set before a fit without search
    estimated: bool = True  # False: a run with no budget measures no costs

    def trained(self, how=""):
        """What the row gets, in words (without the time); ``how``: how its
        candidates were searched (", raced to 15 of 30 epochs")."""
        if not self.run:
            return "not run"
        if self.grid is None:
            what = "one fit, no CV"
        else:
            n = _n_candidates(self.grid)
            what = f"{n} candidate(s) x {self.folds} folds{how}"
        epochs = f", {self.epochs} epochs" if self.epochs and not how else ""
        return what + epochs

    def describe(self):
        if not self.run:
            return f"not run: {self.note}"
        if self.note == "replayed":
            return f"{self.trained()}; replayed"
        if not self.estimated:
            return self.trained()
        cut = f" (cut: {self.note})" if self.note != "full" else ""
        return f"{self.trained()}; ~{self.seconds:.0f}s{cut}"


@dataclass
class Plan:
    budget: float
    rows: dict = field(default_factory=dict)  # name -> RowPlan
    robustness_n: int = 0  # 0: no robustness profile
    robustness_s: float = 0.0

    @property
    def seconds(self):
        return sum(p.seconds for p in self.rows.values() if p.run) + self.robustness_s


def _n_candidates(grid):
    return int(np.prod([len(v) for v in grid.values()])) if grid else 1


def _feature_candidates(built, grid):
    """How many extractor settings a feature row's grid holds."""
    prefix = f"{built.feature_step}__"
    return _n_candidates({k: v for k, v in grid.items() if k.startswith(prefix)})


def _built(estimator):
    """A :class:`~skcnn.compare.registry.Built` row (an estimator alone is
    read as a row of your own)."""
    from .registry import Built, RowSpec

    if isinstance(estimator, Built):
        return estimator
    return Built(RowSpec("row", group="classic", build=estimator), estimator, None)


def _exponent(estimator):
    """How a row's fit time grows with the images: kernel SVMs about n^1.5,
    the rest linearly."""
    from sklearn.svm import SVC

    steps = getattr(estimator, "steps", [(None, estimator)])
    return 1.5 if any(isinstance(s, SVC) for _, s in steps) else 1.0


def _subsample(X, y, m, random_state):
    if m >= len(y):
        return X, y
    classes, counts = np.unique(y, return_counts=True)
    if m < 2 * len(classes):
        m = 2 * len(classes)
    X_m, _, y_m, _ = train_test_split(
        X, y, train_size=m, stratify=y, random_state=random_state
    )
    return X_m, y_m


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def calibrate(estimator, X, y, *, random_state=0):
    """The :class:`Cost` of one row, measured by short fits on subsamples of
    ``(X, y)``: two images per class (the cost of any fit), then for a
    network one 3-epoch fit on 256 images (128 when the first fit took 2 s:
    a large backbone on large images), timed per epoch by its history; for the
    others a fit on 128 images, 400 when that took under half a second. Cheap
    rows are measured on enough images, costly ones cost little to measure."""
    built = _built(estimator)
    estimator, network = built.estimator, built.network
    t_start = time.perf_counter()

    def fit(m, epochs=1):
        X_m, y_m = _subsample(X, y, m, random_state)
        est = clone(estimator)
        if network:
            est.set_params(**{built.epochs_param: epochs})
        t, fitted = _timed(lambda: est.fit(X_m, y_m))
        return t, fitted, X_m

    n_classes = len(np.unique(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = min(len(y), max(2 * n_classes, 16))
        t0, _, _ = fit(m0)
        if network:
            # three epochs on 256 images (128 when a fit of a few images
            # already took 2 s: a large backbone on large images), timed by the
            # fit's own history: the difference of a 2- and a 1-epoch fit's
            # wall times was too noisy (the DenseNet row on digits: 12 to 38 s
            # estimated for the same fit). Scaled to 1,347 digits the noise of
            # a 128-image fit grew 10x: the LP-FT row was estimated at 21 and
            # 35 s in two runs for the same 13-22 s fit.
            m = min(len(y), 128 if t0 >= 2.0 else 256)
            t3, fitted, X_m = fit(m, 3)
            m, const = len(X_m), t0
            net = fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted
            durs = [h["dur"] for h in net.history_]  # skorch's EpochTimer
            per_epoch = max(float(np.median(durs)), 1e-4)
            fixed = max(t3 - const - sum(durs), 0.0)
        else:
            m = min(len(y), 128)
            t1, fitted, X_m = fit(m)
            if t1 < 0.5 and len(y) > m:
                m = min(len(y), 400)
                t1, fitted, X_m = fit(m)
            m, const = len(X_m), min(t0, t1)
            per_epoch, fixed = max(t1 - const, 1e-4), 0.0
        t_pred, _ = _timed(lambda: fitted.predict(X_m))
        extract = 0.0
        if built.feature_step and not network:
            step = clone(estimator.steps[0][1])
            t_ext, _ = _timed(lambda: step.fit(X_m[:1]).transform(X_m))
            extract = t_ext / m
    return Cost(
        m=m,
        const=const,
        fixed=fixed,
        per_epoch=per_epoch,
        predict=t_pred / m,
        exponent=1.0 if network else _exponent(estimator),
        seconds=time.perf_counter() - t_start,
        extract=extract,
    )


def by_epochs(built, grid):
    """Whether a row's search goes by successive halving over epochs
    (:class:`~skcnn.model_selection.EpochHalvingSearchCV`): a network whose
    estimator continues its training (``warm_start``, ``schedule_epochs``),
    not behind a feature step (searched once per setting instead), with more
    than one candidate, and a grid that sets none of what the halving sets
    itself (epochs, early stopping, the validation split)."""
    from ..model_selection import _SEARCH_OWNED

    if not built.network or built.feature_step or _n_candidates(grid) < 2:
        return False
    params = built.estimator.get_params()
    return {"warm_start", "schedule_epochs"} <= set(params) and not (
        set(grid) & _SEARCH_OWNED
    )


def halving_rungs(n_candidates, epochs):
    """(epochs, candidates) of each rung of a network row's halving search."""
    from ..model_selection import EpochHalvingSearchCV

    search = EpochHalvingSearchCV(None, {}, factor=HALVING_FACTOR, stop_at_one=True)
    return search._rungs(n_candidates, epochs)


def halving_epochs(n_candidates, epochs):
    """Epochs a halving search trains per fold, over all its candidates
    (each rung continues its survivors from the rung before)."""
    rungs, counts = halving_rungs(n_candidates, epochs)
    return sum(n * (e - before) for n, e, before in zip(counts, rungs, [0, *rungs]))


def _levels(built, grid, cv, cost, n_train, n_predict):
    """The row's configurations, from the full one to the cheapest."""
    epochs = built.estimator.get_params()[built.epochs_param] if built.network else None
    fewest = max(MIN_EPOCHS, int(np.ceil((epochs or 0) * MIN_EPOCH_SHARE)))
    first = {k: [v[0]] for k, v in grid.items()} if grid else grid
    # A fit without a search takes the grid's first candidate, not the
    # estimator's bare defaults (PCA keeping every component, ...).
    one = {k: v[0] for k, v in grid.items()} if grid else {}
    configs = []
    if grid is not None:
        configs.append((grid, cv, epochs, "full"))
        if cv > 2:
            configs.append((grid, 2, epochs, "2 folds"))
        if _n_candidates(grid) > 1:
            configs.append((first, 2, epochs, "first candidate, 2 folds"))
    configs.append((None, 0, epochs, "full" if grid is None else "one fit, no search"))
    e = epochs
    while e is not None and e // 2 >= fewest:
        e //= 2
        configs.append((None, 0, e, f"one fit, {e} epochs"))
    out = []
    for g, folds, ep, note in configs:
        fits = 0.0
        if g is not None and built.feature_step:
            # the training images' features once per setting of the step, then
            # each candidate's head fitted on each fold's features
            n_fold = n_train * (folds - 1) / folds
            head = max(cost.fit(n_fold) - cost.extract * n_fold, cost.const)
            fits = (
                _feature_candidates(built, g) * cost.extract * n_train
                + _n_candidates(g) * folds * head
            )
        elif g is not None and by_epochs(built, g):
            # every candidate starts (its fixed cost); the epochs of the rungs
            n_fold = n_train * (folds - 1) / folds
            n = _n_candidates(g)
            trained = halving_epochs(n, ep)
            fits = folds * (
                n * (cost.fit(n_fold, 0) + cost.predict * n_train / folds)
                + (cost.fit(n_fold, trained) - cost.fit(n_fold, 0))
            )
        elif g is not None:
            n_fold = n_train * (folds - 1) / folds
            fits = (
                _n_candidates(g)
                * folds
                * (cost.fit(n_fold, ep or 1) + cost.predict * n_train / folds)
            )
        seconds = fits + cost.fit(n_train, ep or 1) + cost.predict * n_predict
        out.append(
            RowPlan(
                g,
                folds,
                ep,
                seconds + ROW_OVERHEAD_S,
                note,
                cuts_epochs=ep != epochs,
                params=one if g is None else {},
            )
        )
    return out


def _cheaper_each(levels):
    """The levels that save time over the one before: a step that saves
    nothing (2 folds of a feature row, whose folds reuse one extraction)
    would stop the cuts before the row's cheaper levels."""
    out = levels[:1]
    for level in levels[1:]:
        if level.seconds < out[-1].seconds:
            out.append(level)
    return out


def robustness_seconds(costs, n_images):
    """The shift profile: 25 predictions of ``n_images`` per row, plus the
    shifting itself (about as costly as one cheap prediction)."""
    return sum(25 * n_images * (c.predict + 2e-4) for c in costs)


def plan_rows(
    rows, budget, *, cv, n_train, n_predict, pace=1.0, robustness=(200, 80, 0)
):
    """A :class:`Plan` for ``rows`` (name -> (Built row or estimator, grid,
    Cost)) within ``budget`` seconds (None: every row in full); estimates
    are multiplied by ``pace`` (the measured ratio of actual to estimated
    time so far: a number, or name -> number). ``robustness``: the sizes the
    shift profile may have, largest first (0: none)."""
    paces = pace if isinstance(pace, dict) else dict.fromkeys(rows, pace)
    families = {name: _built(est).spec.group for name, (est, _, _) in rows.items()}
    levels = {
        name: _cheaper_each(
            [
                replace(p, seconds=p.seconds * paces[name])
                for p in _levels(_built(est), grid, cv, cost, n_train, n_predict)
            ]
        )
        for name, (est, grid, cost) in rows.items()
    }
    pace = max(paces.values(), default=1.0)
    at = dict.fromkeys(levels, 0)
    dropped = {}
    rob_sizes = list(robustness) or [0]
    rob = 0
    costs = [c for _, _, c in rows.values()]

    def rob_s(i):
        return robustness_seconds(costs, rob_sizes[i]) * pace

    def total():
        return sum(levels[n][i].seconds for n, i in at.items()) + rob_s(rob)

    # Cut in this order, the largest saving first within each phase: a row
    # that cannot fit at its cheapest, the searches (folds, candidates), the
    # robustness profile, the epochs of a row that needs a third of the
    # budget at its cheapest (then that row), the epochs of the others (the
    # cut that costs a model the most quality), then whole rows.
    def step(epochs_too, among=None):
        steps = {
            n: levels[n][i].seconds - levels[n][i + 1].seconds
            for n, i in at.items()
            if i + 1 < len(levels[n])
            and (among is None or n in among)
            and (epochs_too or not levels[n][i + 1].cuts_epochs)
        }
        best = max(steps, key=steps.get, default=None)
        if best is None or steps[best] <= 0:
            return False
        at[best] += 1
        return True

    def cheapest(name):
        return min(p.seconds for p in levels[name])

    def drop(name):
        dropped[name] = cheapest(name)
        del at[name]

    def largest(names):
        return max(names, key=lambda n: levels[n][at[n]].seconds)

    def covered(names):
        """The rows of ``names`` whose family another planned row covers:
        dropped first (the last row of a family, such as the only ImageNet
        transfer row, is worth more than a third CNN)."""
        return [
            n for n in names if any(families[m] == families[n] for m in at if m != n)
        ]

    while budget is not None and total() > budget:
        hopeless = [n for n in at if cheapest(n) > budget]
        if hopeless:
            drop(largest(hopeless))
            continue
        if step(epochs_too=False):
            continue
        if rob + 1 < len(rob_sizes):
            rob += 1
            continue
        # A row that needs a third of the budget at its cheapest: its own
        # epochs first, then (when its family has other rows) the row, before
        # every other network loses epochs to make room for it.
        big = [n for n in at if cheapest(n) > budget / 3]
        if big and step(epochs_too=True, among=big):
            continue
        if covered(big):
            drop(largest(covered(big)))
        elif step(epochs_too=True):
            continue
        elif at:
            drop(largest(covered(at) or list(at)))
        else:
            break
    plan = Plan(budget, robustness_n=rob_sizes[rob], robustness_s=rob_s(rob))
    for name in rows:
        if name in dropped:
            plan.rows[name] = RowPlan(
                None,
                0,
                None,
                dropped[name],
                f"needs ~{dropped[name]:.1f}s at its cheapest; the budget left "
                f"~{max(budget, 0):.1f}s for {len(rows)} row(s) and the "
                "robustness profile",
                run=False,
            )
        else:
            plan.rows[name] = levels[name][at[name]]
    return plan


def thread_limits(built, threads=None):
    """The BLAS / OpenMP pools of a scikit-learn row limited as skcnn limits
    torch's threads (the cores other processes do not keep busy): on a busy
    2-core machine hog+pca+svm took 86 s with free pools and 7.4 s with one
    thread. A network row trains with one torch thread per fit in a
    comparison (``skcnn.compare.run._one_thread``) and its BLAS pool gets
    one thread too: the LP-FT row's probe (a LogisticRegression) came out a
    little different with 2 BLAS threads than with 1, so a row would score
    differently in this process and in a lane (:mod:`skcnn.compare.lanes`).
    BLAS only: limiting OpenMP as well, after torch had run with 2 threads
    in this process (a shift profile), made the next augmented CNN train
    3.5x slower on a busy 2-core machine (31 s against 9 s).
    ``threads``: a scikit-learn row's limit (None: the free cores)."""
    from threadpoolctl import threadpool_limits

    if built.network:
        return threadpool_limits(limits=1, user_api="blas")
    from .._device import fit_threads

    return threadpool_limits(limits=threads or fit_threads("auto"))


def calibrate_rows(built, X, y, *, random_state, progress):
    """name -> :class:`Cost` of every row of ``built`` (name -> Built), each
    timed on a subsample of the data; a row that declares ``cost_as`` a row
    of the run shares that row's measurement."""
    costs = {}
    if built:
        progress(f"calibrating {len(built)} rows on a subsample of the training images")
    for name in sorted(built, key=lambda n: built[n].spec.cost_as in built):
        like = built[name].spec.cost_as
        if like in costs:  # the same model with noise or one more step
            costs[name] = replace(costs[like], seconds=0.0)
            continue
        with thread_limits(built[name]):
            costs[name] = calibrate(built[name], X, y, random_state=random_state)
    return costs


class Pace:
    """The measured ratio of actual to estimated seconds, per family of rows
    (classic, networks, transfer): the estimates of the rows still to run
    are scaled by their family's pace, in both directions (0.75-4x), so
    that time a family saves is planned again and a family that runs slow is
    planned slower. A family with no finished row yet takes the slowest
    other family's pace when it is slow, never when it is fast (on digits
    the CNN rows ran 2x faster than estimated, while the fine-tuning row took
    its estimate: a scratch network's speed says little of a pretrained
    one's)."""

    LOW, HIGH = 0.75, 4.0

    def __init__(self):
        self.sums = {}  # family -> [estimated, actual]

    def record(self, family, estimated, actual):
        e, a = self.sums.get(family, (0.0, 0.0))
        self.sums[family] = [e + estimated, a + actual]

    def _ratio(self, family):
        e, a = self.sums.get(family, (0.0, 0.0))
        return None if e <= 0 else min(max(a / e, self.LOW), self.HIGH)

    def of(self, family):
        own = self._ratio(family)
        if own is not None:
            return own
        others = [r for f in self.sums if (r := self._ratio(f)) is not None]
        return min(max(max(others, default=1.0), 1.0), self.HIGH)


class Planner:
    """The plan of the rows still to run, made again before each row with
    the time left and each kind's measured pace."""

    def __init__(self, built, costs, cv, n_train, n_predict, budget, clock):
        self.built, self.costs, self.cv, self.budget, self.clock = (
            built,
            costs,
            cv,
            budget,
            clock,
        )
        self.n_train, self.n_predict = n_train, n_predict
        # the pace each row was planned with (rows in lanes overlap)
        self.deferred, self.pace_used, self.replayed = set(), {}, {}
        self.lanes = 1  # rows side by side (skcnn.compare.lanes)

    def plan(self, names, rob_sizes, pace=None, busy_s=0.0):
        left = None
        if self.budget is not None:
            # a few seconds for the ranks, the report and the figures, and 5%
            # of the budget for the estimates' error, which keeps the time of
            # the rows still to come: the last row has none to keep (on a busy
            # machine the LP-FT row, last, was dropped with 64 s of 150 left
            # unused); rows in lanes have each lane's time, less what the rows
            # running in them still need
            share = 0.95 if len(names) > 1 else 1.0
            wall = share * (self.budget - self.clock.elapsed()) - 2.0 - 0.3 * len(names)
            left = max(self.lanes * wall - busy_s, 0.0)
        rows = {
            n: (self.built[n], self.built[n].grid, self.costs.get(n, UNMEASURED))
            for n in names
        }
        paces = {n: pace.of(self.built[n].spec.group) if pace else 1.0 for n in names}
        plan = plan_rows(
            rows,
            left,
            cv=self.cv,
            n_train=self.n_train,
            n_predict=self.n_predict,
            pace=paces,
            robustness=rob_sizes,
        )
        if not self.costs:  # no budget, nothing measured: no estimates to show
            plan.rows = {
                n: replace(p, seconds=0.0, estimated=False)
                for n, p in plan.rows.items()
            }
            plan.robustness_s = 0.0
        return plan

    def _left(self, plan):
        """What the clock says is left: the estimates of the rows to run."""
        self.clock.left = {
            n: p.seconds for n, p in plan.rows.items() if p.run and p.estimated
        }

    def first(self, names, rob_sizes, replayed):
        if replayed:
            plan = Plan(None, robustness_n=int(replayed.get("robustness_n") or 0))
            for name in names:
                record = replayed.get("plans", {}).get(name)
                checked = (
                    checked_plan(record, self.built[name], self.cv)
                    if record
                    else "not run then"
                )
                plan.rows[name] = (
                    checked if not isinstance(checked, str) else _not_replayed(checked)
                )
            self.replayed = plan.rows
            return plan
        plan = self.plan(names, rob_sizes)
        # cheap rows first: a costly row's overrun cannot cost a cheap row its turn
        plan.rows = dict(
            sorted(plan.rows.items(), key=lambda kv: (not kv[1].run, kv[1].seconds))
        )
        self._left(plan)
        return plan

    def now(self, name, rest, pace, rob_n, replayed, busy_s=0.0):
        if replayed:
            return self.replayed[name]
        plan = self.plan([name, *rest], [rob_n], pace, busy_s)
        self.pace_used[name] = pace.of(self.built[name].spec.group)
        self._left(plan)
        return plan.rows[name]

    def estimate(self, name, row_plan, rob_n):
        """The row's estimate before any pace: its plan and its part of the
        robustness profile (what the time it took is compared with)."""
        if name not in self.costs:  # a replay: no estimates
            return 0.0
        rob = robustness_seconds([self.costs[name]], rob_n)
        return row_plan.seconds / self.pace_used.get(name, 1.0) + rob

    def defer(self, name):
        if name in self.deferred:
            return False
        self.deferred.add(name)
        return True


def _not_replayed(reason):
    return RowPlan(None, 0, None, 0.0, f"not replayed: {reason}", run=False)


def plan_record(row_plan):
    """What ``state.json`` keeps of a row's plan (what --replay runs)."""
    return {
        "grid": row_plan.grid,
        "folds": row_plan.folds,
        "epochs": row_plan.epochs,
        "params": row_plan.params,
    }


def _within(values, allowed):
    return isinstance(values, list) and values and all(v in allowed for v in values)


def checked_plan(record, built, cv):
    """The :class:`~skcnn.compare.plan.RowPlan` a stored ``record`` asks for,
    or the reason it cannot be run: only what the row's own search could
    have run (its grid's keys and values, its folds, at most its epochs), so
    that a replayed file sets no parameter the row's declaration does not."""
    if not isinstance(record, dict) or set(record) != {
        "grid",
        "folds",
        "epochs",
        "params",
    }:
        return "a damaged plan"
    own = built.grid or {}
    grid, folds, epochs, params = (
        record[k] for k in ("grid", "folds", "epochs", "params")
    )
    if grid is not None and not (
        isinstance(grid, dict)
        and set(grid) <= set(own)
        and all(_within(v, own[k]) for k, v in grid.items())
    ):
        return "a grid that is not the row's own"
    if not isinstance(params, dict) or not all(
        k in own and v in own[k] for k, v in params.items()
    ):
        return "parameters that are not the row's own"
    if (
        isinstance(folds, bool)
        or not isinstance(folds, int)
        or not ((grid is None and folds == 0) or 2 <= folds <= cv)
    ):
        return f"folds {folds!r}"
    full = built.estimator.get_params()[built.epochs_param] if built.network else None
    if epochs is not None and (
        full is None
        or isinstance(epochs, bool)
        or not isinstance(epochs, int)
        or not 1 <= epochs <= full
    ):
        return f"epochs {epochs!r}"
    return RowPlan(grid, folds, epochs, 0.0, "replayed", params=params)
