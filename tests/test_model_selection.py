"""EpochHalvingSearchCV: successive halving over epochs with warm starts."""

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.svm import SVC

from skcnn import CNNClassifier, CNNRegressor
from skcnn.model_selection import EpochHalvingSearchCV

from .conftest import TINY


def test_rungs_continue_the_survivors(small_digits, heldout_digits, monkeypatch):
    from skcnn import model_selection

    X, y = small_digits
    calls = []
    real = model_selection._continue

    def spy(estimator, *args):
        calls.append((id(estimator), args[-2]))  # which network, how many epochs
        return real(estimator, *args)

    monkeypatch.setattr(model_selection, "_continue", spy)
    grid = {"lr": [1e-3, 5e-3, 2e-2], "dropout": [0.0, 0.3, 0.5]}  # 9 candidates
    search = EpochHalvingSearchCV(
        CNNClassifier(**{**TINY, "random_state": 0}), grid, max_epochs=9, cv=2
    ).fit(X, y)
    assert search.n_candidates_ == [9, 3, 1]
    assert search.n_epochs_ == [1, 3, 9]
    # rung 0: 9 x 2 fits of 1 epoch; then 3 x 2 of 2 more; then 1 x 2 of 6 more
    assert [e for _, e in calls] == [1] * 18 + [2] * 6 + [6] * 2
    # the later rungs trained networks of the earlier ones (warm continuation)
    first = {i for i, _ in calls[:18]}
    assert {i for i, _ in calls[18:]} <= first
    res = search.cv_results_
    assert res["n_epochs"].tolist().count(9) == 1 and res["n_epochs"].min() == 1
    best = search.best_index_
    assert res["rank_test_score"][best] == 1 and res["n_epochs"][best] == 9
    assert search.best_estimator_.n_iter_ == 9  # refit for the epochs it earned
    assert search.best_estimator_.early_stopping is False
    Xt, yt = heldout_digits
    assert search.score(Xt, yt) > 0.8
    assert search.predict_proba(Xt[:3]).shape == (3, 10)


def test_every_survivor_beat_those_it_replaced(small_digits):
    X, y = small_digits
    search = EpochHalvingSearchCV(
        CNNClassifier(**{**TINY, "random_state": 0}),
        {"lr": [1e-4, 3e-3, 1e-2, 3e-2]},
        max_epochs=4,
        factor=2,
        cv=2,
    ).fit(X, y)
    res = search.cv_results_
    first = res["iter"] == 0
    later = res["iter"] > 0
    # the survivors' scores at rung 0 are not shown (overwritten by later rungs),
    # but each stopped candidate ranks below every survivor
    assert res["rank_test_score"][later].max() < res["rank_test_score"][first].min()
    assert search.n_candidates_ == [4, 2, 1]


def test_sampled_candidates_and_a_regressor(small_digits):
    X, y = small_digits
    search = EpochHalvingSearchCV(
        CNNRegressor(**TINY),
        {"lr": loguniform(1e-4, 1e-2)},
        n_candidates=4,
        max_epochs=4,
        cv=2,
        random_state=0,
    ).fit(X, y.astype(float))
    assert len(search.cv_results_["params"]) == 4
    assert search.predict(X[:5]).shape == (5,)


def test_not_a_network(small_digits):
    X, y = small_digits
    with pytest.raises(ValueError, match="network estimator with warm_start"):
        EpochHalvingSearchCV(SVC(), {"C": [1, 10]}).fit(X.reshape(len(X), -1), y)
    with pytest.raises(ValueError, match="factor"):
        EpochHalvingSearchCV(CNNClassifier(), {"lr": [1e-3]}, factor=1).fit(X, y)


def test_param_columns(small_digits):
    X, y = small_digits
    search = EpochHalvingSearchCV(
        CNNClassifier(**TINY),
        [{"lr": [1e-3]}, {"dropout": [0.1]}],
        max_epochs=2,
        cv=2,
    ).fit(X, y)
    res = search.cv_results_
    assert res["param_lr"].mask.tolist() == [False, True]
    assert res["param_dropout"].mask.tolist() == [True, False]
    assert np.isfinite(res["mean_test_score"]).all()


def test_a_schedule_spans_the_whole_budget(small_digits, monkeypatch):
    from skcnn import model_selection

    X, y = small_digits
    seen = []
    real = model_selection._continue

    def spy(estimator, *args):
        out = real(estimator, *args)
        seen.append([h["event_lr"] for h in out[0].history_])
        return out

    monkeypatch.setattr(model_selection, "_continue", spy)
    search = EpochHalvingSearchCV(
        CNNClassifier(**{**TINY, "lr_schedule": "onecycle"}),
        {"dropout": [0.0, 0.3, 0.5]},
        max_epochs=9,
        cv=2,
    ).fit(X, y)
    assert search.n_epochs_ == [3, 9]
    # the survivor's 9 epochs follow one 9-epoch cycle (not a new one per rung)
    from skcnn._engine.recipe import EpochFactor

    factor = EpochFactor("onecycle", 9)
    lr = search.estimator.lr
    np.testing.assert_allclose(seen[-1], [lr * factor(e) for e in range(9)], rtol=1e-6)
    # the refit runs its own full cycle over the epochs the winner trained
    assert search.best_estimator_.schedule_epochs is None
    assert search.best_estimator_.n_iter_ == 9


def test_sklearn_halving_searches_take_the_epochs_as_budget(small_digits):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV as SkHalving
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from skcnn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV

    X, y = small_digits
    est = CNNClassifier(**{**TINY, "max_epochs": 4, "random_state": 0})
    grid = {"lr": [1e-3, 5e-3, 2e-2, 5e-2]}
    with pytest.raises(ValueError, match="max_resources='auto'"):
        SkHalving(est, grid, resource="max_epochs", cv=2).fit(X, y)
    search = HalvingGridSearchCV(est, grid, factor=2, cv=2).fit(X, y)
    assert search.max_resources_ == 4 and search.max_resources == "auto"
    assert search.n_resources_ == [1, 2, 4]  # "exhaust": the last rung uses them all
    assert search.n_candidates_ == [4, 2, 1]
    assert search.best_estimator_.max_epochs == 4
    assert search.best_estimator_.n_iter_ <= 4
    # in a Pipeline the resource names the step's parameter
    pipe = make_pipeline(FunctionTransformer(), est)
    rand = HalvingRandomSearchCV(
        pipe,
        {"cnnclassifier__lr": loguniform(1e-3, 1e-1)},
        resource="cnnclassifier__max_epochs",
        factor=2,
        cv=2,
        random_state=0,
    ).fit(X, y)
    assert rand.max_resources_ == 4 and rand.n_resources_[0] == 1


def test_parameters_the_search_sets_cannot_be_in_the_grid(small_digits):
    X, y = small_digits
    search = EpochHalvingSearchCV(
        CNNClassifier(**TINY), {"max_epochs": [2, 4], "dropout": [0.0, 0.2]}, cv=2
    )
    with pytest.raises(ValueError, match=r"param_grid sets \['max_epochs'\]"):
        search.fit(X, y)
    assert not hasattr(search, "cv_results_")


def test_every_rung_trains_on(small_digits):
    search = EpochHalvingSearchCV(CNNClassifier(**TINY), {"lr": [1]}, factor=1.1)
    epochs, counts = search._rungs(40, budget=8)
    assert all(b > a for a, b in zip(epochs, epochs[1:])), epochs
    assert epochs[-1] <= 8 and len(epochs) == len(counts)


def test_stop_at_one_ends_the_race_a_rung_early(small_digits, monkeypatch):
    """With stop_at_one the lone survivor is not trained on every fold to
    the budget: the same rungs up to there, the same winner and score, and
    the refit trains it for the whole budget."""
    from skcnn import model_selection

    X, y = small_digits
    calls = []
    real = model_selection._continue

    def spy(estimator, *args):
        calls.append(args[-2])
        return real(estimator, *args)

    monkeypatch.setattr(model_selection, "_continue", spy)
    grid = {"lr": [1e-3, 5e-3, 2e-2], "dropout": [0.0, 0.3, 0.5]}  # 9 candidates
    kw = dict(max_epochs=9, cv=2)
    est = CNNClassifier(**{**TINY, "random_state": 0})
    full = EpochHalvingSearchCV(est, grid, **kw).fit(X, y)
    n_full = len(calls)
    calls.clear()
    early = EpochHalvingSearchCV(est, grid, stop_at_one=True, **kw).fit(X, y)
    assert early.n_candidates_ == [9, 3] and early.n_epochs_ == [1, 3]
    assert calls == [1] * 18 + [2] * 6 and n_full == len(calls) + 2
    # the winner of the 3 at 3 epochs is the one the full race kept
    assert early.best_params_ == full.best_params_
    res = early.cv_results_
    last = res["n_epochs"] == 3
    assert last.sum() == 3 and res["n_epochs"].max() == 3
    assert early.best_score_ == res["mean_test_score"][last].max()
    assert early.best_estimator_.max_epochs == 9  # the refit: the whole budget
    # two candidates: one rung only, each at half the budget
    two = EpochHalvingSearchCV(
        est, {"lr": [1e-3, 5e-3]}, factor=2, stop_at_one=True, **kw
    )
    assert two._rungs(2, 9) == ([4], [2])
    assert EpochHalvingSearchCV(est, {"lr": [1e-3]}, stop_at_one=True)._rungs(1, 9) == (
        [9],
        [1],
    )
