"""The rows of a comparison, declared once: a :class:`RowSpec` per row.

timm's ``@register_model`` + ``pretrained_cfg`` idea: one declaration says
what a row is (its estimator's builder, its grids, its group) and what it can
do (train for epochs, extract pretrained features first, take volumes, give
probabilities), and every table the comparison needs is derived from the
registry: the model names, the groups of ``--models``, which rows share a
calibration, which rows hold a network. This module imports neither torch nor
scikit-learn (``skcnn --help`` lists the rows without them).

A row of your own is one declaration::

    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from skcnn.baselines import HOGTransformer
    from skcnn.compare import RowSpec, run_comparison

    knn = RowSpec(
        "hog+knn",
        group="classic",
        build=make_pipeline(HOGTransformer(), KNeighborsClassifier()),
        grid={"kneighborsclassifier__n_neighbors": [3, 7]},
        why="a non-parametric baseline on HOG features",
    )
    run_comparison("digits", extra_rows=[knn])   # this run only
    # or skcnn.compare.register_row(knn): every later run in this process
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAMILIES",
    "Context",
    "RowSpec",
    "groups",
    "register_row",
    "resolve_models",
    "rows_with",
]

# The families of rows: the groups of --models, and what the ensemble's
# members must span (a vote of two kinds of model).
FAMILIES = ("classic", "networks", "transfer")


@dataclass(frozen=True)
class Context:
    """What a row's builder may look at: the shape of one training sample,
    the run's options and the data's pixel spread (0-1 scale)."""

    image_shape: tuple
    quick: bool = False
    device: str = "auto"
    weights: Any = None
    random_state: int = 0
    pixel_std: float = 0.376
    volumes: bool = False


def _value(v, ctx):
    return v(ctx) if callable(v) else v


_SAME = object()  # quick_grid: the same as grid
_VOLUMES = "skipped: works on 2-D images; the data are volumes"


@dataclass(frozen=True)
class RowSpec:
    """One row of the comparison.

    Parameters
    ----------
    name : str
        The row's name in the table and in ``--models``.
    group : {"classic", "networks", "transfer"}
        Its family.
    build : estimator or callable(Context) -> estimator
        The row's estimator (cloned for every fit), or a function of the
        run's :class:`Context` that makes it.
    grid : dict, None or callable(Context) -> dict or None
        The search grid; each list starts with the value a row cut to one
        fit takes. None: one fit, no search (no CV F1).
    quick_grid : same as ``grid``, default=grid
        The grid of a ``--quick`` run.
    needs : callable(Context) -> str or None, optional
        Why the row cannot run here ("skipped: ..."), or None when it can.
    cost_as : str or None
        A row whose measured cost this row shares (the same model with
        noise, augmentation or one more cheap step): calibrated once.
    trains_epochs, features_first, takes_volumes, probabilities : bool or None
        What the row can do: it trains for ``max_epochs`` (a network), its
        first step computes features that learn nothing from the images
        (pretrained features, HOG: computed once per setting of the step), every step takes volumes, it has ``predict_proba``. None
        (a row of your own): read from the estimator. The built-in rows
        declare them and a test checks the declaration against the estimator.
    noise : bool
        Trains on noisy inputs (the "noise" group).
    why : str
        The row's reason to be in the table, in a few words (the report's
        search-space section).
    """

    name: str
    group: str
    build: Any
    grid: Any = None
    quick_grid: Any = _SAME
    needs: Callable | None = None
    cost_as: str | None = None
    trains_epochs: bool | None = None
    features_first: bool | None = None
    takes_volumes: bool | None = None
    probabilities: bool | None = None
    noise: bool = False
    why: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "," in self.name:
            raise ValueError(
                f"A row's name is a non-empty string without commas; got {self.name!r}."
            )
        if self.group not in FAMILIES:
            raise ValueError(
                f"Row {self.name!r}: group must be one of {list(FAMILIES)}; got {self.group!r}."
            )

    def reason_not_run(self, ctx):
        """Why the row cannot run with ``ctx`` (None: it can)."""
        if ctx.volumes and self.takes_volumes is False:
            return _VOLUMES
        return self.needs(ctx) if self.needs is not None else None

    def make(self, ctx):
        """The :class:`Built` row for the run ``ctx``."""
        reason = self.reason_not_run(ctx)
        if reason is not None:
            return Built(self, None, None, reason=reason)
        from sklearn.base import clone

        if hasattr(self.build, "get_params"):
            estimator = clone(self.build)
        else:
            estimator = self.build(ctx)
        grid = (
            self.grid if self.quick_grid is _SAME or not ctx.quick else self.quick_grid
        )
        built = Built(self, estimator, _value(grid, ctx))
        if ctx.volumes and not built.takes_volumes:
            return Built(self, None, None, reason=_VOLUMES)
        return built


def _last(estimator):
    steps = getattr(estimator, "steps", None)
    return steps[-1] if steps else (None, estimator)


@dataclass(frozen=True)
class Built:
    """A row made for one run: its estimator and grid (or ``reason``, why it
    cannot run here) and its abilities, as declared or, for a row that
    leaves them to None, read from the estimator."""

    spec: RowSpec
    estimator: Any
    grid: Any
    reason: str | None = None

    @property
    def name(self):
        return self.spec.name

    def step_param(self, name):
        """The key of the last step's parameter ``name`` (``"<step>__name"``
        in a Pipeline), or None when the row's estimator has none."""
        if self.estimator is None:
            return None
        step, last = _last(self.estimator)
        if name not in last.get_params(deep=False):
            return None
        return name if step is None else f"{step}__{name}"

    @property
    def epochs_param(self):
        """The parameter that sets the row's epochs (a network), or None: a
        Pipeline ending in a network is a network row too."""
        return self.step_param("max_epochs")

    def configured(self, params, epochs=None):
        """A clone of the row's estimator with ``params`` set and, for a
        network, ``epochs`` (None: its own)."""
        from sklearn.base import clone

        estimator = clone(self.estimator).set_params(**params)
        if epochs is not None and self.epochs_param:
            estimator.set_params(**{self.epochs_param: epochs})
        return estimator

    @property
    def network(self):
        if self.spec.trains_epochs is not None:
            return self.spec.trains_epochs
        return self.epochs_param is not None

    @property
    def feature_step(self):
        """The name of the first step when its features learn nothing from
        the images (pretrained features, HOG: computed once per setting of
        the step in a search), else None."""
        steps = getattr(self.estimator, "steps", None)
        if self.spec.features_first is False or not steps:
            return None
        if self.spec.features_first or getattr(steps[0][1], "_learns_nothing", False):
            return steps[0][0]
        return None

    @property
    def takes_volumes(self):
        if self.spec.takes_volumes is not None:
            return self.spec.takes_volumes
        steps = getattr(self.estimator, "steps", [(None, self.estimator)])
        return all(
            getattr(step, "_takes_volumes", "image_shape" not in step.get_params())
            for _, step in steps
        )

    @property
    def probabilities(self):
        if self.spec.probabilities is not None:
            return self.spec.probabilities
        return hasattr(self.estimator, "predict_proba")


_REGISTRY: dict[str, RowSpec] = {}


def register_row(spec, *, replace=False):
    """Add ``spec`` (a :class:`RowSpec`) to the rows every comparison of
    this process runs (after the built-in ones). ``replace=True`` replaces
    a row of the same name; otherwise a name taken is an error."""
    if not isinstance(spec, RowSpec):
        raise TypeError(f"register_row takes a RowSpec; got {type(spec).__name__}.")
    if spec.name in _REGISTRY and not replace:
        raise ValueError(
            f"A row named {spec.name!r} is registered already; pass replace=True "
            "to replace it."
        )
    if spec.name in {"ensemble", "robustness"}:
        raise ValueError(f"{spec.name!r} is a name the comparison uses itself.")
    _REGISTRY[spec.name] = spec
    return spec


def rows_with(extra=()):
    """name -> RowSpec: the rows registered so far in table order, then
    ``extra`` (:func:`skcnn.compare.zoo.registered`: with the built-in
    rows declared first)."""
    rows = dict(_REGISTRY)
    for spec in extra:
        if not isinstance(spec, RowSpec):
            raise TypeError(
                f"extra_rows takes RowSpec values; got {type(spec).__name__}."
            )
        if spec.name in rows:
            raise ValueError(f"extra_rows: a row named {spec.name!r} exists already.")
        rows[spec.name] = spec
    return rows


def groups(rows):
    """group -> the names of ``rows``: the families, "noise" and "all"."""
    out = {g: tuple(n for n, s in rows.items() if s.group == g) for g in FAMILIES}
    out["noise"] = tuple(n for n, s in rows.items() if s.noise)
    out["all"] = tuple(rows)
    return out


def resolve_models(models, rows):
    """Names and groups of ``rows`` -> the row names, in table order."""
    if models is None:
        return list(rows)
    found = groups(rows)
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    chosen = set()
    for m in models:
        if m in found:
            chosen.update(found[m])
        elif m in rows:
            chosen.add(m)
        else:
            raise ValueError(
                f"Unknown model or group {m!r}; choose from the groups {list(found)} "
                f"or the models {list(rows)}."
            )
    if not chosen:
        raise ValueError("models is empty; name at least one model or group.")
    return [m for m in rows if m in chosen]
