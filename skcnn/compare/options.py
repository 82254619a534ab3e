"""What a comparison checks before its first row, and how it reaches a Dask
cluster: the run's options, in one place."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from .data import MAX_IMAGE_SIZE
from .zoo import _shift_transforms

__all__ = ["as_list", "check_options", "dask_backend", "flattered", "warn_flattered"]


def dask_backend(address):
    """joblib's dask backend on the cluster at ``address``."""
    try:
        import distributed
    except ImportError:
        raise ValueError(
            "dask needs dask.distributed: pip install 'skcnn[dask]'."
        ) from None
    from joblib import parallel_backend

    try:
        client = distributed.Client(address, timeout=20)
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"Cannot reach the Dask scheduler at {address!r}: {exc}"
        ) from None
    stack = contextlib.ExitStack()
    stack.enter_context(client)
    stack.enter_context(parallel_backend("dask"))
    return stack


def as_list(external):
    """``external`` as a list of sets (None: none given)."""
    if external is None:
        return []
    if isinstance(external, (str, Path)):
        return [external]
    return list(external)


def flattered(sets, built):
    """name -> the shifts of the ``shifted`` external set that the row trains
    with (its external scores there are flattered); empty without that set."""
    if not any(s.name == "shifted validation" for s in sets):
        return {}
    return {
        b.name: t
        for b in built
        if b.estimator is not None and (t := _shift_transforms(b.estimator, b.grid))
    }


def warn_flattered(found):
    """Warn about the rows that train with the shifts of the ``shifted``
    external set (``found``: what :func:`flattered` found)."""
    if found:
        which = "; ".join(f"{n} ({', '.join(t)})" for n, t in found.items())
        warnings.warn(
            f"{which} train with transforms that made the external set: their "
            "external scores are flattered. Pass --external FOLDER with another "
            "population.",
            UserWarning,
            stacklevel=3,
        )


def _check_weights_file(weights):
    """The DenseNet-121 weights load into the architecture, before any row."""
    from torchvision.models import densenet121

    from ..pretrained import load_state_dict, remap_legacy_keys

    state = remap_legacy_keys(load_state_dict(weights))
    try:
        densenet121().load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"The weights file {str(weights)!r} does not fit DenseNet-121 (--weights "
            f"takes torchvision's densenet121 state dict): {' '.join(str(exc).split())[:300]}"
        ) from None


def check_options(*, out, device, weights, image_size, cv, budget, resume):
    """Everything a run needs, checked before the first model trains."""
    from .._device import resolve_device

    resolve_device(device)
    if budget is not None and (
        isinstance(budget, bool)
        or not isinstance(budget, (int, float))
        or not np.isfinite(budget)
        or budget <= 0
    ):
        raise ValueError(
            f"budget must be a positive number of seconds or None (no budget); got {budget!r}."
        )
    if resume and out is None:
        raise ValueError("resume needs out: the folder of the run to continue.")
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
        raise ValueError(f"cv must be an int >= 2 (CV folds); got {cv!r}.")
    if image_size is not None and (
        isinstance(image_size, bool)
        or not isinstance(image_size, int)
        or not 1 <= image_size <= MAX_IMAGE_SIZE
    ):
        raise ValueError(
            f"image_size must be an int in [1, {MAX_IMAGE_SIZE}]; got {image_size!r}."
        )
    if weights is not None:
        if not Path(weights).is_file():
            raise ValueError(f"The weights file {str(weights)!r} does not exist.")
        _check_weights_file(weights)
    if out is not None:
        out = Path(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".skcnn-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ValueError(
                f"Cannot write results to {str(out)!r}: {exc.strerror or exc}."
            ) from None
