"""The ensemble row: a soft vote across families, its members chosen from
what the run may look at (:mod:`skcnn.compare.recommend`).

The candidates are the best row of each family (classic, networks,
transfer) by selection score, among the rows with probabilities. The vote
starts from the best of them; each next one joins, in order of score, when
the equal-weight vote with it does at least as well on the validation split
and the selection sets (the worst F1 over them) as without it. The
external sets are never looked at.

Why not greedy selection on validation log-loss (Caruana et al. 2004, what
0.3 did): on digits it put 91% of the weight on the best-calibrated network
and its vote did no better than that row on other populations; a vote of
models of different families does (``benchmarks/bench_generalisation.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from .data import is_selection
from .fit import Fitted
from .recommend import evidence

__all__ = ["Selection", "select_members", "vote"]


@dataclass(frozen=True)
class Selection:
    """The members of the vote and their weights (summing to 1)."""

    members: tuple
    weights: tuple

    def describe(self):
        return " + ".join(
            f"{m} ({w:.0%})" if len(self.members) > 1 else m
            for m, w in zip(self.members, self.weights)
        )


def _worst_f1(members, probabilities, sets, classes):
    """The worst macro F1 of the equal-weight vote of ``members`` over the
    validation split and the selection sets."""
    worst = 1.0
    for i, (label, y) in enumerate(zip(sets.labels, sets.ys)):
        if label == "val" or is_selection(label):
            p = np.mean([probabilities[m][i] for m in members], axis=0)
            worst = min(worst, f1_score(y, classes[p.argmax(1)], average="macro"))
    return worst


def select_members(found, families, probabilities, sets, classes):
    """The :class:`Selection` of the vote (see the module docstring), or
    None when no second family's row joins. ``found``: model -> Evidence of
    the rows with probabilities; ``probabilities``: model -> one array per
    set of ``sets``."""
    bests = {}
    for name, ev in found.items():
        family = families[name]
        if family not in bests or ev.score > bests[family].score:
            bests[family] = ev
    order = [e.model for e in sorted(bests.values(), key=lambda e: -e.score)]
    if len(order) < 2:
        return None
    members = [order[0]]
    score = _worst_f1(members, probabilities, sets, classes)
    for name in order[1:]:
        trial = _worst_f1([*members, name], probabilities, sets, classes)
        if trial >= score:
            members, score = [*members, name], trial
    if len(members) < 2:
        return None
    return Selection(tuple(members), tuple(1 / len(members) for _ in members))


def vote(selection, probabilities):
    """The weighted mean of the members' probabilities, per set."""
    per_set = zip(*(probabilities[m] for m in selection.members))
    return tuple(sum(w * p for w, p in zip(selection.weights, ps)) for ps in per_set)


def ensemble_row(result, probabilities, sets, classes):
    """(:class:`~skcnn.compare.fit.Fitted`, Selection) of the vote of
    ``result``'s finished rows, or None when no two families' rows make one.
    ``probabilities``: name -> one array per set. The Fitted's model is the
    unfitted vote of the frozen members (None when a member's model is not
    at hand, as for a row restored by a resume)."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.frozen import FrozenEstimator

    t0 = time.perf_counter()
    rows = [
        r
        for r in result.rows
        if r.ok and r.model in probabilities and r.model in result.families
    ]
    names = {s["label"]: s["name"] for s in result.selections}
    found = evidence(rows, result.robustness, names)
    selection = select_members(found, result.families, probabilities, sets, classes)
    if selection is None:
        return None
    probs = vote(selection, probabilities)
    preds = tuple(classes[p.argmax(1)] for p in probs)
    row = sets.row(
        "ensemble",
        preds,
        probs,
        classes,
        best_params={"members": selection.describe()},
        fit_time_s=time.perf_counter() - t0,
        plan="a vote of the best row of each family (selection score)",
    )
    model = None
    if all(m in result.fitted for m in selection.members):
        model = VotingClassifier(
            [(m, FrozenEstimator(result.fitted[m])) for m in selection.members],
            voting="soft",
            weights=list(selection.weights),
        )
    return Fitted(row, model, preds, probs, None), selection
