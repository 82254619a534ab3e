"""
Grid search on a Dask cluster
=============================

scikit-learn's searches run their fits through joblib; joblib's ``dask``
backend sends them to a Dask cluster. skcnn estimators (and their fitted
networks) travel to the workers and back like any estimator.

Locally this starts a ``LocalCluster`` with two worker processes. To use a
real cluster, pass its scheduler address: ``python plot_dask_search.py
tcp://scheduler:8786``. On GPU workers, give each worker its own GPU
(``CUDA_VISIBLE_DEVICES`` per worker, as ``dask-cuda`` does); ``device="auto"``
then uses it.
"""

import sys

from distributed import Client, LocalCluster
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV

from skcnn import CNNClassifier
from skcnn.datasets import load_digits_images


def main():
    X, y = load_digits_images()
    grid = {"dropout": [0.0, 0.3], "lr": [1e-3, 3e-3]}

    if len(sys.argv) > 1:
        client = Client(sys.argv[1])
    else:
        client = Client(
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        )
    print(client)
    with parallel_backend("dask"):
        search = GridSearchCV(
            CNNClassifier(max_epochs=10, random_state=0), grid, cv=3
        ).fit(X, y)
    print("best:", search.best_params_, f"CV accuracy {search.best_score_:.3f}")
    client.close()


if __name__ == "__main__":  # worker processes import this file: start nothing then
    main()
