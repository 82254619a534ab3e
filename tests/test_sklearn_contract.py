"""What skcnn relies on in scikit-learn's private API, as the tested versions
declare it. A scikit-learn release that changes any of these must be looked
at before pyproject.toml's upper bound is raised (as tests/test_training.py
does for skorch)."""

import importlib
import inspect

import numpy as np
import pytest
import sklearn
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV as SkHalvingGrid
from sklearn.model_selection._search import BaseSearchCV

from skcnn import CNNClassifier
from skcnn.model_selection import (
    EpochHalvingSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
)

from .conftest import TINY

# private name -> the signature skcnn calls it with (None: a class used as is)
PRIVATE = {
    ("sklearn.utils.validation", "_check_sample_weight"): (
        "(sample_weight, X, *, dtype=None, force_float_dtype=True, "
        "ensure_non_negative=False, ensure_same_device=True, copy=False, "
        "allow_all_zero_weights=False)"
    ),
    ("sklearn.utils.validation", "_check_feature_names_in"): (
        "(estimator, input_features=None, *, generate_names=True)"
    ),
    ("sklearn.utils._set_output", "_get_output_config"): "(method, estimator=None)",
    ("sklearn.utils", "_safe_indexing"): "(X, indices, *, axis=0)",
    ("sklearn.utils._param_validation", "make_constraint"): "(constraint)",
    ("sklearn.utils._param_validation", "Interval"): None,
    ("sklearn.utils._param_validation", "StrOptions"): None,
    ("sklearn.utils._param_validation", "Options"): None,
    ("sklearn.utils._param_validation", "Hidden"): None,
    ("sklearn.utils._param_validation", "InvalidParameterError"): None,
    ("sklearn.model_selection._search", "BaseSearchCV"): None,
}

# methods of scikit-learn classes that skcnn overrides or calls on them
METHODS = {
    (BaseSearchCV, "__init__"): (
        "(self, estimator, *, scoring=None, n_jobs=None, refit=True, cv=None, "
        "verbose=0, pre_dispatch='2*n_jobs', error_score=nan, "
        "return_train_score=True)"
    ),
    (BaseSearchCV, "fit"): "(self, X, y=None, **params)",
    (SkHalvingGrid, "_check_input_parameters"): "(self, X, y, split_params)",
    (
        importlib.import_module("sklearn.utils._param_validation").Interval,
        "__init__",
    ): "(self, type, left, right, *, closed)",
    (
        importlib.import_module("sklearn.utils._param_validation").Interval,
        "is_satisfied_by",
    ): "(self, val)",
}

# attributes EpochHalvingSearchCV sets itself that BaseSearchCV's methods
# (predict, score, classes_, ...) read
SEARCH_ATTRIBUTES = [
    "best_estimator_",
    "best_index_",
    "best_params_",
    "best_score_",
    "cv_results_",
    "multimetric_",
    "n_splits_",
    "refit_time_",
    "scorer_",
]


def test_sklearn_version_is_in_the_tested_range():
    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    assert (1, 6) <= (major, minor) < (1, 10), sklearn.__version__


@pytest.mark.parametrize("where", sorted(PRIVATE), ids="{0[0]}.{0[1]}".format)
def test_private_names_we_use(where):
    obj = getattr(importlib.import_module(where[0]), where[1])
    if PRIVATE[where] is not None:
        assert str(inspect.signature(obj)) == PRIVATE[where]


@pytest.mark.parametrize(
    "where", sorted(METHODS, key=str), ids=lambda w: f"{w[0].__name__}.{w[1]}"
)
def test_signatures_of_what_we_override(where):
    cls, name = where
    assert str(inspect.signature(getattr(cls, name))) == METHODS[where]


def test_the_search_attributes_we_set_are_the_ones_sklearn_reads():
    source = inspect.getsource(BaseSearchCV)
    assert [a for a in SEARCH_ATTRIBUTES if f"self.{a}" not in source] == []


@pytest.mark.parametrize(
    "search",
    [
        lambda est, score: EpochHalvingSearchCV(
            est, {"lr": [1e-3, 1e-2]}, factor=2, cv=2, scoring=score
        ),
        lambda est, score: HalvingGridSearchCV(
            est, {"lr": [1e-3, 1e-2]}, factor=2, cv=2, scoring=score
        ),
        lambda est, score: HalvingRandomSearchCV(
            est, {"lr": [1e-3, 1e-2]}, n_candidates=2, factor=2, cv=2, scoring=score
        ),
    ],
    ids=["epoch_halving", "halving_grid", "halving_random"],
)
def test_searches_never_change_their_parameters_during_fit(search, small_digits):
    X, y = small_digits
    seen = []

    def score(estimator, X_test, y_test):
        seen.append(holder[0].get_params(deep=False))
        return float(np.mean(estimator.predict(X_test) == y_test))

    est = CNNClassifier(**{**TINY, "max_epochs": 2})
    holder = [search(est, score)]
    before = holder[0].get_params(deep=False)
    holder[0].fit(X[:120], y[:120])
    assert seen and all(
        {k: v for k, v in p.items() if k != "scoring"}
        == {k: v for k, v in before.items() if k != "scoring"}
        for p in seen
    )
    assert holder[0].get_params(deep=False) == before
    # the budget came from the estimator's max_epochs, not from a parameter
    budget = getattr(holder[0], "max_resources_", None)
    assert budget == 2 or holder[0].n_epochs_[-1] == 2


def test_halving_budget_is_checked_on_a_copy(small_digits, monkeypatch):
    from sklearn.model_selection._search_successive_halving import (
        BaseSuccessiveHalving,
    )

    real = BaseSuccessiveHalving._check_input_parameters
    calls = []

    def spy(self, X, y, split_params):
        calls.append((self is search, self.max_resources))
        return real(self, X, y, split_params)

    monkeypatch.setattr(BaseSuccessiveHalving, "_check_input_parameters", spy)
    X, y = small_digits
    est = CNNClassifier(**{**TINY, "max_epochs": 2})
    search = HalvingGridSearchCV(est, {"lr": [1e-3, 1e-2]}, factor=2, cv=2)
    search.fit(X[:120], y[:120])
    # scikit-learn saw the budget, on a copy: the search itself kept "auto"
    assert calls == [(False, 2)]
    assert search.max_resources == "auto" and search.max_resources_ == 2
