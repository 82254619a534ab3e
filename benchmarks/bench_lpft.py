"""Choosing PretrainedClassifier's fine-tuning defaults (issue 25): linear
probe (LP), fine-tuning from a random head (FT) and from the probe (LP-FT).

EfficientNet-Lite0 with its real ImageNet weights, 2 CPU cores. Each
configuration is fitted on

- ``few``: digits, 10 (``--per-class``) training images per class, stratified draws; scored on
  the rest of the digits (in-distribution) and on a *selection* population
  of printed digits, ``render_font_digits(random_state=1)`` (never the
  bundled external set, which is a test set);
- ``full``: 1,617 digits (90 %), scored on the 180 held out and on the same
  selection population;
- ``lfw``: scikit-image's 200 faces / non-faces, stratified 3-fold CV.

    python benchmarks/bench_lpft.py --stage few --seeds 100 101
    python benchmarks/bench_lpft.py --stage full --configs lpft_all_1e-4

Results: ``results/bench_lpft_<stage>.{csv,md}`` (mean over seeds).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from _common import write_results
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from skcnn import PretrainedClassifier
from skcnn.datasets import load_digits_images, load_lfw, render_font_digits

PROBE = dict(layer=-4, pooling=None, input_size=64, head_init="probe")
# the recipe chosen from the runs below (PretrainedClassifier's defaults)
CHOSEN = dict(
    **PROBE,
    finetune_depth="all",
    lr=1e-4,
    backbone_lr_scale=1.0,
    head_epochs=0,
    max_epochs=10,
    bn_statistics="frozen",
)
CONFIGS = {
    # the defaults of this skcnn version
    "defaults": dict(),
    # skcnn 0.2's defaults: fine-tuning of the whole network from a random head
    "ft_0.2": dict(
        layer=None,
        pooling="avg",
        input_size=96,  # 0.2's "auto" for 8 px digits (and 25 px faces: 100)
        head_init="random",
        finetune_depth=2,
        head_epochs=1,
        lr=1e-3,
        backbone_lr_scale=0.1,
        max_epochs=15,
        bn_statistics="batch",
    ),
    # the linear probe, through the estimator (finetune_depth=0 + probe)
    "lp": dict(**PROBE, finetune_depth=0),
    "lp_stage_search": dict(**PROBE, finetune_depth=0),
    **{
        f"lpft_{depth}_{lr:g}_{epochs}ep_{bn}": dict(
            **PROBE,
            finetune_depth=depth,
            lr=lr,
            backbone_lr_scale=1.0,
            head_epochs=0,
            max_epochs=epochs,
            bn_statistics=bn,
        )
        for depth in (2, "all")
        for lr in (1e-4, 3e-4)
        for epochs in (5, 10)
        for bn in ("frozen", "batch")
    },
    # the chosen recipe at 96 px (skcnn 0.2's "auto" for 8 px digits; the
    # results files of that run call it lpft_all_auto)
    "lpft_all_96": dict(**{**CHOSEN, "input_size": 96}),
    # fine-tuning at the cut from a random head (LP-FT's ablation)
    "ft_cut_all_1e-4": dict(**{**CHOSEN, "head_init": "random"}),
}


def few_splits(y, seeds, n_per_class=10):
    for seed in seeds:
        rng = np.random.default_rng(seed)
        train = np.concatenate(
            [
                rng.choice(np.flatnonzero(y == c), n_per_class, replace=False)
                for c in np.unique(y)
            ]
        )
        yield seed, train, np.setdiff1d(np.arange(len(y)), train)


def full_splits(y, seeds):
    for seed in seeds:
        train, test = train_test_split(
            np.arange(len(y)), test_size=0.1, stratify=y, random_state=seed
        )
        yield seed, train, test


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", choices=("few", "full", "lfw"), default="few")
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--configs", nargs="+", default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument(
        "--external-test",
        action="store_true",
        help="also score the bundled printed digits (a test set: report only, "
        "after the configurations are chosen)",
    )
    args = parser.parse_args()
    X, y = load_digits_images()
    Xs, ys = render_font_digits(random_state=1)
    if args.stage == "lfw":  # faces / non-faces: no selection population
        X, y = load_lfw()
        Xs, ys = X[:0], y[:0]
    names = args.configs or list(CONFIGS)
    if args.stage == "few":
        splits = list(few_splits(y, args.seeds, args.per_class))
    elif args.stage == "lfw":
        folds = StratifiedKFold(3, shuffle=True, random_state=args.seeds[0])
        splits = [(i, tr, te) for i, (tr, te) in enumerate(folds.split(X, y))]
    else:
        splits = list(full_splits(y, args.seeds))
    if args.external_test:
        from skcnn.datasets import load_digits_external

        Xe, ye = load_digits_external()
    rows = []
    for name in names:
        ids, exts, times, epochs, vals, tests = [], [], [], [], [], []
        for seed, train, test in splits:
            clf = PretrainedClassifier(
                "efficientnet_lite0", device="cpu", random_state=seed, **CONFIGS[name]
            )
            if name == "lp_stage_search":  # the stage picked by 3-fold CV
                clf = GridSearchCV(clf, {"layer": [-2, -3, -4]}, cv=3)
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(X[train], y[train])
            times.append(time.perf_counter() - t)
            fitted = getattr(clf, "best_estimator_", clf)
            epochs.append(fitted.n_iter_)
            ids.append(clf.score(X[test], y[test]))
            if len(Xs):
                exts.append(f1_score(ys, clf.predict(Xs), average="macro"))
            else:
                exts.append(float("nan"))
            if args.external_test:
                tests.append(f1_score(ye, clf.predict(Xe), average="macro"))
            valid = [h["valid_acc"] for h in fitted.history_ if "valid_acc" in h]
            vals.append(valid[fitted.best_epoch_ - 1] if valid else float("nan"))
            print(
                f"{name} seed {seed}: id {ids[-1]:.4f} sel-ext F1 {exts[-1]:.4f} "
                f"val {vals[-1]:.4f} {times[-1]:.1f}s {epochs[-1]} epochs",
                flush=True,
            )
        rows.append(
            {
                "config": name,
                "id_acc": statistics.mean(ids),
                "id_min": min(ids),
                "selection_ext_f1": statistics.mean(exts),
                **(
                    {"external_test_f1": statistics.mean(tests)}
                    if args.external_test
                    else {}
                ),
                "valid_acc": statistics.mean(vals),
                "fit_s": statistics.mean(times),
                "epochs": statistics.mean(epochs),
                "s_per_epoch": statistics.mean(
                    t / max(e, 1) for t, e in zip(times, epochs)
                ),
            }
        )
    write_results(
        args.name or f"bench_lpft_{args.stage}",
        rows,
        notes=f"Seeds {args.seeds}; params: {[CONFIGS[n] for n in names]}",
    )


if __name__ == "__main__":
    main()
