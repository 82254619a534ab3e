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

__all__ = ["DEFAULT_BUDGET_S", "Cost", "RowPlan", "calibrate", "plan_rows"]

# The default budget of a run (seconds). The full digits table takes about
# 120-230 s on 2 cores; a user's folder gets what fits in the same time.
DEFAULT_BUDGET_S = 300.0
# Seconds a row costs beyond its fits (its scores, table and report files).
ROW_OVERHEAD_S = 1.0
# Fewest epochs a network row is planned with.
MIN_EPOCHS = 3


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

    def fit(self, n, epochs=1):
        scale = (max(n, 1) / self.m) ** self.exponent
        return self.const + (self.fixed + self.per_epoch * epochs) * scale


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

    def describe(self):
        if not self.run:
            return f"not run: {self.note}"
        if self.grid is None:
            what = "one fit, no CV"
        else:
            n = _n_candidates(self.grid)
            what = f"{n} candidate(s) x {self.folds} folds"
        epochs = f", {self.epochs} epochs" if self.epochs else ""
        return f"{what}{epochs}; ~{self.seconds:.0f}s"


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


def is_network(estimator):
    """A row whose estimator trains for epochs (a skcnn network)."""
    return "max_epochs" in estimator.get_params(deep=False)


def feature_step(estimator):
    """The name of a Pipeline's first step when it is a pretrained feature
    extractor (its search extracts once per extractor setting), else None."""
    steps = getattr(estimator, "steps", None)
    if steps and type(steps[0][1]).__name__ == "PretrainedFeatureExtractor":
        return steps[0][0]
    return None


def _feature_candidates(estimator, grid):
    """How many extractor settings a feature row's grid holds."""
    prefix = f"{feature_step(estimator)}__"
    return _n_candidates({k: v for k, v in grid.items() if k.startswith(prefix)})


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
    ``(X, y)``: two images per class (the cost of any fit), then 128 images,
    more (256 for networks, 400 for the others) when that took under half a
    second, so that cheap rows are measured on enough images and costly ones
    (a pretrained backbone) cost little to measure; networks once more with
    two epochs (the cost of an epoch)."""
    network = is_network(estimator)
    t_start = time.perf_counter()

    def fit(m, epochs=1):
        X_m, y_m = _subsample(X, y, m, random_state)
        est = clone(estimator)
        if network:
            est.set_params(max_epochs=epochs)
        t, fitted = _timed(lambda: est.fit(X_m, y_m))
        return t, fitted, X_m

    n_classes = len(np.unique(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = min(len(y), max(2 * n_classes, 16))
        t0, _, _ = fit(m0)
        m = min(len(y), 128)
        t1, fitted, X_m = fit(m)
        if t1 < 0.5 and len(y) > m:
            m = min(len(y), 256 if network else 400)
            t1, fitted, X_m = fit(m)
        m = len(X_m)
        const = min(t0, t1)
        if network:
            # three epochs, timed by the fit's own history: the difference of
            # a 2- and a 1-epoch fit's wall times was too noisy (the DenseNet
            # row on digits: 12 to 38 s estimated for the same fit)
            t3, fitted3, _ = fit(m, 3)
            durs = [h["dur"] for h in fitted3.history_]  # skorch's EpochTimer
            per_epoch = max(float(np.median(durs)), 1e-4)
            fixed = max(t3 - const - sum(durs), 0.0)
        else:
            per_epoch, fixed = max(t1 - const, 1e-4), 0.0
        t_pred, _ = _timed(lambda: fitted.predict(X_m))
    return Cost(
        m=m,
        const=const,
        fixed=fixed,
        per_epoch=per_epoch,
        predict=t_pred / m,
        exponent=1.0 if network else _exponent(estimator),
        seconds=time.perf_counter() - t_start,
    )


def _levels(estimator, grid, cv, cost, n_train, n_predict):
    """The row's configurations, from the full one to the cheapest."""
    epochs = estimator.get_params()["max_epochs"] if is_network(estimator) else None
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
    configs.append((None, 0, epochs, "one fit, no search"))
    e = epochs
    while e is not None and e // 2 >= MIN_EPOCHS:
        e //= 2
        configs.append((None, 0, e, f"one fit, {e} epochs"))
    out = []
    for g, folds, ep, note in configs:
        fits = 0.0
        if g is not None and feature_step(estimator):
            # the training images extracted once per extractor setting; the
            # head's fits on features counted as half of a whole fit each
            fits = _feature_candidates(estimator, g) * cost.fit(n_train) * 1.5
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


def robustness_seconds(costs, n_images):
    """The shift profile: 25 predictions of ``n_images`` per row, plus the
    shifting itself (about as costly as one cheap prediction)."""
    return sum(25 * n_images * (c.predict + 2e-4) for c in costs)


def plan_rows(
    rows, budget, *, cv, n_train, n_predict, pace=1.0, robustness=(200, 80, 0)
):
    """A :class:`Plan` for ``rows`` (name -> (estimator, grid, Cost)) within
    ``budget`` seconds (None: every row in full); estimates are multiplied
    by ``pace`` (the measured ratio of actual to estimated time so far).
    ``robustness``: the sizes the shift profile may have, largest first
    (0: none)."""
    levels = {
        name: [
            replace(p, seconds=p.seconds * pace)
            for p in _levels(est, grid, cv, cost, n_train, n_predict)
        ]
        for name, (est, grid, cost) in rows.items()
    }
    at = dict.fromkeys(levels, 0)
    dropped = {}
    rob_sizes = list(robustness) or [0]
    rob = 0
    costs = [c for _, _, c in rows.values()]

    def rob_s(i):
        return robustness_seconds(costs, rob_sizes[i]) * pace

    def total():
        return sum(levels[n][i].seconds for n, i in at.items()) + rob_s(rob)

    # Cut in this order, the largest saving first within each phase: the
    # searches (folds, candidates), the robustness profile, the epochs (the
    # cut that costs a model the most quality), then whole rows.
    def step(epochs_too):
        steps = {
            n: levels[n][i].seconds - levels[n][i + 1].seconds
            for n, i in at.items()
            if i + 1 < len(levels[n])
            and (epochs_too or not levels[n][i + 1].cuts_epochs)
        }
        best = max(steps, key=steps.get, default=None)
        if best is None or steps[best] <= 0:
            return False
        at[best] += 1
        return True

    def drop(name):
        dropped[name] = min(p.seconds for p in levels[name])
        del at[name]

    while budget is not None and total() > budget:
        if step(epochs_too=False):
            continue
        if rob + 1 < len(rob_sizes):
            rob += 1
            continue
        # A row that needs a third of the budget at its cheapest is left out
        # before every network loses epochs to make room for it.
        big = [n for n in at if min(p.seconds for p in levels[n]) > budget / 3]
        if big:
            drop(max(big, key=lambda n: levels[n][at[n]].seconds))
        elif step(epochs_too=True):
            continue
        elif at:
            drop(max(at, key=lambda n: levels[n][at[n]].seconds))
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
