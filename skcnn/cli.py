"""Command line: ``skcnn compare`` (also ``python -m skcnn compare``)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _parser():
    parser = argparse.ArgumentParser(
        prog="skcnn", description="skcnn: CNN estimators for scikit-learn."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cmp = sub.add_parser(
        "compare",
        help="baseline comparison: every model on the same folds, validation and external scores",
        description=(
            "Compare classic baselines (pixels+RF, histogram+RF, HOG+SVM, HOG+PCA+SVM, "
            "PCA+SVM, PCA+SVM trained on noisy pixels), CNNs (plain, augmented, noise), a "
            "small DenseNet and transfer learning (EfficientNet-Lite0 features + logistic "
            "regression, fine-tuning; DenseNet-121 rows when its weights are given); each "
            "with a small grid search on the same CV folds, scored on a validation split "
            "and an external test set, with 95% bootstrap intervals and a robustness "
            "profile under 8 controlled shifts. F1 is macro-averaged."
        ),
    )
    cmp.add_argument(
        "--data",
        default="digits",
        help="'digits' (default: scikit-learn's 8x8 handwritten digits), 'lfw-subset' "
        "(scikit-image's 200 25x25 face / non-face images; alias 'lfw'), or a folder "
        "with one subfolder per class",
    )
    cmp.add_argument(
        "--external",
        default=None,
        help="external test set: a folder of class subfolders, or 'shifted' (the "
        "validation split through skcnn's augmentation); default: printed digits "
        "for --data digits, 'shifted' otherwise",
    )
    cmp.add_argument(
        "--models",
        default=None,
        help="comma-separated models and groups (default: all). Groups: "
        + "; ".join(f"{g} = {', '.join(m)}" for g, m in _groups().items() if g != "all")
        + "; all",
    )
    cmp.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run (about 30 s): fewer epochs, 2 folds, smaller searches, "
        "a smaller robustness profile, summary figures only",
    )
    cmp.add_argument(
        "--device",
        default="auto",
        help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'",
    )
    cmp.add_argument("--n-jobs", type=int, default=1, help="parallel search jobs")
    cmp.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run the searches on the Dask cluster whose scheduler is at ADDRESS "
        "(e.g. tcp://10.0.0.5:8786); needs pip install 'skcnn[dask]'",
    )
    cmp.add_argument(
        "--no-robustness",
        action="store_true",
        help="skip the robustness profile (8 shifts x 3 severities)",
    )
    cmp.add_argument("--cv", type=int, default=3, help="number of CV folds (default 3)")
    cmp.add_argument(
        "--weights",
        default=None,
        help="DenseNet-121 state-dict file for the pretrained rows",
    )
    cmp.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize folder images to this square size (default 32)",
    )
    cmp.add_argument("--random-state", type=int, default=0)
    cmp.add_argument(
        "--out",
        default=None,
        help="write report.md, results.csv/.md, robustness.csv and PNG figures here",
    )
    return parser


def _groups():
    # The model table, without importing torch (skcnn --help stays fast).
    from ._compare_names import GROUPS

    return GROUPS


def main(argv=None):
    """Run the ``skcnn`` command with ``argv`` (None: the process's
    arguments); return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "compare":
        from .compare import run_comparison

        models = args.models
        try:
            result = run_comparison(
                args.data,
                external=args.external,
                models=models,
                quick=args.quick,
                device=args.device,
                n_jobs=args.n_jobs,
                cv=args.cv,
                weights=args.weights,
                image_size=args.image_size,
                random_state=args.random_state,
                out=args.out,
                robustness=not args.no_robustness,
                dask=args.dask,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            print(f"skcnn compare: error: {exc}", file=sys.stderr)
            return 2
        except MemoryError as exc:
            size = args.image_size or 32
            print(
                f"skcnn compare: error: ran out of memory ({exc or 'MemoryError'}). "
                f"Lower --image-size (now {size}; every row trains on images of that "
                "size), compare fewer --models, or use --quick.",
                file=sys.stderr,
            )
            return 2
        except KeyboardInterrupt:
            where = f"; finished rows are in {args.out}" if args.out else ""
            print(f"skcnn compare: interrupted{where}.", file=sys.stderr)
            return 130
        print(f"External set: {result.external}.")
        print("F1 is macro-averaged; fit_time_s covers each model's whole search.\n")
        print(result.to_markdown())
        print(
            f"\nwall time: {result.wall_time_s:.1f}s"
            + (f"; results in {args.out}" if args.out else "")
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
