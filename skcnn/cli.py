"""Command line: ``skcnn compare`` (also ``python -m skcnn compare``)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings
from pathlib import Path

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
        "(scikit-image's 200 25x25 face / non-face images; alias 'lfw'), a folder "
        "with one subfolder per class, or an .npz file of arrays X (images) and y",
    )
    cmp.add_argument(
        "--external",
        action="append",
        default=None,
        help="an external test set, scored in its own columns; give it several times "
        "for several sets: a folder of class subfolders, an .npz file, 'shifted' (the "
        "validation split through skcnn's augmentation) or 'digits-printed'; default: "
        "printed digits for --data digits, 'shifted' otherwise",
    )
    cmp.add_argument(
        "--select",
        action="append",
        default=None,
        help="a selection set: a population the run may look at to choose the "
        "recommended model and the vote's members, never counted as external (a folder "
        "of class subfolders, an .npz file, 'digits-other-faces' or 'none'); give it "
        "several times for several sets; default: 300 digits drawn by other font faces "
        "for --data digits, none otherwise",
    )
    cmp.add_argument(
        "--budget",
        default="300",
        help="seconds the whole run may take (a positive number; default 300): each "
        "row's cost is measured on your images first, then rows get fewer folds, "
        "candidates or epochs, or are listed as not run, so that the run fits; "
        "'none' runs every row in full",
    )
    cmp.add_argument(
        "--resume",
        default=None,
        metavar="OUT",
        help="continue the stopped run whose results are in OUT, with the options "
        "that shape its results (data, external sets, models, folds, seed); how to "
        "run (--device, --n-jobs, --dask, --budget) comes from this command line; "
        "--budget is then the time for the rows still to run",
    )
    cmp.add_argument(
        "--replay",
        default=None,
        metavar="OUT",
        help="run again exactly the plan the run in OUT ran (each row's candidates, "
        "folds and epochs, its seed and its options), with no time budget: the same "
        "table on another machine or later (up to float rounding); write it to --out",
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
        help="a smoke run: fewer epochs, 2 folds, smaller searches, a smaller "
        "robustness profile, summary figures only (about 90 s on 2 "
        "cores with the plan's calibration)",
    )
    cmp.add_argument(
        "--device",
        default="auto",
        help="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'",
    )
    cmp.add_argument(
        "--n-jobs",
        type=_jobs,
        default="auto",
        help="auto (default): the rows side by side, a worker process per free "
        "core; N: the rows one after another, each row's CV fits in N processes",
    )
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
    from .compare.zoo import GROUPS

    return GROUPS


def main(argv=None):
    """Run the ``skcnn`` command with ``argv`` (None: the process's
    arguments); return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "compare":
        from .compare import run_comparison

        try:
            options = _run_options(args)
            with warnings.catch_warnings(), _terminate_as_interrupt():
                warnings.showwarning = _show_warning
                result = run_comparison(**options)
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
            out = args.resume or args.out
            where = (
                f"; finished rows and report.md are in {out} (continue with "
                f"skcnn compare --resume {out})"
                if out
                else ""
            )
            print(f"skcnn compare: stopped{where}.", file=sys.stderr)
            return 130
        for e in result.externals:
            print(f"External set {e['label']} ({e['name']}): {e['description']}.")
        print("F1 is macro-averaged; fit_time_s covers each model's whole search.\n")
        print(result.to_markdown())
        print(
            f"\nwall time: {result.wall_time_s:.1f}s"
            + (f"; results in {options['out']}" if options["out"] else "")
        )
        if not any(r.get("status") == "ok" for r in result.rows):
            print(
                "skcnn compare: error: no model ran within the budget "
                f"(--budget {args.budget}; the plan above says what each row needs). "
                "Raise --budget, or compare fewer --models.",
                file=sys.stderr,
            )
            return 1
    return 0


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill PID``) stops the run as Ctrl-C does: the finished rows
    and the report are kept and ``--resume`` continues (a fit in progress
    stops after its batch, as on Ctrl-C). A run started in the background of
    a script cannot be stopped with SIGINT: Python ignores it there."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as one line of the command's own output (not Python's
    ``file:line: Category`` form, which reads like a crash)."""
    print(f"skcnn compare: warning: {message}", file=sys.stderr, flush=True)


def _jobs(text):
    """--n-jobs: "auto" or a number of jobs (-1: every core)."""
    if str(text).lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes 'auto' or a number of jobs; got {text!r}"
        ) from None


def _budget(text):
    """--budget: seconds (a positive number) or "none" (no budget)."""
    if str(text).lower() in ("none", "off"):
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise ValueError(
            f"--budget takes seconds (a positive number) or 'none' (no budget); "
            f"got {text!r}."
        )
    return seconds


def _run_options(args):
    """run_comparison's arguments from the command line (--resume: from the
    stopped run's folder)."""
    options = dict(
        data=args.data,
        external=args.external,
        select=args.select,
        models=args.models,
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
        budget=_budget(args.budget),
    )
    if args.resume is not None:
        from .compare.state import saved_args

        # What shapes the results comes from the folder (checked, typed);
        # how to run (device, jobs, Dask, budget) from this command line only.
        options.update(saved_args(args.resume), out=args.resume, resume=True)
    if args.replay is not None:
        from .compare.state import saved_args

        if args.resume is not None:
            raise ValueError("--replay and --resume do not go together.")
        if (
            args.out is not None
            and Path(args.out).resolve() == Path(args.replay).resolve()
        ):
            raise ValueError(
                "--replay writes a new run: give another --out than the folder replayed."
            )
        options.update(saved_args(args.replay), replay=args.replay, budget=None)
    return options


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
