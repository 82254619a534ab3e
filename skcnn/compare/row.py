"""What one row of a comparison is: a frozen :class:`Row` value, and the one
function that scores predictions into it (plain rows, restored rows and the
ensemble alike)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from .data import chance_f1, is_external, is_selection
from .stats import PairedBootstrap, calibration_error

__all__ = ["Row", "SetScore", "Sets"]


@dataclass(frozen=True)
class SetScore:
    """A row's scores on one image set: macro F1, its 95% paired-bootstrap
    interval, accuracy, the calibration error (rows with probabilities) and
    its rank among the rows on that set ("best", "not significantly worse",
    "tied best" or "")."""

    f1: float
    f1_ci: tuple
    acc: float
    ece: float | None = None
    rank: str = ""


@dataclass(frozen=True)
class Row(Mapping):
    """One row of the table. ``scores`` maps a set's label ("val", "ext",
    "ext2", ..., and the selection sets "sel", "sel2", ...) to its
    :class:`SetScore`; ``trained`` says what the row got
    (epochs, folds, candidates) so that rows are compared with their budgets
    in view.

    A Row reads like the flat table row it prints as (``row["ext_f1"]``,
    ``row.get("val_ece")``, ``dict(row)``): the report and the CSV format it
    without knowing its fields."""

    model: str
    status: str = "ok"
    best_params: dict = field(default_factory=dict)
    cv_f1: float | None = None
    cv_f1_std: float | None = None
    scores: dict = field(default_factory=dict)
    notes: str = ""
    fit_time_s: float | None = None
    plan: str = ""
    planned_s: float | None = None
    trained: str = ""

    @property
    def ok(self):
        return self.status == "ok"

    def _flat(self):
        out = {"model": self.model, "status": self.status}
        if self.ok:
            out.update(best_params=self.best_params, cv_f1=self.cv_f1)
            out["cv_f1_std"] = self.cv_f1_std
        for label, s in self.scores.items():
            out[f"{label}_f1"] = s.f1
            out[f"{label}_f1_ci"] = s.f1_ci
            out[f"{label}_acc"] = s.acc
            if s.ece is not None:
                out[f"{label}_ece"] = s.ece
            if is_external(label):
                out[f"{label}_rank"] = s.rank
        externals = [s.f1 for label, s in self.scores.items() if is_external(label)]
        if len(externals) > 1:
            out["worst_ext_f1"] = min(externals)
        for key in ("notes", "fit_time_s", "plan", "planned_s", "trained"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        return out

    def __getitem__(self, key):
        return self._flat()[key]

    def __iter__(self):
        return iter(self._flat())

    def __len__(self):
        return len(self._flat())

    def with_rank(self, label, rank):
        """This row with its rank on the set ``label``."""
        scores = dict(self.scores)
        scores[label] = replace(scores[label], rank=rank)
        return replace(self, scores=scores)


@dataclass
class Sets:
    """The image sets every row is scored on: the validation split first,
    then the external sets, then the selection sets (each with ``label``,
    ``name`` and ``y``), with one paired bootstrap per set (the same
    resamples for every row)."""

    labels: list
    names: list
    ys: list
    boots: list = None

    @classmethod
    def of(cls, y_val, externals, random_state=0, selections=()):
        sets = [*externals, *selections]
        ys = [np.asarray(y_val), *(np.asarray(s.y) for s in sets)]
        return cls(
            ["val", *(s.label for s in sets)],
            ["val", *(s.name for s in sets)],
            ys,
            [PairedBootstrap(y, random_state=random_state) for y in ys],
        )

    @property
    def n_external(self):
        return sum(is_external(label) for label in self.labels)

    def row(self, model, preds, probs=None, classes=None, **fields):
        """The :class:`Row` of ``preds`` (one label array per set) and
        ``probs`` (one probability array per set, columns ``classes``, or
        None), with F1, interval, accuracy, calibration and the notes a
        reader must see (one class, chance level); ``fields``: the rest of
        the row (best_params, cv_f1, fit_time_s, plan, ...)."""
        scores, notes = {}, []
        for i, (label, y, pred, boot) in enumerate(
            zip(self.labels, self.ys, preds, self.boots)
        ):
            score = SetScore(
                f1=float(f1_score(y, pred, average="macro")),
                f1_ci=boot.interval(pred),
                acc=float(accuracy_score(y, pred)),
                ece=None if probs is None else calibration_error(y, probs[i], classes),
            )
            scores[label] = score
            if len(np.unique(pred)) == 1:
                notes.append(f"{label}: predicts one class")
            elif score.f1_ci[0] <= chance_f1(y) + 1e-9:
                notes.append(f"{label}: not above chance")
        return Row(model, scores=scores, notes="; ".join(notes), **fields)

    def line(self, row):
        """The progress line of a finished row's scores."""
        return "  ".join(
            f"{name}{' (selection)' if is_selection(label) else ''} F1 "
            f"{row.scores[label].f1:.3f}"
            for label, name in zip(self.labels, self.names)
        )
