"""Where to spend the cores of a comparison row's search (issue 26): one fit
at a time with all threads inside it (``n_jobs=1``, the default of ``skcnn
compare``), or the CV fits in parallel processes with one thread each
(``n_jobs=<cores>``, loky workers: joblib limits each worker's thread pools
to cores / n_jobs).

The rows are the comparison's own (``skcnn.compare.zoo.default_models`` on
the bundled digits, its 75% training split, 3 folds): ``cnn`` (2 candidates,
30 epochs), ``pca+svm`` (8 candidates) and ``hog+svm`` (2 candidates).
Repeats are interleaved; printed: wall time per setting, the ratio, and the
best CV score (the same search either way, up to float rounding of the
thread count).

    python benchmarks/bench_parallel.py --repeats 2

Results: ``results/bench_parallel.{csv,md}``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from _common import write_results
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from skcnn.compare.zoo import default_models
from skcnn.datasets import load_digits_images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", nargs="+", default=["cnn", "pca+svm", "hog+svm"])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    X, y = load_digits_images()
    X_tr, _, y_tr, _ = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    models = default_models(image_shape=X.shape[1:], device="cpu")
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    rows = []
    for name in args.rows:
        estimator, grid = models[name]
        times = {1: [], cores: []}
        scores = {}
        for _ in range(args.repeats):
            for n_jobs in (1, cores):
                search = GridSearchCV(
                    clone(estimator), grid, scoring="f1_macro", cv=folds, n_jobs=n_jobs
                )
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    search.fit(X_tr, y_tr)
                times[n_jobs].append(time.perf_counter() - start)
                scores[n_jobs] = search.best_score_
                print(name, n_jobs, round(times[n_jobs][-1], 1), flush=True)
        one, many = np.median(times[1]), np.median(times[cores])
        rows.append(
            {
                "row": name,
                "fits": len(list(_candidates(grid))) * 3,
                f"1x{cores}_threads_s": round(one, 1),
                f"{cores}x1_processes_s": round(many, 1),
                "processes/threads": round(many / one, 3),
                "cv_f1_threads": round(scores[1], 4),
                "cv_f1_processes": round(scores[cores], 4),
            }
        )
    write_results(
        "bench_parallel",
        rows,
        f"{cores} cores; medians of {args.repeats} interleaved repeats. "
        "processes/threads < 1: parallel CV fits are faster.",
    )


def _candidates(grid):
    from sklearn.model_selection import ParameterGrid

    return ParameterGrid(grid or {})


if __name__ == "__main__":
    main()
