"""The shift profile of a comparison's rows (:func:`skcnn.robustness.shift_profile`'s
table): every row scored on the same shifted validation images, its
probabilities on them kept, so that the vote's profile is the vote of its
members' probabilities (no member predicts the shifted images twice: on
digits the vote's profile cost 8 s of the full run when it asked its
members again)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from ..robustness import PROFILE_COLUMNS, shifted_copies
from .ensemble import vote

__all__ = ["Profiles"]


class Profiles:
    """The profile table of the rows scored so far on ``images`` = (X, y),
    continuing ``table`` (the rows of a stopped run) when given."""

    def __init__(self, images, random_state, table=None):
        (self.X, self.y), self.random_state = images, random_state
        self.table = table if table is not None else {c: [] for c in PROFILE_COLUMNS}
        self.probabilities = {}  # model -> {(kind, severity): array}

    def _add(self, name, outputs):
        """``outputs(X_or_None, key)`` -> the labels of one (shifted) copy."""
        clean = None
        for kind, severity, magnitude, Xs in shifted_copies(
            self.X, random_state=self.random_state
        ):
            if Xs is None and clean is None:  # once: the same for every kind
                clean = f1_score(self.y, outputs(self.X, "clean"), average="macro")
            score = (
                clean
                if Xs is None
                else f1_score(self.y, outputs(Xs, (kind, severity)), average="macro")
            )
            row = dict(
                model=name,
                kind=kind,
                severity=severity,
                magnitude=magnitude,
                score=float(score),
            )
            for column, value in row.items():
                self.table[column].append(value)

    def add(self, name, model):
        """Row ``name``'s fitted ``model`` on every copy; its probabilities
        kept when it has them (labels: their argmax, as in the table)."""
        if not hasattr(model, "predict_proba"):
            self._add(name, lambda X, key: model.predict(X))
            return
        kept = self.probabilities[name] = {}

        def outputs(X, key):
            kept[key] = p = model.predict_proba(X)
            return model.classes_[p.argmax(1)]

        self._add(name, outputs)

    def merge(self, part):
        """The rows of another :class:`Profiles` of the same images (a row
        profiled in a lane) appended to this one."""
        for column, values in part.table.items():
            self.table[column].extend(values)
        self.probabilities.update(part.probabilities)

    def sort(self, order):
        """The table's rows in the order of the models in ``order`` (the
        table's order; others last), each model's rows as they were added:
        rows profiled in lanes finish in any order."""
        rank = {m: i for i, m in enumerate(order)}
        models = self.table["model"]
        index = sorted(range(len(models)), key=lambda i: rank.get(models[i], len(rank)))
        for values in self.table.values():
            values[:] = [values[i] for i in index]

    def can_vote(self, members):
        return all(m in self.probabilities for m in members)

    def add_vote(self, name, selection, classes):
        """The vote of rows already profiled (:meth:`can_vote`): the vote
        (:func:`~skcnn.compare.ensemble.vote`) of their kept probabilities
        on every copy."""
        classes = np.asarray(classes)

        def outputs(X, key):
            kept = {m: (self.probabilities[m][key],) for m in selection.members}
            (p,) = vote(selection, kept)
            return classes[p.argmax(1)]

        self._add(name, outputs)
