"""What ``skcnn compare`` writes: the table (CSV and markdown), the figures and
``report.md``, a page a person reads, with a verdict computed from the numbers."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

__all__ = ["COLUMNS", "table_markdown", "verdict", "write_outputs", "write_table"]

COLUMNS = (
    "model",
    "status",
    "best_params",
    "cv_f1",
    "cv_f1_std",
    "val_f1",
    "val_f1_ci",
    "val_acc",
    "ext_f1",
    "ext_f1_ci",
    "ext_acc",
    "ext_rank",
    "fit_time_s",
)
GLOSSARY = (
    "cv_f1 / cv_f1_std: mean and std over the CV folds of the search (best candidate); "
    "val_*: the held-out validation split; ext_*: the external test set; *_ci: 95% "
    "paired-bootstrap interval; ext_rank: 'best' external F1, and the models whose "
    "paired difference from the best is not significant; fit_time_s: the whole search "
    "and refit. F1 is macro-averaged."
)


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, tuple):  # a confidence interval
        return f"{v[0]:.3f}-{v[1]:.3f}"
    if isinstance(v, float):
        return f"{v:.3f}" if not np.isnan(v) else ""
    if isinstance(v, dict):
        return ", ".join(f"{k.split('__')[-1]}={w}" for k, w in v.items())
    return str(v)


def _space(grid):
    if grid is None:
        return (
            "one fit on the training split, no search (no CV F1: cross-validating "
            "a fine-tuning costs minutes on a CPU)"
        )
    if not grid:
        return "defaults, no search"
    return "; ".join(f"{k.split('__')[-1]} in {list(v)}" for k, v in grid.items())


def table_markdown(rows):
    """The result rows as a Markdown table with the columns of ``COLUMNS``."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _ok(result):
    return [r for r in result.rows if r.get("status") == "ok"]


def robustness_summary(profile):
    """model -> {kind: mean score over the shifted severities}, plus "clean"."""
    out = {}
    for model, kind, sev, score in zip(
        profile["model"], profile["kind"], profile["severity"], profile["score"]
    ):
        entry = out.setdefault(model, {})
        if sev == 0:
            entry["clean"] = score
        else:
            entry.setdefault(kind, []).append(score)
    return {
        m: {k: (v if k == "clean" else float(np.mean(v))) for k, v in e.items()}
        for m, e in out.items()
    }


def verdict(result):
    """A few sentences computed from the numbers (no judgement typed in)."""
    ok = _ok(result)
    if not ok:
        return ["No model finished."]
    lines = []
    best = max(ok, key=lambda r: r["ext_f1"])
    lo, hi = best["ext_f1_ci"]
    tied = [r["model"] for r in ok if r.get("ext_rank") == "not significantly worse"]
    lines.append(
        f"Best on the external set: **{best['model']}**, macro F1 {best['ext_f1']:.3f} "
        f"(95% interval {lo:.3f}-{hi:.3f})."
    )
    if tied:
        lines.append(
            f"It is not significantly better than {', '.join(tied)} (paired bootstrap on "
            "the same external images): treat these as tied."
        )
    else:
        lines.append(
            "It is significantly better than every other model (paired bootstrap on "
            "the same external images)."
        )
    drops = sorted(ok, key=lambda r: r["val_f1"] - r["ext_f1"], reverse=True)
    worst = drops[0]
    lines.append(
        f"Largest validation-to-external drop: **{worst['model']}**, "
        f"{worst['val_f1']:.3f} -> {worst['ext_f1']:.3f}. Median drop over "
        f"{len(ok)} models: {np.median([r['val_f1'] - r['ext_f1'] for r in ok]):.3f}."
    )
    val_best = max(ok, key=lambda r: r["val_f1"])
    if val_best is not best:
        lines.append(
            f"The best validation F1 ({val_best['model']}, {val_best['val_f1']:.3f}) does "
            "not pick the best external model: validation scores from the same "
            "population overstate how a model transfers."
        )
    if result.robustness:
        summary = robustness_summary(result.robustness)
        means = {
            m: float(np.mean([v for k, v in e.items() if k != "clean"]))
            for m, e in summary.items()
        }
        robust = max(means, key=means.get)
        kinds = [k for k in next(iter(summary.values())) if k != "clean"]
        hardest = min(kinds, key=lambda k: np.mean([e[k] for e in summary.values()]))
        lines.append(
            f"Most robust to the controlled shifts: **{robust}** (mean F1 "
            f"{means[robust]:.3f} over all kinds and severities); the hardest shift "
            f"for the models on average: {hardest}."
        )
    return lines


def write_table(result, out):
    """results.csv and results.md with the rows finished so far."""
    out = Path(out)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in result.rows:
            writer.writerow(
                {
                    c: _fmt(r.get(c))
                    if c == "best_params" or c.endswith("_ci")
                    else r.get(c, "")
                    for c in COLUMNS
                }
            )
    (out / "results.md").write_text(
        f"# skcnn compare: {result.data}\n\n{_header(result)}\n\n"
        f"{table_markdown(result.rows)}\n\n## Search spaces\n\n{_spaces(result)}"
    )


def _header(result):
    not_run = "".join(
        f"\n\nNot run: {name} ({reason.removeprefix('skipped: ')})."
        for name, reason in result.not_run.items()
    )
    return (
        f"Data: {result.data_description}. Train {result.n_train}, validation "
        f"{result.n_val}, external {result.n_ext}; wall time {result.wall_time_s:.0f}s.\n\n"
        f"External set: {result.external}.\n\n{GLOSSARY}{not_run}"
    )


def _spaces(result):
    return "".join(
        f"- {name}: {_space(grid)}\n" for name, grid in result.searches.items()
    )


def write_report(result, out, figures):
    """report.md: verdict, table, figures, robustness, search spaces."""
    parts = [
        f"# skcnn compare: {result.data}",
        _header(result),
        "## Verdict",
        "\n".join(f"- {line}" for line in verdict(result)),
        "## Results",
        table_markdown(result.rows),
    ]
    if "f1_bars.png" in figures:
        parts += ["![validation vs external F1](f1_bars.png)"]
    if result.robustness:
        summary = robustness_summary(result.robustness)
        kinds = [k for k in next(iter(summary.values())) if k != "clean"]
        head = "| model | clean | " + " | ".join(kinds) + " |"
        rule = "|---" * (len(kinds) + 2) + "|"
        rows = [
            f"| {m} | {e['clean']:.3f} | "
            + " | ".join(f"{e[k]:.3f}" for k in kinds)
            + " |"
            for m, e in summary.items()
        ]
        parts += [
            "## Robustness profile",
            f"Macro F1 on {result.robustness_n} validation images under controlled "
            "shifts (skcnn.robustness.shift_profile), mean over severities "
            f"{sorted({s for s in result.robustness['severity'] if s})}; every value is "
            "in robustness.csv.",
            "\n".join([head, rule, *rows]),
        ]
        if "robustness.png" in figures:
            parts += ["![robustness profile](robustness.png)"]
    per_model = [f for f in figures if f.startswith(("confusion_", "learning_curves_"))]
    if per_model:
        parts += ["## Confusion matrices and learning curves"]
        parts += [f"![{f[:-4]}]({f})" for f in per_model]
    parts += ["## Search spaces", _spaces(result)]
    (Path(out) / "report.md").write_text("\n\n".join(parts) + "\n")


def write_outputs(result, out, y_val, y_ext, per_model_figures=True):
    """results.csv/.md, report.md, robustness.csv and the figures (the
    confusion matrices and learning curves of each model too, unless
    ``per_model_figures`` is False)."""
    from ..robustness import write_profile_csv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_table(result, out)
    if result.robustness:
        write_profile_csv(result.robustness, out / "robustness.csv")
    try:
        figures = _write_figures(result, out, y_val, y_ext, per_model_figures)
    except ImportError:
        print(
            "matplotlib not installed: no figures written (pip install 'skcnn[plot]').",
            file=sys.stderr,
        )
        figures = []
    write_report(result, out, figures)


def _write_figures(result, out, y_val, y_ext, per_model_figures):
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo"):
        matplotlib.use("Agg")  # files only; never open windows
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    from ..inspection import plot_learning_curves
    from ..robustness import plot_shift_profile

    written = []

    def save(fig, name):
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(name)

    ok = _ok(result)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(ok)), 4))
    x = np.arange(len(ok))
    for shift, key, label in ((-0.2, "val", "validation"), (0.2, "ext", "external")):
        f1 = np.array([r[f"{key}_f1"] for r in ok])
        ci = np.array([r[f"{key}_f1_ci"] for r in ok]).T
        # 95% paired-bootstrap intervals as error bars
        ax.bar(
            x + shift, f1, 0.4, label=label, yerr=[f1 - ci[0], ci[1] - f1], capsize=3
        )
    ax.set_xticks(x, [r["model"] for r in ok], rotation=30, ha="right")
    ax.set_ylabel("macro F1")
    ax.set_ylim(0, 1.15)
    ax.legend(loc="upper right", ncols=2)
    ax.set_title(f"{result.data}: validation vs external F1 (95% bootstrap intervals)")
    fig.tight_layout()
    save(fig, "f1_bars.png")
    if result.robustness:
        fig = plot_shift_profile(
            result.robustness,
            ylabel="macro F1",
            title=f"{result.data}: F1 under controlled shifts of the validation images",
        )
        save(fig, "robustness.png")
    for name, (pred_val, pred_ext) in result.predictions.items():
        if not per_model_figures:
            break
        safe = name.replace("+", "_")
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
        for ax, y, pred, title in (
            (axes[0], y_val, pred_val, "validation split"),
            (axes[1], y_ext, pred_ext, "external set"),
        ):
            ConfusionMatrixDisplay.from_predictions(y, pred, ax=ax, colorbar=False)
            ax.set_title(title)
        fig.suptitle(f"{name}: confusion matrices")
        fig.tight_layout()
        save(fig, f"confusion_{safe}.png")
        est = result.fitted[name]
        if hasattr(est, "history_"):
            fig = plot_learning_curves(est, title=f"{name}: learning curves (refit)")
            save(fig, f"learning_curves_{safe}.png")
    return written
