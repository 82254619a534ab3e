"""What ``skcnn compare`` writes: the table (CSV and markdown), the figures and
``report.md``, a page a person reads, with a verdict computed from the numbers."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from .._files import atomic_write
from .data import _short
from .recommend import recommendation_lines
from .state import save_state
from .stats import ranked

__all__ = [
    "COLUMNS",
    "rebuild_code",
    "table_columns",
    "table_markdown",
    "verdict",
    "write_outputs",
    "write_table",
    "writer",
]

COLUMNS = (
    "model",
    "status",
    "best_params",
    "cv_f1",
    "cv_f1_std",
    "val_f1",
    "val_f1_ci",
    "val_acc",
    "val_ece",
    "ext_f1",
    "ext_f1_ci",
    "ext_acc",
    "ext_ece",
    "ext_rank",
    "trained",
    "fit_time_s",
)
GLOSSARY = (
    "cv_f1 / cv_f1_std: mean and std over the CV folds of the search (best candidate; "
    "network rows racing by epochs: the score it won the race with, at the last rung's "
    "epochs, half of its own when 2 race); "
    "val_*: the held-out validation split; ext_*, ext2_*, ...: the external test sets; "
    "*_ci: 95% paired-bootstrap interval; *_ece: expected calibration error of the "
    "predicted class's probability (15 confidence bins; 0 = confidences mean what "
    "they say; rows with probabilities only); ext_rank: 'best' external F1 ('tied best' "
    "when rows share it), and the models whose paired difference from the best is not "
    "significant; sel_*, sel2_*, ...: the selection sets, populations the run may look "
    "at to choose the recommended model and the vote's members (never the external "
    "sets); trained: what the plan gave the row (candidates x folds, epochs); worst_ext_f1: the lowest "
    "F1 over the external sets; fit_time_s: the whole search and refit; notes: a set on "
    "which the model predicts one class, or whose F1 interval reaches the chance level "
    "(1 / classes: the macro F1 of guessing at random in the class proportions). F1 is "
    "macro-averaged."
)


def _write_text(path, text):
    """A text file written whole or not at all (a run killed while writing
    keeps the previous version)."""
    atomic_write(path, lambda f: f.write(text), what="report file", mode="w")


def table_columns(result):
    """The columns of ``result``'s table: :data:`COLUMNS` with those of every
    further external set, the worst external F1, the selection sets' F1 and
    the notes."""
    labels = [e["label"] for e in result.externals[1:]]
    extra = [
        f"{lab}_{c}" for lab in labels for c in ("f1", "f1_ci", "acc", "ece", "rank")
    ]
    if labels:
        extra.append("worst_ext_f1")
    extra += [f"{s['label']}_{c}" for s in result.selections for c in ("f1", "f1_ci")]
    cut = COLUMNS.index("trained")
    return COLUMNS[:cut] + tuple(extra) + COLUMNS[cut:] + ("notes",)


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
        return "one fit, no search (no CV F1)"
    if not grid:
        return "defaults, no search"
    return "; ".join(f"{k.split('__')[-1]} in {list(v)}" for k, v in grid.items())


def table_markdown(rows, columns=COLUMNS):
    """The result rows as a Markdown table with ``columns``."""
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
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


def _set_verdict(ok, ext, flattered=None):
    """The verdict lines of one external set (``flattered``: model -> the
    shifts it trains with, when the set is skcnn's own shifted copy)."""
    label, name = ext["label"], ext["name"]
    best = max(ok, key=lambda r: r[f"{label}_f1"])
    lo, hi = best[f"{label}_f1_ci"]
    tops = [r["model"] for r in ok if r.get(f"{label}_rank") == "tied best"]
    tied = [
        r["model"] for r in ok if r.get(f"{label}_rank") == "not significantly worse"
    ]
    caveat = ""
    if flattered is not None:
        caveat = (
            " (a set made by skcnn's own shifts of the validation split, not another "
            "population"
            + (
                f"; {best['model']} trains with {', '.join(flattered[best['model']])}, "
                "shifts that made it: its score here is flattered"
                if best["model"] in flattered
                else ""
            )
            + ")"
        )
    who = (
        f"a tie between **{'**, **'.join(tops)}**"
        if len(tops) > 1
        else f"**{best['model']}**"
    )
    lines = [
        f"Best on the external set {name} ({label}){caveat}: {who}, macro F1 "
        f"{best[f'{label}_f1']:.3f} (95% interval {lo:.3f}-{hi:.3f}; chance "
        f"{ext['chance_f1']:.3f})."
    ]
    if tied:
        lines.append(
            f"On {name} it is not significantly better than {', '.join(tied)} (paired "
            "bootstrap on the same external images): treat these as tied."
        )
    elif len(tops) <= 1 and len(ok) > 1:
        lines.append(
            f"On {name} it is significantly better than every other model (paired "
            "bootstrap on the same external images)."
        )
    return lines


def _budget_lines(result, ok):
    """A line per family whose rows trained with different budgets (their
    differences may be the plan's, not the models')."""
    lines = []
    for family in ("classic", "networks", "transfer"):
        rows = [r for r in ok if result.families.get(r["model"]) == family]
        got = {r["model"]: r.get("trained", "") for r in rows}
        if len(set(got.values())) > 1:
            lines.append(
                f"The {family} rows trained with different budgets ("
                + "; ".join(f"{m}: {t}" for m, t in got.items())
                + "): part of their differences is the plan's, not the models'."
            )
    return lines


def verdict(result):
    """A few sentences computed from the numbers (no judgement typed in)."""
    ok = _ok(result)
    if not ok:
        return ["No model finished."]
    externals = result.externals or [
        {"label": "ext", "name": "external", "chance_f1": float("nan")}
    ]
    lines = []
    if not result.finished:
        lines.append(
            "This report is partial: "
            + (
                f"{len(result.to_run)} row(s) still to run ({', '.join(result.to_run)}); "
                if result.to_run
                else ""
            )
            + "'best' below means best among the rows so far."
        )
    lines += recommendation_lines(result)
    for ext in externals:
        shifted = ext["name"] == "shifted validation"
        lines += _set_verdict(ok, ext, result.flattered if shifted else None)
    if len(externals) > 1:
        robust = max(ok, key=lambda r: r["worst_ext_f1"])
        lines.append(
            f"Most robust across the {len(externals)} external sets: **{robust['model']}** "
            f"(best worst-case F1, {robust['worst_ext_f1']:.3f})."
        )
    drops = sorted(ok, key=lambda r: r["val_f1"] - r["ext_f1"], reverse=True)
    worst = drops[0]
    lines.append(
        f"Largest validation-to-external drop: **{worst['model']}**, "
        f"{worst['val_f1']:.3f} -> {worst['ext_f1']:.3f}. Median drop over "
        f"{len(ok)} models: {np.median([r['val_f1'] - r['ext_f1'] for r in ok]):.3f}."
    )
    best = max(ok, key=lambda r: r["ext_f1"])
    val_best = max(ok, key=lambda r: r["val_f1"])
    if val_best is not best:
        lines.append(
            f"The best validation F1 ({val_best['model']}, {val_best['val_f1']:.3f}) does "
            "not pick the best external model: validation scores from the same "
            "population overstate how a model transfers."
        )
    lines += _budget_lines(result, ok)
    flagged = [r["model"] for r in ok if r.get("notes")]
    if flagged:
        lines.append(
            f"Look at the notes column for {', '.join(flagged)}: a model that predicts one "
            "class, or scores at chance, on a set has learnt nothing that carries to it."
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
    columns = table_columns(result)

    def write_csv(f):
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in result.rows:
            writer.writerow(
                {
                    c: _fmt(r.get(c))
                    if c == "best_params" or c.endswith("_ci")
                    else r.get(c, "")
                    for c in columns
                }
            )

    atomic_write(out / "results.csv", write_csv, what="results table", mode="w")
    _write_text(
        out / "results.md",
        f"# skcnn compare: {result.data}\n\n{_header(result)}\n\n"
        f"{table_markdown(result.rows, columns)}\n\n## Search spaces\n\n{_spaces(result)}",
    )


def _header(result):
    not_run = "".join(
        f"\n\nNot run: {name} ({reason.removeprefix('skipped: ')})."
        for name, reason in result.not_run.items()
    )
    state = "" if result.finished else " (partial: the run stopped or is still running)"
    if not result.finished and result.to_run:
        not_run += f"\n\nStill to run: {', '.join(result.to_run)}."
    externals = (
        "".join(
            f"\n\nExternal set {e['label']} ({e['name']}): {e['description']}; "
            f"{e['summary']}; chance F1 {e['chance_f1']:.3f}."
            for e in result.externals
        )
        or f"\n\nExternal set: {result.external}."
    )
    externals += "".join(
        f"\n\nSelection set {e['label']} ({e['name']}): {e['description']}; "
        f"{e['summary']}; chance F1 {e['chance_f1']:.3f}."
        for e in result.selections
    )
    budget = (
        f"budget {result.budget:.0f}s"
        if result.budget is not None
        else "no time budget"
    )
    return (
        f"Data: {result.data_description}; {result.data_summary}. Train {result.n_train}, "
        f"validation {result.n_val} (chance F1 {result.val_chance_f1:.3f}); {budget}; "
        f"wall time {result.wall_time_s:.0f}s{state}.{externals}\n\n{GLOSSARY}{not_run}"
    )


def _spaces(result):
    """Each row's search space and, once, its reason to be in the table."""
    return "".join(
        f"- {name}: {_space(grid)}"
        + (f" ({result.reasons[name]})" if result.reasons.get(name) else "")
        + "\n"
        for name, grid in result.searches.items()
    ) + (
        "\nA row the plan cut to one fit is fitted with its grid's first candidate."
        if any(g is None for g in result.searches.values())
        else ""
    )


def _plan_table(result):
    rows = [
        f"| {r['model']} | {result.plan.get(r['model'], '')} | {r.get('plan', '')} | "
        f"{_fmt(r.get('fit_time_s'))} |"
        for r in result.rows
        if r.get("plan") or r["model"] in result.plan
    ]
    if not rows:
        return []
    if result.budget is None:
        how = (
            "Budget: none. Every row ran its full configuration; no costs were "
            "measured (a budget is what a calibration plans for)."
        )
    else:
        how = (
            f"Budget: {result.budget:.0f}s. Each row's cost was measured on the "
            f"training images (a short fit on a subsample, {result.calibration_s:.1f}s "
            "in all) and the rows were cut to fit: fewer folds, one candidate, no "
            "search, fewer epochs, or not run. Each row was planned again before it "
            "ran, with the time left and the pace so far."
        )
    return [
        "## Plan",
        how,
        "| model | first plan | as run | seconds |\n|---|---|---|---|\n"
        + "\n".join(rows),
    ]


def _public_module(cls):
    """Where ``cls`` is imported from: the shortest public module path that
    holds it (modules already imported: a class's parents always are)."""
    parts = cls.__module__.split(".")
    for i in range(1, len(parts) + 1):
        if any(p.startswith("_") for p in parts[1:i]):
            break
        module = ".".join(parts[:i])
        if getattr(sys.modules.get(module), cls.__name__, None) is cls:
            return module
    return cls.__module__


def _classes(obj, found):
    from sklearn.base import BaseEstimator

    if isinstance(obj, BaseEstimator):
        found.add(type(obj))
        for v in obj.get_params(deep=False).values():
            _classes(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _classes(v, found)
    return found


def rebuild_code(estimator):
    """Python that rebuilds ``estimator`` unfitted: imports and one
    constructor call (scikit-learn's repr of the changed parameters)."""
    import sklearn
    from sklearn.base import clone

    est = clone(estimator)
    imports = sorted(
        f"from {_public_module(c)} import {c.__name__}" for c in _classes(est, set())
    )
    with sklearn.config_context(print_changed_only=True):
        body = est.__repr__(N_CHAR_MAX=100_000)
    return "\n".join(imports) + f"\n\nmodel = {body}\nmodel.fit(X_train, y_train)"


def _ensemble_code(result):
    from sklearn.base import clone
    from sklearn.ensemble import VotingClassifier

    members = result.ensemble["members"]
    if not all(m in result.recipes for m in members):
        return None
    vote = VotingClassifier(
        [
            (m.replace("+", "_").replace("-", "_"), clone(result.recipes[m]))
            for m in members
        ],
        voting="soft",
        weights=[round(w, 4) for w in result.ensemble["weights"]],
    )
    return rebuild_code(vote)


def _export_advice(estimator):
    """How to export a fitted row (one sentence)."""
    from sklearn.pipeline import Pipeline

    if hasattr(estimator, "to_onnx"):
        return (
            "`model.to_onnx('model.onnx')` (skcnn's exporter; onnxruntime runs it). The "
            "graph takes the pixels as the model was fitted on them (uint8 0-255 here); "
            "for float32 images in [0, 1] export with `input_dtype='float32'`."
        )
    if isinstance(estimator, Pipeline):
        nets = [n for n, s in estimator.steps if hasattr(s, "to_onnx")]
        if nets:
            return (
                f"`model.named_steps['{nets[0]}'].to_onnx('features.onnx')` exports its "
                "network step; the scikit-learn steps after it convert with skl2onnx "
                "(`pip install skl2onnx`), or save the whole Pipeline with "
                "`skcnn.save(model, 'model.skcnn')`."
            )
    return (
        "a scikit-learn model: `skcnn.save(model, 'model.skcnn')` (a safe file), or "
        "skl2onnx for ONNX."
    )


def _rebuild_section(result):
    ok = sorted(_ok(result), key=lambda r: -r["ext_f1"])
    parts = []
    for r in ok:
        name = r["model"]
        if name == "ensemble":
            code = _ensemble_code(result)
        else:
            code = (
                rebuild_code(result.recipes[name]) if name in result.recipes else None
            )
        if code is None:
            continue
        export = (
            _export_advice(result.recipes[name])
            if name in result.recipes
            else "each member as its own row says."
        )
        parts.append(f"### {name}\n\n```python\n{code}\n```\n\nExport: {export}")
    if not parts:
        return []
    data = _data_code(result.args)
    return [
        "## Rebuild a model",
        "Each fitted row as Python (the best on the external set first): the "
        "parameters its search chose, fitted on the training split as the table's "
        "model was.",
        *(
            [
                "The run's images and split (files and folders by name: give your "
                f"paths):\n\n```python\n{data}\n```"
            ]
            if data
            else []
        ),
        *parts,
    ]


def _data_code(args):
    """Python that loads the run's training / validation split and external
    sets as the run did (None without the run's arguments); files and
    folders by name, as the report shows them."""
    if not args:
        return None
    # _short keeps "digits", "shifted", ... as they are
    externals = [_short(e) for e in args.get("external") or []] or None
    return (
        "from skcnn.compare import load_run_data\n\n"
        "X_train, y_train, X_val, y_val, externals = load_run_data(\n"
        f"    {_short(args['data'])!r},\n"
        f"    {externals!r},\n"
        f"    image_size={args.get('image_size')!r},\n"
        f"    random_state={args.get('random_state')!r},\n"
        ")\n"
        "X_ext, y_ext = externals[0].X, externals[0].y"
    )


def write_report(result, out, figures, per_class=(), ys=None):
    """report.md: verdict, table, plan, figures, robustness, rebuild code."""
    parts = [
        f"# skcnn compare: {result.data}",
        _header(result),
        "## Verdict",
        "\n".join(f"- {line}" for line in verdict(result)),
        "## Results",
        table_markdown(result.rows, table_columns(result)),
    ]
    if result.ensemble:
        members = ", ".join(
            f"{m} ({w:.0%})"
            for m, w in zip(result.ensemble["members"], result.ensemble["weights"])
        )
        parts += [
            "The ensemble row is an equal-weight soft vote of the rows as fitted: "
            f"{members}. The candidates were the best row of each family by selection "
            "score (the worst F1 over validation, the shift profile and the selection "
            "sets); each joined, best first, when the vote with it did at least as well "
            "on the validation split and the selection sets. The external sets played "
            "no part; its validation and selection scores are optimistic (the members "
            "were chosen on them), and it has no CV F1."
        ]
    if "f1_bars.png" in figures:
        parts += ["![validation vs external F1](f1_bars.png)"]
    parts += _plan_table(result)
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
    parts += _per_class_section(result, per_class)
    if ys is not None:
        parts += _coverage_section(result, ys)
        if "calibration.png" in figures:
            parts += ["![reliability diagrams](calibration.png)"]
    mistakes = [f for f in figures if f.startswith("mistakes_")]
    if mistakes:
        parts += [
            "## The most confidently wrong images",
            "Per set, for the best row of each family (by validation F1), the images "
            "it got wrong with the highest probability: true -> predicted, and the "
            "probability it gave its prediction.",
        ]
        parts += [f"![{f[:-4]}]({f})" for f in mistakes]
    per_model = [f for f in figures if f.startswith(("confusion_", "learning_curves_"))]
    if per_model:
        parts += ["## Confusion matrices and learning curves"]
        parts += [f"![{f[:-4]}]({f})" for f in per_model]
    parts += ["## Search spaces", _spaces(result)]
    parts += _rebuild_section(result)
    _write_text(Path(out) / "report.md", "\n\n".join(parts) + "\n")


def write_outputs(
    result,
    out,
    y_val,
    y_ext,
    per_model_figures=True,
    summary_figures=True,
    images=None,
):
    """results.csv/.md, per_class.csv, report.md, robustness.csv and the
    figures (the confusion matrices and learning curves of each model too,
    unless ``per_model_figures`` is False). ``y_ext``: the labels of the
    external set, or a list of them (one per set); ``images``: the
    validation images and each external set's, for the figures of the most
    confidently wrong images (None: none drawn)."""
    from ..robustness import write_profile_csv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    y_exts = [y_ext] if isinstance(y_ext, np.ndarray) else list(y_ext)
    write_table(result, out)
    per_class = per_class_scores(result, [y_val, *y_exts])
    _write_text(out / "per_class.csv", _csv_text(per_class))
    if result.robustness:
        write_profile_csv(result.robustness, out / "robustness.csv")
    try:
        figures = _write_figures(
            result, out, y_val, y_exts, per_model_figures, summary_figures
        )
        if summary_figures and images is not None:
            figures += _mistake_figures(result, out, [y_val, *y_exts], images)
        if summary_figures:
            figures += _calibration_figure(
                result,
                out,
                [y_val, *y_exts],
                lambda fig, name: _save_png(fig, out / name),
            )
    except ImportError:
        print(
            "matplotlib not installed: no figures written (pip install 'skcnn[plot]').",
            file=sys.stderr,
        )
        figures = []
    write_report(result, out, figures, per_class, [y_val, *y_exts])


def _sets(result):
    """(column label, name) of the validation split and each external set."""
    return [("val", "validation")] + [
        (e["label"], e["name"]) for e in result.externals or []
    ]


def featured(result):
    """The best row of each family (classic, networks, transfer, ensemble) by
    validation F1: what the run may choose by without looking at the
    external sets. [(family, row)], in that order."""
    ok = _ok(result)
    families = {"classic": "classic", "network": "networks", "transfer": "transfer"}
    out = []
    for family, group in families.items():
        rows = [r for r in ok if result.families.get(r["model"]) == group]
        if rows:
            out.append((family, max(rows, key=lambda r: r["val_f1"])))
    rows = [r for r in ok if r["model"] == "ensemble"]
    return out + [("ensemble", rows[0])] if rows else out


def per_class_scores(result, ys):
    """Precision, recall, F1 and support per class, per row and set: a list
    of dicts (model, set, class, precision, recall, f1, support)."""
    from sklearn.metrics import precision_recall_fscore_support

    rows = []
    sets = _sets(result)
    for r in _ok(result):
        preds = result.predictions.get(r["model"])
        if preds is None:
            continue
        for (label, _), y, pred in zip(sets, ys, preds):
            classes = np.unique(y)
            p, rec, f1, n = precision_recall_fscore_support(
                y, pred, labels=classes, zero_division=0
            )
            rows += [
                {
                    "model": r["model"],
                    "set": label,
                    "class": c,
                    "precision": float(p[i]),
                    "recall": float(rec[i]),
                    "f1": float(f1[i]),
                    "support": int(n[i]),
                }
                for i, c in enumerate(classes)
            ]
    return rows


def _csv_text(rows):
    import io

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()}
            )
    return buffer.getvalue()


def _per_class_section(result, per_class):
    """Per-class F1 of the best row of each family, one table per set."""
    chosen = [r["model"] for _, r in featured(result)]
    if not chosen or not per_class:
        return []
    f1 = {(e["model"], e["set"], str(e["class"])): e["f1"] for e in per_class}
    parts = [
        "## Per-class F1",
        "The best row of each family (by validation F1) per class; precision, "
        "recall and F1 of every row, class and set are in per_class.csv. A class "
        "far below the others is where a model's mistakes are.",
    ]
    for label, name in _sets(result):
        classes = list(
            dict.fromkeys(str(e["class"]) for e in per_class if e["set"] == label)
        )
        head = "| class | " + " | ".join(chosen) + " |"
        rule = "|---" * (len(chosen) + 1) + "|"
        lines = [
            f"| {c} | " + " | ".join(_fmt(f1.get((m, label, c))) for m in chosen) + " |"
            for c in classes
        ]
        parts += [f"**{name}** ({label})", "\n".join([head, rule, *lines])]
    return parts


# The shares of the most confident predictions the coverage table keeps.
COVERAGES = (1.0, 0.9, 0.8)


def _featured_with_probabilities(result, ys):
    """The models of :func:`featured` that have probabilities of their own,
    and the classes (the probabilities' columns)."""
    chosen = [r["model"] for _, r in featured(result) if "val_ece" in r]
    return chosen, np.unique(np.concatenate([np.asarray(y) for y in ys]))


def _coverage_section(result, ys):
    """F1 at 100/90/80% coverage by confidence, for the best row of each
    family that has probabilities, per set."""
    from .stats import selective_f1

    chosen, classes = _featured_with_probabilities(result, ys)
    if not chosen:
        return []
    sets = _sets(result)
    head = (
        "| model | "
        + " | ".join(f"{label} {int(c * 100)}%" for label, _ in sets for c in COVERAGES)
        + " |"
    )
    rule = "|---" * (1 + len(sets) * len(COVERAGES)) + "|"
    lines = []
    for model in chosen:
        p = result.probabilities[model]
        probas = [p[0], *p[1]]
        cells = [
            f"{selective_f1(y, proba, classes, c):.3f}"
            for y, proba in zip(ys, probas)
            for c in COVERAGES
        ]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return [
        "## Confidence you can act on",
        "Macro F1 on the share of each set's images a model is most confident about "
        '(100%: every image; 90%: the model answers "I don\'t know" on its least '
        "confident 10%), for the best row of each family with probabilities. A model "
        "whose F1 rises with less coverage knows when it is unsure; the reliability "
        "diagram (calibration.png) shows accuracy against confidence, and the *_ece "
        "columns sum its gaps.",
        "\n".join([head, rule, *lines]),
    ]


def _calibration_figure(result, out, ys, save_png):
    """calibration.png: reliability diagrams (accuracy against confidence) of
    the best row of each family with probabilities, one panel per set."""
    import matplotlib.pyplot as plt

    from .stats import calibration_error, reliability, selective_f1

    chosen, classes = _featured_with_probabilities(result, ys)
    if not chosen:
        return []
    sets = _sets(result)
    fig, axes = plt.subplots(2, len(sets), figsize=(4 * len(sets), 7.5), squeeze=False)
    coverages = np.linspace(1.0, 0.5, 11)
    for i, ((label, name), y) in enumerate(zip(sets, ys)):
        top, bottom = axes[0][i], axes[1][i]
        top.plot([0, 1], [0, 1], color="gray", lw=1, ls="--")
        for model in chosen:
            p = result.probabilities[model]
            proba = p[0] if i == 0 else p[1][i - 1]
            points = reliability(y, proba, classes)
            ece = calibration_error(y, proba, classes)
            top.plot(
                [c for c, _, _ in points],
                [a for _, a, _ in points],
                marker="o",
                label=f"{model} (ECE {ece:.3f})",
            )
            bottom.plot(
                100 * coverages,
                [selective_f1(y, proba, classes, c) for c in coverages],
                marker=".",
                label=model,
            )
        top.set_xlim(0, 1)
        top.set_ylim(0, 1.02)
        top.set_xlabel("confidence (probability of the prediction)")
        top.set_ylabel("accuracy")
        top.set_title(f"{name} ({label}): reliability", fontsize=9)
        top.legend(fontsize=7, loc="upper left")
        bottom.invert_xaxis()
        bottom.set_xlabel("% of images answered (the most confident)")
        bottom.set_ylabel("macro F1 on them")
        bottom.set_title(f"{name} ({label}): selective prediction", fontsize=9)
        bottom.legend(fontsize=7, loc="lower left")
    fig.suptitle(
        "Reliability (on the diagonal, confidences mean what they say) and what an "
        '"I don\'t know" below a confidence would buy',
        fontsize=9,
    )
    fig.tight_layout()
    save_png(fig, "calibration.png")
    return ["calibration.png"]


# Images per row in a figure of the most confidently wrong predictions.
N_MISTAKES = 8


def _saliency_maps(estimator, X):
    """Gradient saliency of the predicted class for a fitted skcnn network
    (None for other models, or a row restored without its model)."""
    if estimator is None or not hasattr(estimator, "net_") or not len(X):
        return None
    from ..inspection import saliency

    return saliency(estimator, X)


def _mistake_figures(result, out, ys, images):
    """One figure per set: for the best row of each family, the images it
    got wrong with the highest confidence (true -> predicted, probability;
    a row without probabilities shows its first mistakes), with the saliency
    of the prediction over the images of the network rows."""
    import matplotlib.pyplot as plt

    written = []
    chosen = featured(result)
    if not chosen or any(np.ndim(X) not in (3, 4) for X in images):
        return written  # 2-D images only (no volumes)
    for i, ((label, name), y, X) in enumerate(zip(_sets(result), ys, images)):
        fig, axes = plt.subplots(
            len(chosen),
            N_MISTAKES,
            figsize=(1.4 * N_MISTAKES, 1.7 * len(chosen) + 0.6),
            squeeze=False,
        )
        for (family, r), row in zip(chosen, axes):
            model = r["model"]
            pred = result.predictions[model][i]
            wrong = np.flatnonzero(pred != y)
            # its own probabilities only (an SVM's, calibrated for the
            # ensemble afterwards, are another model's)
            p = result.probabilities.get(model) if "val_ece" in r else None
            if p is None:  # no probabilities (an SVM): the first mistakes
                conf, worst = None, wrong[:N_MISTAKES]
            else:
                conf = (p[0] if i == 0 else p[1][i - 1]).max(1)
                worst = wrong[np.argsort(-conf[wrong], kind="stable")][:N_MISTAKES]
            for ax in row:
                ax.axis("off")
            maps = _saliency_maps(result.fitted.get(model), X[worst])
            for j, (ax, k) in enumerate(zip(row, worst)):
                img = X[k]
                # uint8 pixels as they are (not stretched per image: a dark
                # image must look dark)
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
                if maps is not None:  # where the network looked for its answer
                    ax.imshow(maps[j], cmap="inferno", alpha=0.45)
                sure = "" if conf is None else f"\n{conf[k]:.2f}"
                ax.set_title(f"{y[k]}->{pred[k]}{sure}", fontsize=8)
            row[0].text(
                -0.15,
                0.5,
                f"{model}\n({family})\n{len(wrong)} wrong",
                transform=row[0].transAxes,
                ha="right",
                va="center",
                fontsize=8,
            )
        fig.suptitle(
            f"{name}: the most confidently wrong images (true->predicted, "
            "probability of the prediction)",
            fontsize=9,
        )
        fig.tight_layout(rect=(0.08, 0, 1, 1))
        fname = f"mistakes_{label}.png"
        _save_png(fig, out / fname)
        written.append(fname)
    return written


def _save_png(fig, path):
    """Write ``fig`` to ``path`` whole or not at all, and close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), what="figure")
    plt.close(fig)


def _figure_name(kind, model):
    return f"{kind}_{model.replace('+', '_')}.png"


def _write_figures(result, out, y_val, y_exts, per_model_figures, summary_figures):
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo"):
        matplotlib.use("Agg")  # files only; never open windows
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    from ..inspection import plot_learning_curves
    from ..robustness import plot_shift_profile

    written = []

    def save(fig, name):
        _save_png(fig, out / name)
        written.append(name)

    ok = _ok(result)
    labels = [("val", "validation")] + [
        (e["label"], f"external: {e['name']}") for e in result.externals
    ] or [("val", "validation"), ("ext", "external")]
    if summary_figures and ok:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(ok) * len(labels) / 2), 4))
        x = np.arange(len(ok))
        width = 0.8 / len(labels)
        for i, (key, label) in enumerate(labels):
            f1 = np.array([r[f"{key}_f1"] for r in ok])
            ci = np.array([r[f"{key}_f1_ci"] for r in ok]).T
            # 95% paired-bootstrap intervals as error bars
            ax.bar(
                x + (i - (len(labels) - 1) / 2) * width,
                f1,
                width,
                label=label,
                yerr=[f1 - ci[0], ci[1] - f1],
                capsize=3,
            )
        ax.set_xticks(x, [r["model"] for r in ok], rotation=30, ha="right")
        ax.set_ylabel("macro F1")
        ax.set_ylim(0, 1.15)
        ax.legend(loc="upper right", ncols=len(labels))
        ax.set_title(
            f"{result.data}: validation vs external F1 (95% bootstrap intervals)"
        )
        fig.tight_layout()
        save(fig, "f1_bars.png")
        if result.robustness:
            fig = plot_shift_profile(
                result.robustness,
                ylabel="macro F1",
                title=f"{result.data}: F1 under controlled shifts of the validation images",
            )
            save(fig, "robustness.png")
    elif (out / "f1_bars.png").exists():
        written.append("f1_bars.png")
    if per_model_figures is True:
        per_model_figures = list(result.predictions)
    for name in per_model_figures or ():
        preds = result.predictions[name]
        fig, axes = plt.subplots(
            1, len(preds), figsize=(5 * len(preds), 4.5), squeeze=False
        )
        for ax, y, pred, (_, title) in zip(axes[0], [y_val, *y_exts], preds, labels):
            ConfusionMatrixDisplay.from_predictions(y, pred, ax=ax, colorbar=False)
            ax.set_title(title)
        fig.suptitle(f"{name}: confusion matrices")
        fig.tight_layout()
        save(fig, _figure_name("confusion", name))
        est = result.fitted.get(name)
        if getattr(est, "history_", None):
            fig = plot_learning_curves(est, title=f"{name}: learning curves (refit)")
            save(fig, _figure_name("learning_curves", name))
    for r in ok:  # figures of rows drawn earlier in this run (or a stopped one)
        for kind in ("confusion", "learning_curves"):
            f = _figure_name(kind, r["model"])
            if (
                f not in written
                and (out / f).exists()
                and per_model_figures is not False
            ):
                written.append(f)
    return written


def writer(result, out, args, clock, sets, images, quick):
    """A function that writes the table, report.md, the finished row's
    figures and the state of the run as they stand (a run stopped at any
    point leaves a report and can be resumed); ``name=None``: the end of the
    run, with the summary figures (``final=False``: a stop)."""
    # the figures and per-class tables: validation and the external sets
    y_val, y_ext = sets.ys[0], sets.ys[1 : 1 + sets.n_external]

    def write(name, final=True):
        result.wall_time_s = clock.elapsed() + result.resumed_s
        result.rows = ranked(result.rows, result.predictions, sets)
        if out is None or not result.rows:
            return
        if not final:
            write_outputs(result, out, y_val, y_ext, per_model_figures=[])
            return
        if quick:
            figures = False
        elif name is None:
            figures = [n for n in result.predictions if n == "ensemble"]
        else:
            figures = [name] if name in result.predictions else []
        write_outputs(
            result,
            out,
            y_val,
            y_ext,
            per_model_figures=figures,
            summary_figures=name is None,
            images=images,
        )
        save_state(out, args, result, result.wall_time_s)  # last: the report exists

    return write
