"""The state of a comparison in its output folder, written after every row,
so that a stopped or killed run can be continued (``--resume OUT``).

``state.json`` holds the run's arguments, the finished rows, their
predictions and probabilities on the validation and external images, and
their part of the robustness profile: everything the table, the ranks, the
verdict and the ensemble need. It is JSON read as data: nothing in it is
executed, and no fitted model is stored (the report's snippets rebuild them).

A resumed run trusts nothing in it that the run did not write: the
arguments are read by a typed schema (:data:`ARGS`; how to run, such as
the device, the jobs or a Dask address, comes from the command line only),
each row is checked against the run's models and its stored predictions,
and its scores are recomputed from those predictions. A damaged row is run
again, with a message saying why.

One run at a time writes into a folder: :func:`hold_folder` keeps a lock
file there while the run lives (a lock whose process has died is taken
over).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from numbers import Real
from pathlib import Path

import numpy as np

from .._files import atomic_write

STATE = "state.json"
LOCK = ".skcnn-compare.lock"
_FORMAT = "skcnn-compare-state-1"
_NONE = type(None)

# The arguments run_comparison stores: those that shape the results. A
# resumed run reads these and nothing else from the folder, each of its type.
ARGS = {
    "data": (str,),
    "external": (list,),
    "select": (list, _NONE),
    "models": (str, list, _NONE),
    "quick": (bool,),
    "cv": (int,),
    "weights": (str, _NONE),
    "image_size": (int, _NONE),
    "random_state": (int, _NONE),
    "robustness": (bool,),
}


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
        "rows": [dict(r) for r in result.rows if r.get("model") in ok],
        # what each row ran (--replay runs it again): grid, folds, epochs, params
        "plans": {n: result.plans[n] for n in ok if n in result.plans},
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
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # nested too deep
        raise ValueError(f"{str(path)!r} is not a comparison state: {exc}.") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a comparison state ({_FORMAT}).")
    state["args"] = _checked_args(state.get("args"), path)
    for key, kind in (
        ("rows", list),
        ("searches", dict),
        ("predictions", dict),
        ("probabilities", dict),
    ):
        if not isinstance(state.get(key, kind()), kind):
            raise ValueError(
                f"{str(path)!r} is damaged: {key!r} is a {type(state[key]).__name__}, "
                f"not a {kind.__name__}. Start the run again (without --resume)."
            )
        state.setdefault(key, kind())
    return state


def _checked_args(args, path):
    """The stored arguments, exactly the keys of :data:`ARGS`, each typed."""
    if not isinstance(args, dict):
        raise ValueError(f"{str(path)!r} is damaged: it has no arguments.")
    unknown = sorted(set(args) - set(ARGS))
    if unknown:
        raise ValueError(
            f"{str(path)!r} holds arguments a run never writes: {unknown}; a resumed "
            "run takes how to run (device, jobs, Dask, budget) from the command line "
            "only. The file was changed; start the run again (without --resume)."
        )
    args = dict(args)
    args.setdefault("select", None)  # written before selection sets (0.3)
    for key, kinds in ARGS.items():
        value = args.get(key)
        bad = key not in args or not isinstance(value, kinds)
        bad = bad or (bool not in kinds and isinstance(value, bool))
        if isinstance(value, list):
            bad = bad or not all(isinstance(v, str) for v in value)
        if bad:
            raise ValueError(
                f"{str(path)!r} is damaged: argument {key}={value!r} is not "
                f"{' or '.join(k.__name__ for k in kinds)}. Start the run again "
                "(without --resume)."
            )
    return dict(args)


def load_state(out, args):
    """The saved state of the run in ``out``; its arguments must be ``args``."""
    state = _read_state(out)
    saved = state["args"]
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
    """The arguments the run in ``out`` was started with (for ``--resume``):
    the keys of :data:`ARGS`, checked."""
    return _read_state(out)["args"]


def _number(value, low=0.0, high=None):
    return (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and value >= low
        and (high is None or value <= high)
    )


def _json_value(value):
    """Plain data a report may print (no objects; its nesting was bounded
    by the JSON reader)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def _checked_row(row, state, models, truth, classes):
    """(row fields, predictions, probabilities) of a stored row, or the
    reason it cannot be kept. ``truth``: the labels of the validation split
    and each external set, recomputed from the data."""
    if not isinstance(row, dict) or not isinstance(row.get("model"), str):
        return "a row without a model name"
    name = row["model"]
    if name not in models:
        return f"{name!r} is not a model of this run"
    if row.get("status") != "ok":
        return f"{name}: status {row.get('status')!r}"
    fields = {
        "best_params": isinstance(row.get("best_params"), dict)
        and _json_value(row["best_params"]),
        "cv_f1": row.get("cv_f1") is None or _number(row["cv_f1"], 0, 1),
        "cv_f1_std": row.get("cv_f1_std") is None or _number(row["cv_f1_std"]),
        "fit_time_s": _number(row.get("fit_time_s")),
        "planned_s": row.get("planned_s") is None or _number(row["planned_s"]),
        "plan": isinstance(row.get("plan", ""), str),
        "trained": isinstance(row.get("trained", ""), str),
    }
    bad = [k for k, ok in fields.items() if not ok]
    if bad:
        return f"{name}: invalid {', '.join(f'{k}={row.get(k)!r}' for k in bad)}"
    preds = state["predictions"].get(name)
    if not isinstance(preds, list) or len(preds) != len(truth):
        return f"{name}: predictions for {len(truth)} sets expected"
    out = []
    for p, y in zip(preds, truth):
        if not isinstance(p, list) or len(p) != len(y):
            return f"{name}: predictions cut short or too long"
        try:
            p = np.asarray(p).astype(classes.dtype)
        except (TypeError, ValueError):
            return f"{name}: predictions that are not labels"
        if p.ndim != 1 or not np.isin(p, classes).all():
            return f"{name}: predictions that are not labels of the data"
        out.append(p)
    probs = state["probabilities"].get(name)
    if probs is not None:
        try:
            val, ext = probs
            probs = [np.asarray(val, dtype=float), *(np.asarray(e, float) for e in ext)]
        except (TypeError, ValueError):
            return f"{name}: damaged probabilities"
        if len(probs) != len(truth) or not all(
            q.shape == (len(y), len(classes))
            and np.isfinite(q).all()
            and ((q >= 0) & (q <= 1)).all()
            and np.allclose(q.sum(1), 1, atol=1e-3)
            for q, y in zip(probs, truth)
        ):
            return f"{name}: probabilities that are not one distribution per image"
        probs = (probs[0], probs[1:])
    kept = {k: row.get(k) for k in fields}
    kept["plan"] = kept["plan"] or ""
    kept["trained"] = kept["trained"] or ""
    return kept, tuple(out), probs


def restore_rows(result, state, data, score, progress):
    """Put the finished rows of ``state`` into ``result``; return their names.

    ``data``: (the run's model names, the classes, the true labels of the
    validation split and of each external set); ``score(name, predictions,
    probabilities or None, fields)``: the run's Row of them. Scores are recomputed, never read; a row that
    fails a check is left to run again, and ``progress`` says why."""
    models, classes, truth = data
    done = set()
    for row in state["rows"]:
        if isinstance(row, dict) and row.get("model") == "ensemble":
            continue  # made again from its members at the end of the run
        checked = _checked_row(row, state, models, truth, classes)
        if isinstance(checked, str):
            progress(f"resume: {checked}; not kept from {STATE} (run again)")
            continue
        fields, preds, probs = checked
        name = row["model"]
        if name in done:
            progress(f"resume: {name} twice in {STATE}; the first kept")
            continue
        scored = score(name, preds, probs, fields)
        stored = row.get("val_f1")
        if not (_number(stored, 0, 1) and abs(stored - scored["val_f1"]) <= 1e-6):
            progress(
                f"resume: {name}: the stored validation F1 {stored!r} is not what its "
                f"predictions score ({scored['val_f1']:.3f}); the table uses the latter"
            )
        result.add(scored)
        search = state["searches"].get(name)
        result.searches[name] = search if _json_value(search) else None
        result.predictions[name] = preds
        if probs is not None:
            result.probabilities[name] = probs
        done.add(name)
    result.robustness = _checked_robustness(state.get("robustness"), done, progress)
    return done


def _checked_robustness(rob, done, progress):
    """The stored robustness profile of the kept rows, or None."""
    from ..robustness import PROFILE_COLUMNS

    if not rob:
        return None
    ok = (
        isinstance(rob, dict)
        and set(rob) == set(PROFILE_COLUMNS)
        and isinstance(rob.get("model"), list)
        and all(isinstance(v, list) for v in rob.values())
        and len({len(v) for v in rob.values()}) == 1
        and all(
            isinstance(v, str) or _number(v, -np.inf)
            for k, vals in rob.items()
            for v in vals
        )
    )
    if not ok:
        progress(f"resume: the robustness profile in {STATE} is damaged; not kept")
        return None
    keep = [i for i, m in enumerate(rob["model"]) if m in done]
    return {k: [v[i] for i in keep] for k, v in rob.items()} if keep else None


def elapsed_before(state, progress):
    """Seconds the stopped run had taken (0 when the stored value is not a
    time)."""
    value = state.get("elapsed_s", 0.0)
    if not _number(value):
        progress(f"resume: elapsed_s={value!r} in {STATE} is not a time; counted as 0")
        return 0.0
    return float(value)


def robustness_size(state, n_val):
    """The stored size of the robustness profile, when it is one."""
    n = state.get("robustness_n")
    if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= n_val:
        return n
    return None


@contextlib.contextmanager
def hold_folder(out):
    """Hold ``out`` for this run: a lock file naming the process, removed
    when the run ends. A lock of a process still running refuses the run;
    one whose process has died (a kill) is taken over."""
    if out is None:
        yield
        return
    lock = Path(out) / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(lock)
            if holder is not None:
                raise ValueError(
                    f"{str(out)!r} is in use by another skcnn compare run ({holder}); "
                    "two runs in one folder would overwrite each other's results. "
                    "Wait for it to finish, stop it, or give another --out. (If no "
                    f"run is using it, delete {str(lock)!r}.)"
                ) from None
            lock.unlink(missing_ok=True)  # stale: its process has ended
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:  # pragma: no cover - another run took it between our two tries
        raise ValueError(f"{str(out)!r} is in use by another skcnn compare run.")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if json.loads(lock.read_text()).get("pid") == me["pid"]:
                lock.unlink()


def _holder(lock):
    """Who holds ``lock``, in words, or None when the lock is stale."""
    try:
        info = json.loads(lock.read_text())
        pid, host = int(info["pid"]), str(info["host"])
        started = float(info.get("started", 0))
    except (OSError, ValueError, KeyError, TypeError):
        # unreadable: being written this very moment, or damaged; an old
        # one is stale
        try:
            return None if time.time() - lock.stat().st_mtime > 60 else "starting"
        except OSError:
            return None
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    if host != socket.gethostname():
        return f"process {pid} on {host}, started {when}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return f"process {pid}, started {when}"
