"""What a comparison says while it runs: its start, its plan, the rows that
cannot run here."""

from __future__ import annotations

import sys
import time

from ..pretrained import hub_checkpoint_dir

__all__ = ["Clock", "say", "say_not_available", "say_plan", "say_start"]


class Clock:
    """Elapsed time and an estimate of what is left (the plan of each row
    still to run)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.left = {}  # row -> its planned seconds
        self.lanes = 1  # rows side by side

    def elapsed(self):
        return time.perf_counter() - self.start

    def __str__(self):
        text = f"{self.elapsed():.0f}s elapsed"
        if self.left:
            text += f", about {sum(self.left.values()) / self.lanes:.0f}s left"
        return text


def say(msg):
    """The default progress: one line to stderr."""
    print(msg, file=sys.stderr, flush=True)


def say_start(progress, result, ext, names, done, budget, dask, folds):
    """The run in a few lines: data, sets, rows, folds, budget."""
    progress(
        f"skcnn compare: {result.data_description}\n"
        f"  train {result.n_train}, validation {result.n_val}, "
        + ", ".join(f"{s.name} {len(s.y)}" for s in ext)
        + f"; {len(names)} models, {folds} folds"
        + (f", budget {budget:.0f}s" if budget is not None else ", no time budget")
        + (f", {len(done)} rows from the stopped run" if done else "")
        + (f", searches on the Dask cluster {dask}" if dask else "")
        + "".join(f"\n  external set {s.label}: {s.description}" for s in ext)
        + "".join(
            f"\n  selection set {s['label']} ({s['name']}): {s['description']}"
            for s in result.selections
        )
    )


def say_plan(progress, result, plan, budget, replayed):
    """The plan of every row (kept in ``result.plan`` for the report)."""
    result.plan = {n: p.describe() for n, p in plan.rows.items()}
    result.plan["robustness"] = (
        f"{plan.robustness_n} images, ~{plan.robustness_s:.0f}s"
        if plan.robustness_n
        else "not run"
    )
    if not plan.rows and budget is None:
        return
    if replayed:
        head = "replayed plan"
    elif budget is None:
        head = "plan (no time budget: every row in full, no costs measured)"
    else:
        head = (
            f"plan (budget {budget:.0f}s, calibrated in {result.calibration_s:.1f}s; "
            f"estimate {plan.seconds:.0f}s)"
        )
    progress(
        f"{head}:\n"
        + "\n".join(f"  {n}: {p.describe()}" for n, p in plan.rows.items())
        + (
            f"\n  robustness profile: {result.robustness_n} validation images"
            + (f" (~{plan.robustness_s:.0f}s)" if plan.robustness_s else "")
            if result.robustness_n
            else "\n  robustness profile: not run"
        )
    )


def say_not_available(name, reason, progress):
    """Say why row ``name`` cannot run here, and what would let it."""
    hint = (
        f"; or place densenet121-a639ec97.pth in {hub_checkpoint_dir()}"
        if "DenseNet" in reason
        else ""
    )
    progress(f"{name}: {reason}{hint}")
