"""Accuracy of the fused Adam step against PyTorch's default step (issue 37):
the fit-loop setting of ``bench_overhead.py`` (digits, 20 epochs, batch 64,
Adam 1e-3, no validation split) on 10 stratified 75/25 splits, each split
fitted with ``optimizer="adam"`` (skcnn makes it fused) and with the class
``torch.optim.Adam`` (left as given: PyTorch's foreach step), same seed.

    python benchmarks/bench_fused_accuracy.py [--splits 10]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from _common import write_results
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedShuffleSplit

from skcnn import CNNClassifier


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", type=int, default=10)
    args = parser.parse_args()
    d = load_digits()
    X = np.round(d.images * (255 / 16)).astype(np.uint8)
    y = d.target
    splits = StratifiedShuffleSplit(args.splits, test_size=0.25, random_state=0)
    rows = []
    for i, (train, test) in enumerate(splits.split(X, y)):
        row = {"split": i}
        for name, optimizer in (("fused", "adam"), ("foreach", torch.optim.Adam)):
            clf = CNNClassifier(
                max_epochs=20,
                batch_size=64,
                lr=1e-3,
                optimizer=optimizer,
                validation_fraction=0,
                early_stopping=False,
                random_state=i,
                device="cpu",
                num_threads=1,
            ).fit(X[train], y[train])
            row[f"{name}_accuracy"] = round(float(clf.score(X[test], y[test])), 4)
        row["difference"] = round(row["fused_accuracy"] - row["foreach_accuracy"], 4)
        print(row, flush=True)
        rows.append(row)
    diffs = [r["difference"] for r in rows]
    fused = [r["fused_accuracy"] for r in rows]
    plain = [r["foreach_accuracy"] for r in rows]
    notes = (
        f"mean accuracy fused {statistics.mean(fused):.4f}, foreach "
        f"{statistics.mean(plain):.4f}; mean difference {statistics.mean(diffs):+.4f} "
        f"(min {min(diffs):+.4f}, max {max(diffs):+.4f}) over {len(rows)} splits "
        "(450 test images each: one image is 0.0022)."
    )
    print(notes)
    write_results("bench_fused_accuracy", rows, notes)


if __name__ == "__main__":
    main()
