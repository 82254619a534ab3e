"""``skcnn compare`` within a time budget (issue 26): planned against actual
time per row, the whole run's wall time, and the table's quality, for
several budgets on two data sets.

- ``digits``: the bundled default (1,347 train / 450 validation 8x8 digits;
  external: the bundled printed digits);
- ``digits2``: the default run with two external sets (issue 35): the
  bundled printed digits and 5,000 printed digits of other font draws
  (``render_font_digits(n_per_class=500, random_state=7)``) as an ``.npz``;
- ``folder28``: a folder of 4,000 28x28 PNG digits, written by this script
  (scikit-learn's digits upscaled to 28 px, plus copies shifted by skcnn's
  augmentation with other seeds to reach 4,000; a stand-in for a user's
  folder of photos, made offline), with two external sets: printed digits
  (``render_font_digits(random_state=3)``, 28 px, as a folder) and the
  shifted validation split.

    python benchmarks/bench_budget.py --budgets 60 150 300 --data digits folder28
    python benchmarks/bench_budget.py --data digits2 --busy --name bench_budget_busy

``--busy`` keeps one core busy (another process spinning) for every run: the
normal case on a user's machine. Per run: wall / budget, rows run, rows whose
search ran in full, rows cut to one fit, the seconds left unused at the end,
best external F1 per set; per row: first plan, as run, planned vs actual.

Results: ``results/bench_budget.{csv,md}`` (one line per run) and
``results/bench_budget_rows.{csv,md}`` (one line per row of each run).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import RESULTS, write_results

from skcnn.compare import run_comparison
from skcnn.datasets import load_digits_images, make_shifted, render_font_digits


def _upscale(X, size=28):
    from skimage.transform import resize

    out = [resize(x, (size, size), preserve_range=True, anti_aliasing=False) for x in X]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _write_folder(root, X, y):
    from PIL import Image

    for i, (x, label) in enumerate(zip(X, y)):
        d = Path(root) / str(label)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x).save(d / f"{i:05d}.png")
    return str(root)


def make_folder28(root, n=4000):
    """4,000 28x28 digits as PNG files in class subfolders, and an external
    folder of printed digits; returns (data folder, external folder)."""
    X, y = load_digits_images()
    X = _upscale(X)
    parts, labels, seed = [X], [y], 1
    while sum(len(p) for p in parts) < n:
        parts.append(make_shifted(X, random_state=seed))
        labels.append(y)
        seed += 1
    X_all, y_all = np.concatenate(parts)[:n], np.concatenate(labels)[:n]
    data = _write_folder(Path(root) / "digits28", X_all, y_all)
    X_ext, y_ext = render_font_digits(n_per_class=30, random_state=3)
    ext = _write_folder(Path(root) / "printed28", _upscale(X_ext), y_ext)
    return data, ext


class _Busy:
    """Another process keeping one core busy while it lives."""

    def __init__(self, on):
        self.on, self.proc = on, None

    def __enter__(self):
        if self.on:
            import subprocess
            import sys

            self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def _full(r):
    """The row ran its own configuration: no cut."""
    return r.get("status") == "ok" and "(cut:" not in r.get("plan", "")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--budgets",
        type=lambda v: None if v == "none" else float(v),
        nargs="+",
        default=[60, 150, 300],
        help="seconds, or none (every row in full)",
    )
    parser.add_argument("--data", nargs="+", default=["digits", "folder28"])
    parser.add_argument(
        "--name", default="bench_budget", help="results/<name>*.{csv,md,log}"
    )
    parser.add_argument("--busy", action="store_true", help="one core kept busy")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    runs, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"digits": ("digits", None, None)}
        if "digits2" in args.data:
            X5, y5 = render_font_digits(n_per_class=500, random_state=7)
            np.savez(Path(tmp) / "printed5000.npz", X=X5, y=y5)
            ext5 = str(Path(tmp) / "printed5000.npz")
            sources["digits2"] = ("digits", ["digits-printed", ext5], None)
        if "folder28" in args.data:
            data, ext = make_folder28(tmp)
            sources["folder28"] = (data, [ext, "shifted"], 28)
        for name in args.data:
            data, external, size = sources[name]
            for budget in args.budgets:
                tag = "none" if budget is None else f"{budget:.0f}"
                print(f"== {name}, budget {tag}", flush=True)
                t0 = time.perf_counter()
                log = RESULTS / f"{args.name}_{name}_{tag}.log"
                with open(log, "w") as f, _Busy(args.busy):
                    result = run_comparison(
                        data,
                        external=external,
                        image_size=size,
                        budget=budget,
                        out=Path(tmp) / f"out_{name}_{tag}",
                        progress=lambda m, f=f: print(m, file=f, flush=True),
                    )
                wall = time.perf_counter() - t0
                ok = [r for r in result.rows if r.get("status") == "ok"]
                labels = [e["label"] for e in result.externals]
                runs.append(
                    {
                        "data": name,
                        "budget_s": budget,
                        "wall_s": round(wall, 1),
                        "wall/budget": round(wall / budget, 2) if budget else "",
                        "calibration_s": round(result.calibration_s, 1),
                        "busy": args.busy,
                        "rows_run": len(ok),
                        "rows_full": sum(
                            _full(r) for r in ok if r["model"] != "ensemble"
                        ),
                        "rows_one_fit": sum(
                            "one fit" in r.get("plan", "")
                            and "(cut:" in r.get("plan", "")
                            for r in ok
                        ),
                        "unused_s": round(max(budget - wall, 0.0), 1) if budget else "",
                        "rows_not_run": sum(
                            r.get("status", "").startswith("not run")
                            for r in result.rows
                        ),
                        "best_val_f1": round(max(r["val_f1"] for r in ok), 3),
                        **{
                            f"best_{lab}_f1": round(max(r[f"{lab}_f1"] for r in ok), 3)
                            for lab in labels
                        },
                        "ensemble_ext_f1": next(
                            (
                                round(r["ext_f1"], 3)
                                for r in ok
                                if r["model"] == "ensemble"
                            ),
                            "",
                        ),
                    }
                )
                for r in result.rows:
                    rows.append(
                        {
                            "data": name,
                            "budget_s": budget,
                            "model": r["model"],
                            "first_plan": result.plan.get(r["model"], ""),
                            "as_run": r.get("plan", r.get("status", "")),
                            "planned_s": round(r.get("planned_s") or float("nan"), 1),
                            "actual_s": round(r.get("fit_time_s", float("nan")), 1),
                            "val_f1": round(r.get("val_f1", float("nan")), 3),
                            "ext_f1": round(r.get("ext_f1", float("nan")), 3),
                        }
                    )
                print(runs[-1], flush=True)
    _write(runs, rows, args.name)


def _write(runs, rows, name="bench_budget"):
    # one set of columns for every line (the folder runs have a second external set)
    for table in (runs, rows):
        keys = list(dict.fromkeys(k for r in table for k in r))
        for r in table:
            for k in keys:
                r.setdefault(k, "")
            r.update({k: r.pop(k) for k in keys})
    write_results(
        name,
        runs,
        notes="wall_s: the whole run_comparison call (data, calibration, rows, "
        "robustness, ensemble, report). Best F1s over the rows that ran.",
    )
    write_results(
        f"{name}_rows",
        rows,
        notes="planned_s: the estimate of the plan made just before the row ran "
        "(calibration x the pace so far); actual_s: its search and refit.",
    )


if __name__ == "__main__":
    main()
