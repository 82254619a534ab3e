"""One row of a comparison, fitted as planned: its search (or one fit), the
refit, its predictions on every set and its :class:`~skcnn.compare.row.Row`
(scikit-learn's ``_fit_and_score`` shape: a function that returns a value)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.model_selection import (
    GridSearchCV,
    ParameterGrid,
    StratifiedKFold,
    train_test_split,
)

from .plan import HALVING_FACTOR, by_epochs, halving_rungs, thread_limits

__all__ = ["Fitted", "fit_row", "profile_images"]


@dataclass(frozen=True)
class Fitted:
    """What :func:`fit_row` returns: the row, the fitted model, its
    predictions (one array per set) and probabilities (or None)."""

    row: object
    model: object
    predictions: tuple
    probabilities: tuple | None
    grid: dict | None


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


def row_jobs(n_jobs):
    """A row's search jobs: ``n_jobs`` as given; "auto": a process per core
    that other processes do not keep busy. How many processes run changes
    no result (each fit is seeded and trains with one thread)."""
    if n_jobs != "auto":
        return n_jobs
    from .._device import fit_threads

    return fit_threads("auto")


def _search(estimator, grid, scoring, folds, n_jobs, X, y, halving=False):
    if halving:
        # a network: its candidates raced by epochs on the folds, the race
        # ended when one is left (the CV F1 is the one it won with); the
        # winner refit as GridSearchCV refits it (the estimator's own
        # validation split and early stopping: the halving's CV fits train
        # without them, and a refit without them scored cnn+aug 0.791 on
        # printed digits against 0.845 for the same candidate)
        from ..model_selection import EpochHalvingSearchCV

        search = EpochHalvingSearchCV(
            estimator,
            grid,
            factor=HALVING_FACTOR,
            scoring=scoring,
            cv=folds,
            n_jobs=n_jobs,
            refit=False,
            stop_at_one=True,
        ).fit(X, y)
        best = clone(estimator).set_params(**search.best_params_)
        search.best_estimator_ = best.fit(X, y)
        return search
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


def _feature_search(estimator, grid, scoring, folds, n_jobs, X, y, step):
    """GridSearchCV of a Pipeline whose first step ``step`` is a pretrained
    feature extractor, with each extractor candidate's features computed once.

    The extractor learns nothing from the images (``fit`` records their
    layout), so the features of a fold are the rows of the features of the
    whole training split: each extractor setting of the grid extracts the
    training images once, and the rest of the pipeline is searched on those
    features with the same folds and candidates, and refit on all of them.
    A search of 2 layers x 3 folds extracts the training images 2 times
    instead of 2 x 3 + 1.
    """
    from sklearn.pipeline import Pipeline

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


def fit_row(
    built,
    row_plan,
    data,
    sets,
    *,
    random_state,
    n_jobs,
    progress,
    clock,
    tag,
    threads=None,
):
    """Search, refit and score one row as ``row_plan`` says; return
    :class:`Fitted`. ``data``: (X_train, y_train, [X of every scored set]);
    ``threads``: a scikit-learn row's thread pools (None: the free cores)."""
    X_train, y_train, X_sets = data
    estimator = built.configured(row_plan.params, row_plan.epochs)
    t0 = time.perf_counter()
    cv_f1 = cv_std = None
    how = ""  # how the candidates were searched, in words
    with thread_limits(built, threads):
        if row_plan.grid is None:
            progress(f"{tag}: one fit on the training split ({clock})")
            best, best_params = estimator.fit(X_train, y_train), dict(row_plan.params)
        else:
            folds = StratifiedKFold(
                n_splits=row_plan.folds, shuffle=True, random_state=random_state
            )
            n_cand = len(ParameterGrid(row_plan.grid))
            halving = by_epochs(built, row_plan.grid)
            n_fits = n_cand * row_plan.folds
            if halving:
                epochs = row_plan.epochs or estimator.get_params()["max_epochs"]
                rungs, counts = halving_rungs(n_cand, epochs)
                how = f", raced to {rungs[-1]} of {epochs} epochs"
                n_fits = sum(counts) * row_plan.folds
            progress(
                f"{tag}: {n_cand} candidate(s) x {row_plan.folds} folds{how} + refit "
                f"({clock})"
            )
            # fits in this process report each fold; other processes cannot
            scoring = (
                _FitProgress(progress, n_fits, clock)
                if n_jobs in (None, 1)
                else "f1_macro"
            )
            args = (estimator, row_plan.grid, scoring, folds, n_jobs, X_train, y_train)
            search = (
                _feature_search(*args, built.feature_step)
                if built.feature_step
                else _search(*args, halving=halving)
            )
            best, best_params = search.best_estimator_, search.best_params_
            cv_f1 = float(search.best_score_)
            cv_std = float(search.cv_results_["std_test_score"][search.best_index_])
        probs = None
        if hasattr(best, "predict_proba"):
            # one pass per set: the labels are the probabilities' argmax, as
            # every classifier of the table predicts them
            probs = tuple(best.predict_proba(X) for X in X_sets)
            preds = tuple(best.classes_[p.argmax(1)] for p in probs)
        else:
            preds = tuple(best.predict(X) for X in X_sets)
    row = sets.row(
        built.name,
        preds,
        probs,
        getattr(best, "classes_", None),
        best_params=best_params,
        cv_f1=cv_f1,
        cv_f1_std=cv_std,
        fit_time_s=float(time.perf_counter() - t0),
        plan=row_plan.describe(),
        planned_s=float(row_plan.seconds) if row_plan.estimated else None,
        trained=row_plan.trained(how),
    )
    return Fitted(row, best, preds, probs, row_plan.grid)


def profile_images(X_val, y_val, n, random_state):
    """A stratified part of the validation images for the shift profile:
    the same images, shifted the same way, for every model (None: n=0)."""
    if n <= 0:
        return None
    if n < len(y_val):
        X_val, _, y_val, _ = train_test_split(
            X_val, y_val, train_size=n, stratify=y_val, random_state=random_state
        )
    return X_val, y_val
