"""Hyperparameter search on a Dask cluster through joblib's dask backend."""

import numpy as np
import pytest
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV

from skcnn import CNNClassifier

distributed = pytest.importorskip("distributed")


@pytest.mark.timeout(300)
def test_dask_grid_search_matches_local(digits_uint8):
    Xtr, _, ytr, _ = digits_uint8
    X, y = Xtr[:400], ytr[:400]
    grid = {"dropout": [0.0, 0.3], "lr": [1e-3, 3e-3]}
    est = CNNClassifier(
        conv_filters=(8,), dense_units=(32,), max_epochs=3, device="cpu", random_state=0
    )
    local = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        with parallel_backend("dask"):
            remote = GridSearchCV(est, grid, cv=2).fit(X, y)
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"],
        local.cv_results_["mean_test_score"],
        atol=0.02,
    )
    assert remote.best_params_ == local.best_params_
    # the refitted model came back from a worker and predicts here
    assert remote.predict(X[:5]).shape == (5,)
