"""One parameter table per estimator, checked once at the start of ``fit``.

The constraint language is scikit-learn's (``_parameter_constraints``:
``Interval``, ``StrOptions``, ``"boolean"``, types, ...), with three
additions that sklearn's own estimators do not need: numbers that refuse
booleans (``True`` is an ``int`` to Python, never a size or a rate to a
user), tuples of positive sizes, and a check that every declared parameter
has an entry. Messages follow sklearn's: which parameter of which class,
what was expected, what was given.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    make_constraint,
)
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "DEPRECATED",
    "Int",
    "InvalidParameterError",
    "Num",
    "Options",
    "Sizes",
    "StrOptions",
    "SubclassOf",
    "deprecated_name",
    "renamed",
    "validate_params",
]

DEPRECATED = "deprecated"


class _NoBoolInterval(Interval):
    """An sklearn ``Interval`` that does not take ``True``/``False`` as numbers."""

    def is_satisfied_by(self, val):
        if isinstance(val, (bool, np.bool_)):
            return False
        return super().is_satisfied_by(val)


def Int(low, high=None):
    """An integer in ``[low, high]`` (None: no bound on that side); no booleans."""
    closed = {(False, False): "both", (True, False): "right", (False, True): "left"}
    return _NoBoolInterval(
        Integral, low, high, closed=closed.get((low is None, high is None), "neither")
    )


def Num(low, high=None, closed="left"):
    """A real number (numpy scalars included) in the interval; no booleans."""
    return _NoBoolInterval(Real, low, high, closed=closed)


class Constraint:
    """A constraint sklearn's language lacks: ``is_satisfied_by`` and a
    ``__str__`` that completes "must be ..."."""

    hidden = False


class SubclassOf(Constraint):
    """A class derived from ``base`` (e.g. an optimizer class)."""

    def __init__(self, base, name=None):
        self.base = base
        self.name = name or f"{base.__module__}.{base.__qualname__}"

    def is_satisfied_by(self, val):
        return isinstance(val, type) and issubclass(val, self.base)

    def __str__(self):
        return f"a subclass of {self.name}"


class Sizes(Constraint):
    """A tuple/list whose entries are integers >= ``low`` (or, with
    ``nested``, tuples of them; with ``none``, None), e.g. ``conv_filters``
    or per-block kernel sizes."""

    def __init__(self, low=1, *, nested=False, none=False, nonempty=False):
        self.low, self.nested, self.none, self.nonempty = low, nested, none, nonempty

    def _entry_ok(self, v):
        if v is None:
            return self.none
        if self.nested and isinstance(v, (tuple, list)):
            return len(v) > 0 and all(self._int_ok(w) for w in v)
        return self._int_ok(v)

    def _int_ok(self, v):
        return (
            isinstance(v, Integral)
            and not isinstance(v, (bool, np.bool_))
            and v >= self.low
        )

    def is_satisfied_by(self, val):
        if not isinstance(val, (tuple, list)):
            return False
        if self.nonempty and not val:
            return False
        return all(self._entry_ok(v) for v in val)

    def __str__(self):
        entry = f"ints >= {self.low}"
        if self.nested:
            entry += " (or tuples of them)"
        if self.none:
            entry += " or None"
        kind = "a non-empty tuple" if self.nonempty else "a tuple"
        return f"{kind} of {entry}"


def _constraint(c):
    return c if isinstance(c, Constraint) else make_constraint(c)


def validate_params(estimator, params=None):
    """Check ``estimator``'s parameters against its ``_parameter_constraints``.

    Raises ``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``)
    naming the parameter, the estimator class, what was expected and what
    was given. A parameter without an entry in the table is a bug in skcnn
    and raises ``RuntimeError``.
    """
    table = type(estimator)._parameter_constraints
    params = estimator.get_params(deep=False) if params is None else params
    caller = type(estimator).__name__
    for name, value in params.items():
        if name not in table:
            raise RuntimeError(f"{caller} has no constraint for parameter {name!r}.")
        if table[name] == "no_validation":
            continue
        constraints = [_constraint(c) for c in table[name]]
        if any(c.is_satisfied_by(value) for c in constraints):
            continue
        shown = [str(c) for c in constraints if not getattr(c, "hidden", False)]
        expected = (
            shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
        )
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller} must be {expected}. "
            f"Got {value!r} instead."
        )


def deprecated_name(constraints):
    """Constraints of a renamed parameter's old name: the new one's, or the
    hidden ``"deprecated"`` marker that means "not given"."""
    return [Hidden(StrOptions({DEPRECATED})), *constraints]


def renamed(estimator, old, new):
    """The value of parameter ``new``, or of ``old`` when a user still gives
    the old name (with a FutureWarning saying what to write instead)."""
    value = getattr(estimator, old)
    if isinstance(value, str) and value == DEPRECATED:
        return getattr(estimator, new)
    warnings.warn(
        f"{type(estimator).__name__}: the parameter {old!r} was renamed to {new!r} "
        f"in skcnn 0.2 and the old name will be removed in 0.3; use {new}={value!r}.",
        FutureWarning,
        stacklevel=3,
    )
    return value


def check_sample_weight(sample_weight, n):
    """Per-sample loss weights as float32, or None when none are given;
    scikit-learn's checks (length, finite) and non-negative."""
    if sample_weight is None:
        return None
    weights = _check_sample_weight(sample_weight, np.empty((n, 0)), dtype=np.float64)
    if np.any(weights < 0):
        raise ValueError("sample_weight must be non-negative.")
    return weights.astype(np.float32)
