"""Safe model files: parameters as JSON, weights as safetensors, no pickle.

``estimator.save(path)`` writes one ``.safetensors`` file whose header holds
the estimator's class, parameters and fitted attributes as JSON, and whose
body holds the network's tensors. ``skcnn.load(path)`` rebuilds the
estimator from it. Loading never executes code from the file, so a shared
model file is as safe to open as an image.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ._data import ImageLayout
from ._training import gpu_missing
from .augmentation import Augment

__all__ = ["save", "load"]

_FORMAT = "skcnn-model-1"
_FITTED = (
    "n_features_in_",
    "n_iter_",
    "best_epoch_",
    "n_outputs_",
    "weights_source_",
    "batch_size_",
)
_PRIVATE = ("_task", "_single_output")


def _registry():
    from ._cnn import CNNClassifier, CNNRegressor
    from ._densenet import DenseNetClassifier

    return {c.__name__: c for c in (CNNClassifier, CNNRegressor, DenseNetClassifier)}


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
    """Write a fitted estimator to a safetensors file (see module docstring)."""
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "net_")
    params = {
        k: _encode_param(k, v) for k, v in estimator.get_params(deep=False).items()
    }
    fitted = {
        k: getattr(estimator, k) for k in _FITTED + _PRIVATE if hasattr(estimator, k)
    }
    fitted = {
        k: (v.item() if isinstance(v, np.generic) else v) for k, v in fitted.items()
    }
    header = {
        "format": _FORMAT,
        "class": type(estimator).__name__,
        "params": params,
        "fitted": fitted,
        "layout": list(estimator.layout_.shape),
        "history": json.loads(json.dumps(estimator.history_, default=float)),
    }
    if hasattr(estimator, "classes_"):
        classes = estimator.classes_
        header["classes"] = {"values": classes.tolist(), "dtype": classes.dtype.str}
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in estimator.module_.state_dict().items()
    }
    path = Path(path)
    save_file(state, str(path), metadata={"skcnn": json.dumps(header)})
    return path


def load(path, device=None):
    """Rebuild an estimator saved with ``estimator.save(path)``.

    Parameters
    ----------
    path : str or Path
    device : str or None, default=None
        Where to put the network; None uses the saved ``device`` parameter,
        falling back to the CPU when it asks for CUDA and there is none.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Model file {str(path)!r} does not exist.")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "skcnn" not in meta:
        raise ValueError(f"{str(path)!r} is not an skcnn model file (no skcnn header).")
    header = json.loads(meta["skcnn"])
    if header.get("format") != _FORMAT:
        raise ValueError(f"Unsupported skcnn model format {header.get('format')!r}.")
    registry = _registry()
    if header["class"] not in registry:
        raise ValueError(
            f"Unknown estimator class {header['class']!r} in {str(path)!r}."
        )
    params = {k: _decode_param(v) for k, v in header["params"].items()}
    if device is not None:
        params["device"] = device
    elif gpu_missing(str(params.get("device", "auto"))):
        warnings.warn(
            "The model was saved for CUDA, which is not available; loading on the CPU.",
            stacklevel=2,
        )
        params["device"] = "cpu"
    estimator = registry[header["class"]](**params)
    for k, v in header["fitted"].items():
        setattr(estimator, k, v)
    if "classes" in header:
        estimator.classes_ = np.asarray(
            header["classes"]["values"], dtype=np.dtype(header["classes"]["dtype"])
        )
    estimator.layout_ = ImageLayout(tuple(header["layout"]))
    estimator.history_ = header["history"]
    estimator._restore_net(load_file(str(path), device="cpu"))
    return estimator
