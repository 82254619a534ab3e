"""Safe model files: parameters as JSON, weights as safetensors, no pickle.

``estimator.save(path)`` writes one ``.safetensors`` file whose header holds
the estimator's class, parameters and fitted state as JSON, and whose body
holds the network's tensors. ``skcnn.load(path)`` rebuilds the estimator
from it. Loading never executes code from the file, so a shared model file
is as safe to open as an image.

Estimators talk to this module through a small interface: they register
their class here (``register``), describe their fitted state as JSON
(``_fitted_state()``) and are rebuilt from it (``_from_fitted_state``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ._data import INPUT_ORDERS
from ._files import atomic_output, check_output_path
from ._params import absent_values, split_places
from .augmentation import Augment
from .pretrained import read_safetensors

__all__ = ["load", "register", "save"]

_FORMAT = "skcnn-model-2"
_CLASSES = {}


def register(cls):
    """Make ``cls`` loadable by name (skcnn's own estimator classes only).

    Classes register when their module is imported; :func:`skcnn.load`
    imports them all (``_bundle.network_classes``) before it reads a file."""
    if cls.__module__.startswith("skcnn."):
        _CLASSES[cls.__name__] = cls
    return cls


def restorable(cls, params, shown):
    """The parameters of a model file that loading may restore.

    What names a place, a peer or machine resources (``_params.places``) is
    never taken from a file, whoever wrote it: such a parameter loads as the
    class's default, and one line says which values were left out."""
    kept, _, left = split_places(cls, params)
    if left:
        said = ", ".join(f"{k}={v!r}" for k, v in sorted(left.items()))
        warnings.warn(
            f"{shown}: not restored from the file (a model file names no folders, "
            f"peers or machine settings; set them again if you need them): {said}.",
            UserWarning,
            stacklevel=3,
        )
    return kept


def _encode_param(name, value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, list)):
        return {"__tuple__": [_encode_param(name, v) for v in value]}
    if isinstance(value, dict):
        return {"__dict__": {str(k): _encode_param(name, v) for k, v in value.items()}}
    if isinstance(value, Augment):
        return {"__augment__": value.get_config()}
    if isinstance(value, Path):
        return str(value)
    raise TypeError(
        f"Parameter {name}={value!r} cannot be written to a safe model file (only numbers, "
        "strings, tuples, dicts and Augment); use pickle/joblib for such estimators."
    )


def _decode_param(value):
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_decode_param(v) for v in value["__tuple__"])
        if "__dict__" in value:
            out = {}
            for k, v in value["__dict__"].items():
                key = int(k) if k.lstrip("-").isdigit() else k
                out[key] = _decode_param(v)
            return out
        if "__augment__" in value:
            return Augment(**value["__augment__"])
    return value


def save(estimator, path):
    """Write a fitted estimator to a safetensors file (see module docstring).

    Parameters
    ----------
    estimator : fitted skcnn network estimator
        The estimator to write.
    path : str or Path
        The file to write.

    Returns
    -------
    path : Path
        The file written.
    """
    from safetensors.torch import save_file

    check_output_path(path, "model file")
    fitted = estimator._fitted_state()
    # a file names no places (folders, devices, thread counts, callbacks)
    kept, _, _ = split_places(type(estimator), estimator.get_params(deep=False))
    params = {
        # weights given as a state dict are in the file's tensors
        k: None if k == "weights" and isinstance(v, dict) else _encode_param(k, v)
        for k, v in kept.items()
    }
    header = {
        "format": _FORMAT,
        "class": type(estimator).__name__,
        "params": params,
        "fitted": json.loads(json.dumps(fitted, default=float)),
    }
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in estimator.module_.state_dict().items()
    }
    with atomic_output(path, "model file") as tmp:
        try:
            save_file(state, str(tmp), metadata={"skcnn": json.dumps(header)})
        except OSError:
            raise
        except Exception as exc:  # safetensors' own error type
            raise OSError(f"{type(exc).__name__}: {exc}") from None
    return Path(path)


def _from_format_1(header):
    """skcnn 0.1 files kept fitted attributes flat; read them as format 2."""
    old = header.get("fitted", {})
    fitted = {
        "task": old.get("_task"),
        "layout": header.get("layout"),
        "pixels": None,  # 0.1 scaled uint8 input only
        "n_features_in": old.get("n_features_in_"),
        "n_iter": old.get("n_iter_"),
        "best_epoch": old.get("best_epoch_"),
        "batch_size": old.get("batch_size_"),
        "weights_source": old.get("weights_source_"),
        "history": header.get("history", []),
    }
    if "classes" in header:
        fitted["classes"] = header["classes"]
    if "n_outputs_" in old:
        fitted["n_outputs"] = old["n_outputs_"]
        fitted["single_output"] = old.get("_single_output", True)
    return {**header, "format": _FORMAT, "fitted": fitted}


def load(path, device=None, *, name=None):
    """Rebuild an estimator saved with ``estimator.save(path)``.

    Parameters
    ----------
    path : str or Path
        The model file.
    device : str or None, default=None
        Where to put the networks; None: ``"auto"`` (CUDA when available,
        else the CPU). A file never chooses the device.
    name : str or None, default=None
        How messages name the file (a bundle names its member).

    Returns
    -------
    estimator : fitted skcnn estimator
        The estimator as it was saved.
    """
    from safetensors import safe_open

    path = Path(path)
    shown = name or str(path)
    if not path.is_file():
        raise ValueError(f"Model file {shown!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error type
        raise ValueError(
            f"{shown!r} is not a readable skcnn model file: {exc}. skcnn.load reads "
            "what estimator.save / skcnn.save wrote (safetensors with an skcnn header, "
            "or a bundle); the file may be truncated."
        ) from None
    if "skcnn" not in meta:
        raise ValueError(f"{shown!r} is not an skcnn model file (no skcnn header).")
    try:
        header = json.loads(meta["skcnn"])
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        header = None
    if not isinstance(header, dict):
        raise ValueError(f"The skcnn header of {shown!r} is not a JSON object.")
    if header.get("format") == "skcnn-model-1":
        header = _from_format_1(header)
    if header.get("format") != _FORMAT:
        raise ValueError(
            f"Unsupported skcnn model format {header.get('format')!r} in {shown!r}; "
            f"this version of skcnn reads {_FORMAT!r}."
        )
    cls = _CLASSES.get(header.get("class"))
    if cls is None:
        raise ValueError(
            f"Unknown estimator class {header.get('class')!r} in {shown!r}; "
            f"expected one of {sorted(_CLASSES)}."
        )
    params, fitted = _checked_header(header, cls, shown)
    params = {**absent_values(cls), **restorable(cls, params, shown)}
    if device is not None:
        params["device"] = device
    weights = read_safetensors(path, f"The model file {shown!r}")
    try:
        return cls._from_fitted_state(params, fitted, weights)
    except RuntimeError as exc:
        # load_state_dict: names or shapes that do not fit the header's model
        raise ValueError(
            f"The weights in {shown!r} do not fit the network its header describes: "
            f"{str(exc).splitlines()[0]}"
        ) from None


_TASKS = {
    "binary": "classes",
    "multiclass": "classes",
    "multilabel": "classes",
    "regression": "n_outputs",
    "features": "n_features_out",
}
_FITTED_KEYS = {
    "task": str,
    "layout": list,
    "pixels": (bool, type(None)),
    "n_features_in": int,
    "n_iter": int,
    "best_epoch": int,
    "batch_size": int,
    "weights_source": (str, type(None)),
    "history": list,
}
# How samples were arranged at fit (ImageLayout.order); None in older files.
_INPUT_ORDERS = (None, *INPUT_ORDERS)
# No real image needs more: a tampered header must not make load allocate GBs.
_MAX_SIDE, _MAX_CHANNELS, _MAX_VALUES = 4096, 512, 1 << 26


def _checked_header(header, cls, path):
    """Parameters and fitted state of a model file, checked before anything
    is built: a file from a newer skcnn or a tampered header fails here."""
    where = f"in {str(path)!r}"  # path: the file's name in messages
    if not isinstance(header.get("params"), dict) or not isinstance(
        header.get("fitted"), dict
    ):
        raise ValueError(f"The skcnn header {where} has no params/fitted sections.")
    known = set(cls().get_params(deep=False))
    unknown = sorted(set(header["params"]) - known)
    if unknown:
        raise ValueError(
            f"The model {where} has parameter(s) {unknown} that {cls.__name__} of this "
            "skcnn version does not know; it was probably saved by a newer skcnn. "
            "Upgrade skcnn to load it."
        )
    params = {k: _decode_param(v) for k, v in header["params"].items()}
    fitted = header["fitted"]
    for key, kind in getattr(cls, "_FITTED_KEYS", _FITTED_KEYS).items():
        if key not in fitted:
            raise ValueError(f"The model file {where} lacks the fitted field {key!r}.")
        value = fitted[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(
                f"The model file {where} has an invalid fitted field {key}={value!r}."
            )
    if fitted.get("input_layout") not in _INPUT_ORDERS:
        raise ValueError(
            f"The model file {where} has an invalid fitted field input_layout="
            f"{fitted['input_layout']!r}; expected one of {list(_INPUT_ORDERS)}."
        )
    task = fitted["task"]
    if task not in _TASKS or _TASKS[task] not in fitted:
        raise ValueError(
            f"The model file {where} has an invalid task {task!r} (or lacks its "
            f"{_TASKS.get(task, 'outputs')}); expected one of {sorted(_TASKS)}."
        )
    if task == "regression":
        n = fitted["n_outputs"]
        for key in ("target_mean", "target_scale"):
            value = fitted.get(key, [0.0] * n if isinstance(n, int) else None)
            if not (
                isinstance(value, list)
                and len(value) == n
                and all(isinstance(v, (int, float)) and np.isfinite(v) for v in value)
                and (key == "target_mean" or all(v > 0 for v in value))
            ):
                raise ValueError(
                    f"The model file {where} has an invalid fitted field {key}={value!r}; "
                    f"expected {n} finite numbers."
                )
    layout = fitted["layout"]
    ranks = (2, 3, 4) if getattr(cls, "_takes_volumes", False) else (2, 3)
    valid = (
        len(layout) in ranks
        and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in layout
        )
        and layout[0] <= _MAX_CHANNELS
        and max(layout[1:]) <= _MAX_SIDE
        and np.prod(layout) <= _MAX_VALUES
    )
    if not valid:
        raise ValueError(
            f"The model file {where} has an invalid input layout {layout!r}; expected "
            f"(C, H, W) or (C, L)"
            + (" or (C, D, H, W)" if len(ranks) == 3 else "")
            + f" with at most {_MAX_CHANNELS} channels and sides of at most "
            f"{_MAX_SIDE}."
        )
    return params, fitted


def check_weight_shapes(build, weights):
    """The architecture ``build()`` makes, first on the meta device (no
    memory), against the file's tensors: parameters and layout that do not
    describe them fail here."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if shapes != found:
        diff = sorted(set(shapes.items()) ^ set(found.items()))[:3]
        raise ValueError(
            f"The weights in the model file do not match its header (class, "
            f"parameters, layout): e.g. {diff}. The file was changed after it "
            "was saved."
        )
