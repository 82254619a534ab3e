"""Where a from-scratch network row starts to learn (issue 35): the
comparison's CNN row (one thread, a onecycle schedule over ``max_epochs``) on
digits and on the generated 3-D shapes, at the epochs the planner may cut it
to. The planner's floor (``skcnn.compare.plan.MIN_EPOCHS`` and
``MIN_EPOCH_SHARE``: at least half of the row's own epochs) comes from
this table.

    python benchmarks/bench_min_epochs.py --seeds 0 1 2

Results: ``results/bench_min_epochs.{csv,md}``.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from _common import write_results
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from skcnn import CNNClassifier
from skcnn.datasets import load_digits_images, make_shapes_3d


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 4, 7, 8, 15, 30])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    X_d, y_d = load_digits_images()
    rows = []
    for seed in args.seeds:
        X_v, y_v = make_shapes_3d(n_samples=600, random_state=seed)
        for data, X, y in (("digits", X_d, y_d), ("shapes3d", X_v, y_v)):
            X_tr, X_te, y_tr, y_te = train_test_split(
                X, y, test_size=0.25, stratify=y, random_state=seed
            )
            for epochs in args.epochs:
                kw = {"channels": "none"} if data == "shapes3d" else {}
                model = CNNClassifier(
                    max_epochs=epochs, num_threads=1, random_state=seed, **kw
                ).fit(X_tr, y_tr)
                f1 = f1_score(y_te, model.predict(X_te), average="macro")
                rows.append({"data": data, "seed": seed, "epochs": epochs, "f1": f1})
                print(rows[-1], flush=True)
    table = []
    for data in ("digits", "shapes3d"):
        for epochs in args.epochs:
            f1s = [r["f1"] for r in rows if r["data"] == data and r["epochs"] == epochs]
            table.append(
                {
                    "data": data,
                    "epochs": epochs,
                    "share_of_30": round(epochs / 30, 2),
                    "f1_mean": round(float(np.mean(f1s)), 3),
                    "f1_min": round(float(np.min(f1s)), 3),
                    "seeds": len(f1s),
                }
            )
    write_results(
        "bench_min_epochs",
        table,
        notes="CNNClassifier defaults (onecycle over max_epochs), one thread; test "
        "macro F1 on a stratified quarter; shapes3d: make_shapes_3d(600), 16^3 volumes.",
    )


if __name__ == "__main__":
    main()
