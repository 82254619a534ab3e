"""Helpers shared by the benchmarks: hardware description and result files."""

from __future__ import annotations

import csv
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def hardware():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {torch.get_num_threads()} torch threads"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc + f", torch {torch.__version__}"


def sync(device):
    """Wait for queued GPU work, so that wall-clock timings include it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def write_results(name, rows, notes=""):
    """Write rows (list of dicts) to results/<name>.csv and .md; print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0])
    with open(RESULTS / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    table = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    table += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    text = (
        f"# {name}\n\nHardware: {hardware()}\n\nDate: {time.strftime('%Y-%m-%d')}\n\n"
        + "\n".join(table)
        + (f"\n\n{notes}\n" if notes else "\n")
    )
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
