"""What a comparison collects: :class:`ComparisonResult`, its rows in table
order, the fitted models, their predictions and how each was made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import _short, chance_f1, describe_data, summarize_images
from .ensemble import ensemble_row
from .plan import checked_plan, plan_record
from .profile import Profiles

__all__ = ["ComparisonResult"]


@dataclass
class ComparisonResult:
    """What a comparison collected: its rows (:class:`~skcnn.compare.row.Row`
    values in table order), the fitted models, their predictions and
    probabilities per set, the plan and the descriptions the report prints."""

    rows: list
    data: str
    n_train: int
    n_val: int
    n_ext: int
    wall_time_s: float
    fitted: dict = field(default_factory=dict)
    # model -> (validation predictions, external predictions, more external sets')
    predictions: dict = field(default_factory=dict)
    external: str = ""
    searches: dict = field(default_factory=dict)  # model -> its search space
    data_description: str = ""
    robustness: dict = None  # the shift_profile table, when computed
    robustness_n: int = 0  # validation images it was computed on
    not_run: dict = field(default_factory=dict)  # default rows unavailable here
    # one dict per external set: label, name, description, summary, chance_f1
    externals: list = field(default_factory=list)
    # one dict per selection set (populations the run may choose by): label,
    # name, description, summary, chance_f1
    selections: list = field(default_factory=list)
    data_summary: str = ""  # sizes and per-class counts of the data
    val_chance_f1: float = 0.0
    budget: float = None  # seconds; None: no budget
    plan: dict = field(default_factory=dict)  # model -> the first plan, in words
    calibration_s: float = 0.0
    # model -> (validation probabilities, [external probabilities per set])
    probabilities: dict = field(default_factory=dict)
    ensemble: dict = field(default_factory=dict)  # how the ensemble row was made
    finished: bool = False  # False while running, or after a stop
    args: dict = field(default_factory=dict)  # the arguments that shape the results
    resumed_s: float = 0.0  # seconds the stopped run had taken (resume)
    recipes: dict = field(default_factory=dict)  # model -> unfitted, as it was fitted
    plans: dict = field(default_factory=dict)  # model -> what it ran (state.json)
    to_run: list = field(default_factory=list)  # rows not yet run (a stopped run)
    flattered: dict = field(default_factory=dict)  # model -> shifts it trains with
    families: dict = field(default_factory=dict)  # model -> its group
    profiles: Profiles = None  # the shift profile's rows and kept outputs
    reasons: dict = field(default_factory=dict)  # model -> why it is in the table

    def columns(self):
        from .report import table_columns

        return table_columns(self)

    def to_markdown(self):
        from .report import table_markdown

        return table_markdown(self.rows, self.columns())

    def __str__(self):
        return self.to_markdown()

    # -- collecting (the run loop calls these; the report only reads) --

    @classmethod
    def new(cls, data, image_size, args, budget, split, ext, sel=()):
        """The result of a run on ``split`` (X_train, y_train, X_val, y_val),
        the external sets ``ext`` and the selection sets ``sel``, before any
        row."""
        X_train, y_train, X_val, y_val = split
        result = cls([], _short(data), len(X_train), len(X_val), len(ext[0].y), 0.0)
        result.external = ext[0].description
        result.args, result.budget = args, budget
        result.data_description = describe_data(data)
        if image_size is not None or Path(str(data)).is_dir():
            # said, not silent: every row trains on images of this size
            h, w = X_train.shape[1:3]
            size = "" if image_size else "; default 32"
            result.data_description += f", resized to {h}x{w} (--image-size{size})"
        result.data_summary = summarize_images(
            np.concatenate([X_train, X_val]), np.concatenate([y_train, y_val])
        )
        result.val_chance_f1 = chance_f1(y_val)
        result.externals = [_described(s) for s in ext]
        result.selections = [_described(s) for s in sel]
        return result

    def add(self, row):
        """``row`` into the table, in the order of :attr:`families` (the
        run's rows; the ensemble last), replacing a row of its name."""
        self.rows = [r for r in self.rows if r.model != row.model] + [row]
        order = {n: i for i, n in enumerate(self.families)}
        self.rows.sort(key=lambda r: order.get(r.model, len(order)))

    def _keep(self, fitted):
        """A :class:`~skcnn.compare.fit.Fitted` row, its predictions and
        probabilities (stored as (validation, [external sets]))."""
        name = fitted.row.model
        self.add(fitted.row)
        self.predictions[name] = fitted.predictions
        if fitted.probabilities is not None:
            probs = fitted.probabilities
            self.probabilities[name] = (probs[0], list(probs[1:]))

    def collect(self, fitted, built, row_plan):
        """A fitted row (:class:`~skcnn.compare.fit.Fitted`) and its plan."""
        name = fitted.row.model
        self._keep(fitted)
        self.fitted[name] = fitted.model
        self.searches[name] = fitted.grid
        self.plans[name] = plan_record(row_plan)
        self.recipes[name] = _recipe(built, row_plan, fitted.row)

    def add_profile(self, part, images, random_state):
        """A row's shift profile (a :class:`~skcnn.compare.profile.Profiles`
        of ``images``, seeded: every model sees the same shifted images),
        appended to :attr:`robustness`."""
        profiles = self._profiles(images, random_state)
        profiles.merge(part)
        profiles.sort(self.families)

    def _profiles(self, images, random_state):
        if self.profiles is None:
            self.profiles = Profiles(images, random_state, self.robustness)
            self.robustness = self.profiles.table
        return self.profiles

    def keep_plans(self, saved, built, cv, done):
        """The plans (and so the rebuild code) of rows restored from a
        stopped run's state."""
        for name in done:
            record = saved.get("plans", {}).get(name)
            checked = checked_plan(record, built[name], cv)
            if not isinstance(checked, str):
                self.plans[name] = plan_record(checked)
                row = next(r for r in self.rows if r.model == name)
                self.recipes[name] = _recipe(built[name], checked, row)

    def add_ensemble(self, sets, classes, val, rob_data, random_state, progress):
        """The ensemble row: a vote across families, chosen on what the run
        may look at (:mod:`skcnn.compare.ensemble`)."""
        probabilities = {
            n: (p[0], *p[1]) for n, p in self.probabilities.items() if n != "ensemble"
        }
        made = ensemble_row(self, probabilities, sets, classes)
        if made is None:
            return
        fitted, selection = made
        progress(
            f"[+] ensemble: {selection.describe()} (a vote of the best row of each "
            f"family)\n    {sets.line(fitted.row)}"
        )
        self._keep(fitted)
        model = fitted.model
        self.ensemble = {
            "members": list(selection.members),
            "weights": list(selection.weights),
        }
        if model is None:
            return
        # the members are frozen: fit only records the classes
        self.fitted["ensemble"] = model.fit(*val)
        if rob_data is None:
            return
        profiles = self._profiles(rob_data, random_state)
        if profiles.can_vote(selection.members):  # the members' kept outputs
            profiles.add_vote("ensemble", selection, classes)
        else:
            profiles.add("ensemble", model)


def _described(s):
    return dict(
        label=s.label,
        name=s.name,
        description=s.description,
        summary=summarize_images(s.X, s.y),
        chance_f1=chance_f1(s.y),
    )


def _recipe(built, row_plan, row):
    """The row's estimator as the table's model was fitted (unfitted): the
    parameters its search chose and the epochs it was planned with."""
    return built.configured(row.best_params, row_plan.epochs)
