"""The ensemble row: greedy ensemble selection (Caruana et al., ICML 2004, as
auto-sklearn and AutoGluon use it) over the rows' validation probabilities,
with members from at least two families.

One rule that every row with probabilities has, whatever the plan gave it
(with or without a CV score): rows are added, with replacement, one at a
time, each time the one that lowers the vote's validation log-loss the most,
for :data:`ROUNDS` rounds; the weights are how often each was added. When all
chosen rows are of one family, the row of another family that helps the vote
most is added once. The external sets are never looked at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import log_loss

from .fit import Fitted

__all__ = ["ROUNDS", "Selection", "select_members", "vote"]

ROUNDS = 10


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


def _loss(y, p, classes):
    p = np.clip(p, 1e-7, 1.0)
    return log_loss(y, p / p.sum(1, keepdims=True), labels=classes)


def select_members(val_probs, families, y_val, classes, rounds=ROUNDS):
    """Greedy selection on the validation probabilities ``val_probs`` (name
    -> array); ``families``: name -> family. None when fewer than two
    families have probabilities."""
    names = list(val_probs)
    if len({families[n] for n in names}) < 2:
        return None
    counts = dict.fromkeys(names, 0)
    total = np.zeros_like(next(iter(val_probs.values())), dtype=float)

    def best_addition(pool):
        k = sum(counts.values())
        return min(
            pool, key=lambda n: _loss(y_val, (total + val_probs[n]) / (k + 1), classes)
        )

    for _ in range(rounds):
        name = best_addition(names)
        counts[name] += 1
        total += val_probs[name]
    chosen = {families[n] for n, c in counts.items() if c}
    if len(chosen) < 2:
        name = best_addition([n for n in names if families[n] not in chosen])
        counts[name] += 1
        total += val_probs[name]
    k = sum(counts.values())
    members = tuple(n for n in names if counts[n])
    return Selection(members, tuple(counts[n] / k for n in members))


def vote(selection, probabilities):
    """The weighted mean of the members' probabilities, per set."""
    per_set = zip(*(probabilities[m] for m in selection.members))
    return tuple(sum(w * p for w, p in zip(selection.weights, ps)) for ps in per_set)


def ensemble_row(rows, probabilities, fitted, families, sets, classes):
    """(:class:`~skcnn.compare.fit.Fitted`, Selection) of the ensemble of
    ``rows`` (the finished rows), or None when no two families have
    probabilities. ``probabilities``: name -> one array per set. The
    Fitted's model is the unfitted vote of the frozen members (None when a
    member's model is not at hand, as for a row restored by a resume)."""
    from sklearn.ensemble import VotingClassifier
    from sklearn.frozen import FrozenEstimator

    t0 = time.perf_counter()
    pool = {
        r.model: probabilities[r.model][0]
        for r in rows
        if r.ok and r.model in probabilities and r.model in families
    }
    selection = select_members(pool, families, sets.ys[0], classes)
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
        plan="greedy selection on validation log-loss",
    )
    model = None
    if all(m in fitted for m in selection.members):
        model = VotingClassifier(
            [(m, FrozenEstimator(fitted[m])) for m in selection.members],
            voting="soft",
            weights=list(selection.weights),
        )
    return Fitted(row, model, preds, probs, None), selection
