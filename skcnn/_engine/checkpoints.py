"""Checkpoints: the callback that writes them, their keys, resuming from them."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import warnings
from pathlib import Path

import torch
from skorch.callbacks import Checkpoint

from .._files import atomic_write

__all__ = [
    "BestCheckpoint",
    "checkpoint_key",
    "resume_best",
    "strip_compile_prefix",
    "unique_run_name",
    "unwrap_compiled",
]


_RUNS = itertools.count()


def unique_run_name():
    """A folder name no other fit (thread, process or machine run) will take."""
    return f"fit-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_RUNS)}"


class BestCheckpoint(Checkpoint):
    """skorch's Checkpoint, keyed and written safely.

    The best weights go to ``params.pt`` in this fit's own folder, through a
    temporary file and an atomic rename (a failed write raises instead of
    leaving a truncated file); ``meta.json`` beside them records ``key`` (what
    the weights were trained on and for) and the best monitored loss, so that
    a warm start resumes only from a matching, best checkpoint.
    """

    def __init__(self, dirname, key, monitor="valid_loss_best"):
        super().__init__(
            dirname=dirname,
            monitor=monitor,
            f_optimizer=None,
            f_criterion=None,
            f_history=None,
            load_best=False,
        )
        self.key = key

    def initialize(self):
        # skorch's makes the folder here; this one makes it at the first
        # save, so building a net (skcnn.load, a fit that never improves)
        # creates no folder.
        self._validate_filenames()
        return self

    def save_model(self, net):
        folder = Path(self.dirname)
        folder.mkdir(parents=True, exist_ok=True)
        module = unwrap_compiled(net.module_)
        loss_key = self.monitor.removesuffix("_best")
        meta = {
            "key": self.key,
            "epoch": len(net.history),
            "loss": float(net.history[-1, loss_key]),
        }
        atomic_write(
            folder / "params.pt",
            lambda f: torch.save(module.state_dict(), f),
            what="checkpoint",
        )
        atomic_write(
            folder / "meta.json",
            lambda f: f.write(json.dumps(meta).encode()),
            what="checkpoint",
        )


def strip_compile_prefix(state):
    """Weights saved from a ``torch.compile``-wrapped module carry an
    ``_orig_mod.`` prefix; the plain module's names have none."""
    prefix = "_orig_mod."
    return {
        (k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()
    }


def unwrap_compiled(module):
    """The plain module of a ``torch.compile`` wrapper (or the module itself)."""
    return getattr(module, "_orig_mod", module)


def checkpoint_key(params_key, train):
    """What a checkpoint's weights were trained on and for: the estimator's
    class, parameters, layout and classes (``params_key``) and the data."""
    h = hashlib.sha256()
    h.update(params_key.encode())
    h.update(train.fingerprint().encode())
    return h.hexdigest()


def resume_best(checkpoint_dir, key, module):
    """Load into ``module`` the best checkpoint under ``checkpoint_dir`` written
    with ``key``; its path, or None when there is none."""
    best = None
    for meta_file in Path(checkpoint_dir).glob("fit-*/meta.json"):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError, RecursionError):
            warnings.warn(
                f"Skipping the unreadable checkpoint record {meta_file}.",
                UserWarning,
                stacklevel=6,
            )
            continue
        if meta.get("key") == key and (best is None or meta["loss"] < best[0]):
            best = (meta["loss"], meta_file.with_name("params.pt"))
    if best is None:
        return None
    path = best[1]
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        module.load_state_dict(strip_compile_prefix(state))
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise ValueError(
            f"The checkpoint {path} cannot be loaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'corrupt file'}); "
            "delete it or pass another checkpoint_dir."
        ) from None
    return str(path)
