"""Searches that spend epochs wisely.

:class:`EpochHalvingSearchCV` is successive halving over epochs with warm
starts: every candidate trains a few epochs on each CV fold, the best
``1/factor`` continue training (the same networks, not from scratch) for
``factor`` times as many epochs in total, and so on until the epoch budget
``max_epochs`` is reached. Weak candidates stop early; strong ones never
restart. The interface is scikit-learn's: ``cv_results_``, ``best_params_``,
``best_score_``, ``best_estimator_`` (refitted), ``predict`` and friends.

:class:`HalvingGridSearchCV` and :class:`HalvingRandomSearchCV` are
scikit-learn's, with defaults for networks: the resource is ``max_epochs`` and
``max_resources="auto"`` is the estimator's own ``max_epochs`` (scikit-learn
accepts "auto" only for ``resource="n_samples"``). They retrain every
candidate from scratch at each rung, each with a schedule over its rung's
epochs; :class:`EpochHalvingSearchCV` continues the survivors instead.
"""

from __future__ import annotations

import copy
import math
import time
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone, is_classifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import check_scoring
from sklearn.model_selection import HalvingGridSearchCV as _SkHalvingGrid
from sklearn.model_selection import HalvingRandomSearchCV as _SkHalvingRandom
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import indexable

__all__ = ["EpochHalvingSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV"]


def _continue(estimator, X, y, train, test, epochs, scorer):
    """Train ``estimator`` ``epochs`` more epochs on ``train``; score on ``test``."""
    t0 = time.perf_counter()
    estimator.set_params(max_epochs=int(epochs))
    estimator.fit(_safe_indexing(X, train), _safe_indexing(y, train))
    fit_time = time.perf_counter() - t0
    score = scorer(estimator, _safe_indexing(X, test), _safe_indexing(y, test))
    return estimator, float(score), fit_time


# Parameters the epoch-halving search sets on every candidate.
_SEARCH_OWNED = frozenset(
    {
        "max_epochs",
        "warm_start",
        "schedule_epochs",
        "early_stopping",
        "validation_fraction",
    }
)


class EpochHalvingSearchCV(BaseSearchCV):
    """Successive halving over epochs, continuing the survivors' training.

    Parameters
    ----------
    estimator : skcnn network estimator
        CNNClassifier, CNNRegressor, DenseNetClassifier or
        PretrainedClassifier (anything with ``warm_start`` and
        ``max_epochs``).
    param_grid : dict or list of dicts
        The candidates: a grid (as for GridSearchCV), or distributions (as
        for RandomizedSearchCV) when ``n_candidates`` is an int.
    n_candidates : "all" or int, default="all"
        "all" takes every grid point; an int samples that many candidates.
    factor : float > 1, default=3
        Each rung keeps the best ``1/factor`` of the candidates and trains
        them to ``factor`` times as many epochs.
    min_epochs : int or None, default=None
        Epochs of the first rung; None chooses it so that the last rung
        reaches ``max_epochs`` as one or a few candidates remain.
    max_epochs : int or None, default=None
        The epoch budget of a surviving candidate; None takes the
        estimator's ``max_epochs``.
    scoring : str, callable or None, default=None
        Scorer of the candidates on each fold's held-out part.
    cv : int, cross-validation generator or iterable, default=3
        The folds.
    refit : bool, default=True
        Refit the best candidate on all the data, for as many epochs as it
        trained in the search (``stop_at_one``: the whole budget).
    stop_at_one : bool, default=False
        End the race where one candidate would be left: the winner is the
        best of the last rung that had several, ``best_score_`` is the score
        it won with (at that rung's epochs, below its full budget) and the
        refit trains it to ``max_epochs``. The last rung only trains the
        winner on every fold to score it: a third of the search's epochs
        when 2 candidates race with ``factor=2``.
    n_jobs : int or None, default=None
        Parallel (candidate, fold) fits within a rung.
    random_state : int, RandomState or None, default=None
        Seeds the sampling of candidates.
    verbose : int, default=0
        Print each rung.

    Attributes
    ----------
    cv_results_ : dict of arrays
        One entry per candidate: "params", "param_<name>", "mean_test_score",
        "std_test_score", "split<i>_test_score" (at the last rung it
        reached), "rank_test_score", "n_epochs" and "iter" (its last rung),
        "mean_fit_time".
    best_params_, best_score_, best_index_, best_estimator_
    n_epochs_ : list of int
        Epochs reached at each rung.
    n_candidates_ : list of int
        Candidates trained at each rung.
    refit_time_ : float

    Notes
    -----
    Candidates train with ``early_stopping=False`` and
    ``validation_fraction=0`` (the budget is the stopping rule; every row of
    a fold's training part is used), continued by ``warm_start``. An epoch
    schedule (``lr_schedule``) spans the whole budget (``schedule_epochs``):
    the rungs continue one schedule, so an early rung is judged at a high
    learning rate.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skcnn import CNNClassifier
    >>> d = load_digits()
    >>> search = EpochHalvingSearchCV(
    ...     CNNClassifier(conv_filters=(8,), dense_units=(16,), random_state=0),
    ...     {"lr": [1e-3, 1e-2], "dropout": [0.0, 0.3]},
    ...     max_epochs=6,
    ...     cv=2,
    ... ).fit(d.images[:300] / 16, d.target[:300])
    >>> search.n_candidates_, search.n_epochs_
    ([4, 2], [2, 6])
    """

    _parameter_constraints = {
        **BaseSearchCV._parameter_constraints,
        "param_grid": [dict, list],
        "n_candidates": [
            StrOptions({"all"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "factor": [Interval(Real, 1, None, closed="neither")],
        "min_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "stop_at_one": ["boolean"],
    }

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        n_candidates="all",
        factor=3,
        min_epochs=None,
        max_epochs=None,
        scoring=None,
        cv=3,
        refit=True,
        n_jobs=None,
        random_state=None,
        verbose=0,
        stop_at_one=False,
    ):
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
        )
        self.param_grid = param_grid
        self.n_candidates = n_candidates
        self.factor = factor
        self.min_epochs = min_epochs
        self.max_epochs = max_epochs
        self.random_state = random_state
        self.stop_at_one = stop_at_one

    def _candidates(self):
        if self.n_candidates == "all":
            return list(ParameterGrid(self.param_grid))
        return list(
            ParameterSampler(
                self.param_grid,
                self.n_candidates,
                random_state=check_random_state(self.random_state),
            )
        )

    def _rungs(self, n_candidates, budget):
        """Epochs and candidate counts per rung."""
        # as many rungs as halvings down to one candidate
        n_rungs = 1 + math.floor(math.log(n_candidates, self.factor) + 1e-9)
        first = self.min_epochs or max(1.0, budget / self.factor ** (n_rungs - 1))
        epochs, counts, n = [], [], n_candidates
        e = first
        while True:
            # each rung trains on: at least one epoch more than the last
            # (factor=1.1 rounded two rungs to the same count)
            floor = epochs[-1] + 1 if epochs else 1
            epochs.append(min(budget, max(floor, int(round(e)))))
            counts.append(n)
            if epochs[-1] >= budget or n == 1:
                break
            n = max(1, math.ceil(n / self.factor))
            e *= self.factor
        if self.stop_at_one and len(counts) > 1 and counts[-1] == 1:
            return epochs[:-1], counts[:-1]  # the race is won a rung before
        return epochs, counts

    def fit(self, X, y=None, **params):
        """Run the search; refit the best candidate on all of X, y.

        Parameters
        ----------
        X : array-like
            Images, in any layout the estimator takes.
        y : array-like
            Targets.
        **params : dict
            Not supported; raises if given.

        Returns
        -------
        self : object
            The fitted search.
        """
        self._validate_params()
        if params:
            raise TypeError(f"fit parameters are not supported; got {sorted(params)}.")
        if not {"warm_start", "max_epochs", "schedule_epochs"} <= set(
            self.estimator.get_params()
        ):
            raise ValueError(
                "EpochHalvingSearchCV needs a network estimator with warm_start and "
                f"max_epochs; got {type(self.estimator).__name__}."
            )
        X, y = indexable(X, y)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        folds = list(cv.split(X, y))
        scorer = check_scoring(self.estimator, scoring=self.scoring)
        candidates = self._candidates()
        owned = sorted(set().union(*map(set, candidates)) & _SEARCH_OWNED)
        if owned:
            raise ValueError(
                f"param_grid sets {owned}, which EpochHalvingSearchCV sets itself on "
                "every candidate (the rungs raise max_epochs, training continues "
                "with warm_start); pass max_epochs= to the search for the budget."
            )
        budget = self.max_epochs or int(self.estimator.get_params()["max_epochs"])
        epochs, counts = self._rungs(len(candidates), budget)
        base = clone(self.estimator).set_params(
            warm_start=True,
            early_stopping=False,
            validation_fraction=0.0,
            # an epoch schedule spans the whole budget across the rungs
            schedule_epochs=budget,
        )
        models = {
            (c, f): clone(base).set_params(**params)
            for c, params in enumerate(candidates)
            for f in range(len(folds))
        }
        scores = np.full((len(candidates), len(folds)), np.nan)
        reached = np.zeros(len(candidates), dtype=int)
        last_rung = np.zeros(len(candidates), dtype=int)
        fit_time = np.zeros(len(candidates))
        alive = list(range(len(candidates)))
        done = 0
        parallel = Parallel(n_jobs=self.n_jobs)
        for rung, (target, _) in enumerate(zip(epochs, counts)):
            if self.verbose:
                print(
                    f"rung {rung}: {len(alive)} candidate(s) x {len(folds)} folds, "
                    f"epochs {done} -> {target}"
                )
            jobs = [(c, f) for c in alive for f in range(len(folds))]
            out = parallel(
                delayed(_continue)(models[c, f], X, y, *folds[f], target - done, scorer)
                for c, f in jobs
            )
            for (c, f), (model, score, seconds) in zip(jobs, out):
                models[c, f] = model
                scores[c, f] = score
                fit_time[c] += seconds
            for c in alive:
                reached[c], last_rung[c] = target, rung
            done = target
            if rung + 1 < len(epochs):
                keep = max(1, math.ceil(len(alive) / self.factor))
                order = sorted(alive, key=lambda c: -np.mean(scores[c]))
                for c in order[keep:]:  # stopped here: free their networks
                    for f in range(len(folds)):
                        models.pop((c, f), None)
                alive = sorted(order[:keep])
        self.n_epochs_, self.n_candidates_ = epochs, counts
        self._store_results(candidates, scores, reached, last_rung, fit_time)
        self.scorer_ = scorer
        self.multimetric_ = False
        self.n_splits_ = len(folds)
        if self.refit:
            best = clone(self.estimator).set_params(
                **self.best_params_,
                max_epochs=budget
                if self.stop_at_one
                else int(reached[self.best_index_]),
                schedule_epochs=None,
                early_stopping=False,
                validation_fraction=0.0,
            )
            t0 = time.perf_counter()
            self.best_estimator_ = best.fit(X, y)
            self.refit_time_ = time.perf_counter() - t0
        return self

    def _store_results(self, candidates, scores, reached, last_rung, fit_time):
        mean = scores.mean(1)
        # rank: later rungs first (they survived), then the score
        key = np.lexsort((-mean, -last_rung))
        rank = np.empty(len(candidates), dtype=int)
        rank[key] = np.arange(1, len(candidates) + 1)
        results = {
            "params": candidates,
            "mean_test_score": mean,
            "std_test_score": scores.std(1),
            "rank_test_score": rank,
            "n_epochs": reached,
            "iter": last_rung,
            "mean_fit_time": fit_time / scores.shape[1],
        }
        for f in range(scores.shape[1]):
            results[f"split{f}_test_score"] = scores[:, f]
        for name in sorted({k for p in candidates for k in p}):
            values = np.ma.masked_all(len(candidates), dtype=object)
            for i, p in enumerate(candidates):
                if name in p:
                    values[i] = p[name]
            results[f"param_{name}"] = values
        self.cv_results_ = results
        self.best_index_ = int(key[0])
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(mean[self.best_index_])


class _EpochResourceMixin:
    """``resource="max_epochs"`` by default; ``max_resources="auto"`` is the
    estimator's epochs instead of an error."""

    def _check_input_parameters(self, X, y, split_params):
        params = self.estimator.get_params()
        auto = self.max_resources == "auto" and self.resource != "n_samples"
        if not (auto and self.resource in params):
            return super()._check_input_parameters(X, y, split_params)
        budget = params[self.resource]
        if not isinstance(budget, Integral) or budget < 1:
            raise ValueError(
                f"max_resources='auto' takes the estimator's {self.resource} "
                f"as the budget, but it is {budget!r}; pass max_resources=int."
            )
        # scikit-learn's checks on a copy that has the budget as its
        # max_resources: this search's own parameters never change in fit
        view = copy.copy(self)
        view.max_resources = int(budget)
        super(_EpochResourceMixin, view)._check_input_parameters(X, y, split_params)
        self.min_resources_ = view.min_resources_
        self.max_resources_ = view.max_resources_


# Parameters the docstrings below refer to scikit-learn for.
_SHARED = (
    "n_candidates factor min_resources aggressive_elimination cv scoring refit "
    "error_score return_train_score random_state n_jobs verbose"
).split()

_HALVING_NOTE = """
    skcnn's version of scikit-learn's ``{name}`` (same parameters and
    attributes), with defaults for networks: ``resource="max_epochs"``, and
    ``max_resources="auto"`` is the estimator's ``max_epochs`` (for any other
    resource naming an int parameter, that parameter's value). Each rung
    trains its candidates from scratch for the rung's epochs (with early
    stopping, if the estimator has it on); :class:`EpochHalvingSearchCV`
    continues the survivors' training instead.

    Parameters
    ----------
    estimator : estimator
        A skcnn network estimator, or a Pipeline ending in one.
    {grid_name} : {grid_type}
        The candidates, as for scikit-learn's ``{name}``.
    resource : str, default="max_epochs"
        The parameter each rung raises; in a Pipeline name the step, e.g.
        ``"cnnclassifier__max_epochs"``; "n_samples" halves data instead.
    max_resources : int or "auto", default="auto"
        The budget of the last rung; "auto" is the estimator's value of
        ``resource`` (the number of samples for "n_samples").
    {others}
        As in scikit-learn's ``{name}``.

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import load_digits
    >>> from skcnn import CNNClassifier
    >>> from skcnn.model_selection import {name}
    >>> X, y = load_digits(return_X_y=True)
    >>> est = CNNClassifier(image_shape=(8, 8), max_epochs=4, random_state=0)
    >>> search = {name}(est, {{"lr": {space}}}, factor=2, cv=2,
    ...                   random_state=0).fit(X[:300], y[:300])
    >>> int(search.max_resources_)
    4
"""


class HalvingGridSearchCV(_EpochResourceMixin, _SkHalvingGrid):
    __doc__ = _HALVING_NOTE.format(
        name="HalvingGridSearchCV",
        space="[1e-3, 3e-3]",
        grid_name="param_grid",
        grid_type="dict or list of dicts",
        others=", ".join(_SHARED[1:]),
    )

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        factor=3,
        resource="max_epochs",
        max_resources="auto",
        min_resources="exhaust",
        aggressive_elimination=False,
        cv=5,
        scoring=None,
        refit=True,
        error_score=np.nan,
        return_train_score=True,
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        super().__init__(
            estimator,
            param_grid,
            factor=factor,
            resource=resource,
            max_resources=max_resources,
            min_resources=min_resources,
            aggressive_elimination=aggressive_elimination,
            cv=cv,
            scoring=scoring,
            refit=refit,
            error_score=error_score,
            return_train_score=return_train_score,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
        )


class HalvingRandomSearchCV(_EpochResourceMixin, _SkHalvingRandom):
    __doc__ = _HALVING_NOTE.format(
        name="HalvingRandomSearchCV",
        space="loguniform(1e-4, 1e-2)",
        grid_name="param_distributions",
        grid_type="dict or list of dicts",
        others=", ".join(_SHARED),
    )

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        n_candidates="exhaust",
        factor=3,
        resource="max_epochs",
        max_resources="auto",
        min_resources="smallest",
        aggressive_elimination=False,
        cv=5,
        scoring=None,
        refit=True,
        error_score=np.nan,
        return_train_score=True,
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        super().__init__(
            estimator,
            param_distributions,
            n_candidates=n_candidates,
            factor=factor,
            resource=resource,
            max_resources=max_resources,
            min_resources=min_resources,
            aggressive_elimination=aggressive_elimination,
            cv=cv,
            scoring=scoring,
            refit=refit,
            error_score=error_score,
            return_train_score=return_train_score,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
        )
