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
            "Compare pixels+RF, histogram+RF, HOG+SVM, PCA+SVM, CNN (with and without "
            "augmentation), a small DenseNet and, when weights are available, pretrained "
            "DenseNet-121 features and fine-tuning; each with a small grid search on the same "
            "CV folds, scored on a validation split and an external test set."
        ),
    )
    cmp.add_argument(
        "--data",
        default="digits",
        help="'digits' (default), 'lfw', or a folder with one subfolder per class",
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
        help="comma-separated subset of: " + ", ".join(_model_names()),
    )
    cmp.add_argument(
        "--quick", action="store_true", help="fewer epochs, 2 folds, smaller searches"
    )
    cmp.add_argument(
        "--device",
        default="auto",
        help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'",
    )
    cmp.add_argument("--n-jobs", type=int, default=1, help="parallel search jobs")
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
        help="write results.csv, results.md and PNG figures to this folder",
    )
    return parser


def _model_names():
    from .compare import MODEL_NAMES

    return MODEL_NAMES


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "compare":
        from .compare import run_comparison

        models = [m.strip() for m in args.models.split(",")] if args.models else None
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
            )
        except (ValueError, RuntimeError, OSError) as exc:
            print(f"skcnn compare: error: {exc}", file=sys.stderr)
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
