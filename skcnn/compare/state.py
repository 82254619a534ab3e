"""The state of a comparison in its output folder, written after every row,
so that a stopped or killed run can be continued (``--resume OUT``).

``state.json`` holds the run's arguments, the finished rows, their
predictions and probabilities on the validation and external images, and
their part of the robustness profile: everything the table, the ranks, the
verdict and the ensemble need. It is JSON read as data: nothing in it is
executed, and no fitted model is stored (the report's snippets rebuild them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._files import atomic_write

STATE = "state.json"
_FORMAT = "skcnn-compare-state-1"


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not stored in {STATE}")


def save_state(out, args, result, elapsed_s):
    """Write ``out/state.json`` (atomically: a kill never leaves half a file)."""
    ok = [r["model"] for r in result.rows if r.get("status") == "ok"]
    rob = result.robustness or {}
    state = {
        "format": _FORMAT,
        "args": args,
        "elapsed_s": elapsed_s,
        "robustness_n": result.robustness_n,
        "rows": [r for r in result.rows if r.get("model") in ok],
        "searches": {n: result.searches.get(n) for n in ok},
        "predictions": {
            n: [np.asarray(p).tolist() for p in result.predictions[n]] for n in ok
        },
        "probabilities": {
            n: [
                result.probabilities[n][0].tolist(),
                [p.tolist() for p in result.probabilities[n][1]],
            ]
            for n in ok
            if n in result.probabilities
        },
        "robustness": {
            k: [v for v, m in zip(vals, rob.get("model", [])) if m in ok]
            for k, vals in rob.items()
        },
    }
    text = json.dumps(state, default=_plain)
    atomic_write(
        Path(out) / STATE, lambda f: f.write(text), what="comparison state", mode="w"
    )


def _read_state(out):
    if out is None:
        raise ValueError("resume needs out: the folder of the run to continue.")
    path = Path(out) / STATE
    if not path.is_file():
        raise ValueError(
            f"Nothing to resume in {str(out)!r}: it has no {STATE} (a run writes it "
            "after its first row)."
        )
    try:
        state = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{str(path)!r} is not a comparison state: {exc}.") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a comparison state ({_FORMAT}).")
    return state


def load_state(out, args):
    """The saved state of the run in ``out``; its arguments must be ``args``."""
    state = _read_state(out)
    saved = state.get("args", {})
    differ = {k: (saved.get(k), v) for k, v in args.items() if saved.get(k) != v}
    if differ:
        said = "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in differ.items())
        raise ValueError(
            f"The run in {str(out)!r} was started with other arguments ({said}); a "
            "resumed run must use the same ones (skcnn compare --resume OUT reads them "
            "from the folder)."
        )
    return state


def saved_args(out):
    """The arguments the run in ``out`` was started with (for ``--resume``)."""
    return dict(_read_state(out).get("args", {}))


def restore_rows(result, state, y_val, sets):
    """Put the finished rows of ``state`` into ``result``; return their names."""
    dtype = np.asarray(y_val).dtype
    for row in state["rows"]:
        row = {
            k: tuple(v) if k.endswith("_ci") and v is not None else v
            for k, v in row.items()
        }
        name = row["model"]
        result.rows.append(row)
        result.searches[name] = state["searches"].get(name)
        result.predictions[name] = tuple(
            np.asarray(p).astype(dtype) for p in state["predictions"][name]
        )
        if name in state["probabilities"]:
            val, ext = state["probabilities"][name]
            result.probabilities[name] = (np.asarray(val), [np.asarray(p) for p in ext])
    rob = state.get("robustness") or {}
    if rob.get("model"):
        result.robustness = {k: list(v) for k, v in rob.items()}
    return {r["model"] for r in state["rows"]}
