"""The CNN rows' depth at larger images (issue 26, the size-aware zoo):
CNNClassifier's default two conv blocks against ``zoo.cnn_filters`` (one
block per halving down to 8 px: three at 64 px).

Data: scikit-learn's digits upscaled to ``--size`` px (the comparison's
split: 75% train, 25% validation, stratified, seed 0) and the bundled
printed digits at the same size as the external set. Each configuration is
fitted as the comparison's ``cnn`` row is (30 epochs, the defaults
otherwise), seeds interleaved; printed: validation and external accuracy /
macro F1, fit time, parameter count.

    python benchmarks/bench_zoo_size.py --size 64 --seeds 0 1

Results: ``results/bench_zoo_size_<size>.{csv,md}``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import write_results
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from skcnn import CNNClassifier
from skcnn.compare.zoo import cnn_filters
from skcnn.datasets import load_digits_external, load_digits_images


def _upscale(X, size):
    from skimage.transform import resize

    out = [resize(x, (size, size), preserve_range=True, anti_aliasing=False) for x in X]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    X, y = load_digits_images()
    X = _upscale(X, args.size)
    X_ext, y_ext = load_digits_external()
    X_ext = _upscale(X_ext, args.size)
    X_tr, X_val, y_tr, y_val = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    configs = {"default (32, 64)": (32, 64), "cnn_filters": cnn_filters(X.shape[1:])}
    rows = []
    for seed in args.seeds:
        for label, filters in configs.items():
            clf = CNNClassifier(conv_filters=filters, max_epochs=30, random_state=seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                clf.fit(X_tr, y_tr)
            fit_s = time.perf_counter() - start
            pv, pe = clf.predict(X_val), clf.predict(X_ext)
            rows.append(
                {
                    "size": args.size,
                    "seed": seed,
                    "config": label,
                    "conv_filters": str(filters),
                    "params": sum(p.numel() for p in clf.module_.parameters()),
                    "val_acc": round(float(np.mean(pv == y_val)), 4),
                    "val_f1": round(float(f1_score(y_val, pv, average="macro")), 4),
                    "ext_f1": round(float(f1_score(y_ext, pe, average="macro")), 4),
                    "fit_s": round(fit_s, 1),
                }
            )
            print(rows[-1], flush=True)
    notes = []
    for label in configs:
        mine = [r for r in rows if r["config"] == label]
        notes.append(
            f"- {label}: val F1 median {np.median([r['val_f1'] for r in mine]):.4f}, "
            f"external F1 median {np.median([r['ext_f1'] for r in mine]):.4f}, fit "
            f"median {np.median([r['fit_s'] for r in mine]):.1f} s"
        )
    write_results(
        f"bench_zoo_size_{args.size}",
        rows,
        f"digits upscaled to {args.size} px: 1,347 train / 450 validation; "
        "external: the 500 printed digits at the same size.\n\n" + "\n".join(notes),
    )


if __name__ == "__main__":
    main()
