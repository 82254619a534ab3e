"""Volumes (issue 27): the generated 3-D shape task with the default
estimators, next to a flattened-voxel baseline.

Data: ``skcnn.datasets.make_shapes_3d`` (balls, cubes and crosses of random
size and position, noise 0.1, 16^3 uint8 volumes), 450 train / 150 test per
seed. Rows:

- ``CNNClassifier(channels="none")``: the defaults otherwise (3-D
  convolutions because the samples are volumes); test accuracy;
- ``CNNRegressor(channels="none")``: the object's voxel count, unscaled;
  test R^2;
- ``voxels+pca+svm``: ``ImageFlattener`` -> ``PCA(0.9)`` -> ``SVC``, the
  classic baseline of ``skcnn compare``, on the same split.

    python benchmarks/bench_volumes.py --seeds 0 1 2

Results: ``results/bench_volumes.{csv,md}``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import write_results
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from skcnn import CNNClassifier, CNNRegressor
from skcnn.baselines import ImageFlattener
from skcnn.datasets import make_shapes_3d


def run(seed):
    X, y, voxels = make_shapes_3d(600, random_state=seed, return_voxels=True)
    tr, te = slice(0, 450), slice(450, None)
    rows = []

    def timed(name, est, target, score):
        start = time.perf_counter()
        est.fit(X[tr], target[tr])
        fit_s = time.perf_counter() - start
        value = score(target[te], est.predict(X[te]))
        net = getattr(est, "module_", None)
        conv3d = net is not None and any(
            type(m).__name__ == "Conv3d" for m in net.modules()
        )
        rows.append(
            {
                "seed": seed,
                "model": name,
                "metric": score.__name__,
                "test": round(float(value), 4),
                "fit_s": round(fit_s, 1),
                "conv3d": conv3d,
            }
        )
        print(rows[-1], flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        timed(
            "CNNClassifier",
            CNNClassifier(channels="none", random_state=seed),
            y,
            accuracy_score,
        )
        timed(
            "CNNRegressor (voxel count)",
            CNNRegressor(channels="none", random_state=seed),
            voxels.astype(np.float64),
            r2_score,
        )
    timed(
        "voxels+pca+svm",
        make_pipeline(
            ImageFlattener(channels="none"),
            StandardScaler(),
            PCA(0.9, random_state=seed),
            SVC(),
        ),
        y,
        accuracy_score,
    )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows = [row for seed in args.seeds for row in run(seed)]
    summary = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        summary.append(
            f"- {model}: {mine[0]['metric']} median "
            f"{np.median([r['test'] for r in mine]):.4f} (min "
            f"{min(r['test'] for r in mine):.4f}), fit median "
            f"{np.median([r['fit_s'] for r in mine]):.1f} s over seeds "
            f"{[r['seed'] for r in mine]}"
        )
    write_results(
        "bench_volumes",
        rows,
        "make_shapes_3d, 450 train / 150 test per seed, 16^3 uint8 volumes.\n\n"
        + "\n".join(summary),
    )


if __name__ == "__main__":
    main()
