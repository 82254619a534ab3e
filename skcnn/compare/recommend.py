"""What a comparison recommends, chosen only from what a run may look at.

A row's *selection score* is its worst macro F1 over the evidence the run
may look at: the validation split, the mean of its shift profile (the
validation images under skcnn's controlled shifts, when computed) and each
selection set (populations given or built for choosing, such as digits drawn
by font faces the external set does not use). The external sets play no
part. The recommended model is the row with the highest selection score;
the verdict then shows how it did on each external set, and says plainly
when it was not the best there.

The worst case, not the mean: a model that holds on every population the
run can see is the one to expect to hold on the next (``bench_generalisation``
measured the rule: it chose a vote whose worst case over two report
populations was 0.802, against 0.588 for the LP-FT defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Evidence", "evidence", "recommended", "recommendation_lines"]


@dataclass(frozen=True)
class Evidence:
    """What the run may look at for one row: name of the evidence -> F1."""

    model: str
    parts: dict

    @property
    def score(self):
        return min(self.parts.values())

    def describe(self):
        parts = ", ".join(f"{k} {v:.3f}" for k, v in self.parts.items())
        if len(self.parts) == 1:
            return parts
        return f"the worst of {parts}: {self.score:.3f}"


def _profile_means(robustness):
    """model -> the mean F1 of its shift profile over every shifted kind and
    severity (severity 0, the unshifted images, left out)."""
    if not robustness:
        return {}
    scores = {}
    for model, sev, score in zip(
        robustness["model"], robustness["severity"], robustness["score"]
    ):
        if sev != 0:
            scores.setdefault(model, []).append(score)
    return {m: float(np.mean(v)) for m, v in scores.items()}


def evidence(rows, robustness=None, selection_names=None):
    """model -> :class:`Evidence` of each finished row in ``rows`` (rows read
    as their flat table mapping); ``robustness``: the run's shift profiles (a
    table of lists, or None); ``selection_names``: label -> name of each
    selection set."""
    shifted = _profile_means(robustness)
    out = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        parts = {"validation": r["val_f1"]}
        if r["model"] in shifted:
            parts["shifted validation"] = shifted[r["model"]]
        for label, name in (selection_names or {}).items():
            if r.get(f"{label}_f1") is not None:
                parts[f"{name} (selection)"] = r[f"{label}_f1"]
        out[r["model"]] = Evidence(r["model"], parts)
    return out


def recommended(found):
    """The :class:`Evidence` with the highest selection score (None if no
    row finished); ties go to the first in table order."""
    if not found:
        return None
    return max(found.values(), key=lambda e: e.score)


def _comparison(row, label, best):
    rank = row.get(f"{label}_rank", "")
    if rank in ("best", "tied best"):
        return "the best" if rank == "best" else "tied best"
    how = (
        "not significantly below"
        if rank == "not significantly worse"
        else "significantly below"
    )
    return f"**not the best**: {how} {best['model']} ({best[f'{label}_f1']:.3f})"


def recommendation_lines(result):
    """The verdict's lines on the recommended model."""
    rows = [r for r in result.rows if r.get("status") == "ok"]
    names = {s["label"]: s["name"] for s in result.selections}
    found = evidence(rows, result.robustness, names)
    pick = recommended(found)
    if pick is None:
        return []
    row = next(r for r in rows if r["model"] == pick.model)
    looked = "validation" + (", the shift profile" if result.robustness else "")
    if names:
        sets = "the selection sets " if len(names) > 1 else "the selection set "
        looked += ", " + sets + ", ".join(names.values())
    lines = [
        f"Recommended: **{pick.model}**, the highest selection score ({pick.describe()}),"
        f" chosen from what the run may look at ({looked}); the external sets played "
        "no part."
    ]
    for ext in result.externals:
        label = ext["label"]
        best = max(rows, key=lambda r: r[f"{label}_f1"])
        lo, hi = row[f"{label}_f1_ci"]
        lines.append(
            f"The recommendation on {ext['name']} ({label}): {row[f'{label}_f1']:.3f} "
            f"({lo:.3f}-{hi:.3f}), {_comparison(row, label, best)}."
        )
    return lines
