"""One fit of a built net: per-fit settings, Ctrl-C, divergence, memory."""

from __future__ import annotations

import contextlib
import gc
import math
import warnings

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from skorch.helper import predefined_split

from .._device import cudnn_benchmark, intra_op_threads
from .callbacks import graceful_interrupt
from .net import DivergedError, NoTrainingBatch, TrainingDivergedError

__all__ = ["configure", "fit_context", "fit_once", "history_summary", "split"]


@contextlib.contextmanager
def fit_context(device, seed, threads):
    """Where a fit runs: its own RNG state seeded with ``seed`` (the caller's
    is restored), cudnn autotuning on CUDA, ``threads`` CPU threads; the CUDA
    cache that earlier fits (other CV folds) left freed first."""
    on_cuda = device.startswith("cuda")
    if on_cuda:
        gc.collect()
        torch.cuda.empty_cache()
    devices = [torch.device(device).index or 0] if on_cuda else []
    with (
        torch.random.fork_rng(devices=devices),
        cudnn_benchmark(device),
        intra_op_threads(threads),
    ):
        torch.manual_seed(seed)
        yield


def split(data, y_enc, plan):
    """The plan's internal validation split (stratified for classifiers):
    (train, valid), valid None when there is none."""
    frac = plan.validation_fraction
    n = len(data)
    if not frac:
        return data, None
    n_valid = math.ceil(frac * n)
    if n_valid < 1 or n - n_valid < 2:
        warnings.warn(
            f"validation_fraction={frac} leaves too few of the {n} samples to split; "
            "training without an internal validation set.",
            UserWarning,
            stacklevel=5,
        )
        return data, None
    stratify = None
    if plan.task in ("binary", "multiclass"):
        counts = np.bincount(np.asarray(y_enc).ravel().astype(int))
        counts = counts[counts > 0]
        if counts.min() >= 2 and n_valid >= len(counts) and n - n_valid >= len(counts):
            stratify = np.asarray(y_enc).ravel()
        else:
            warnings.warn(
                "Some classes have too few samples for a stratified validation split "
                f"of {n_valid} samples; using a random split instead.",
                UserWarning,
                stacklevel=5,
            )
    idx_train, idx_valid = train_test_split(
        np.arange(n),
        test_size=n_valid,
        random_state=plan.seed % (2**32),
        stratify=stratify,
    )
    return data.subset(idx_train), data.subset(idx_valid)


def configure(net, plan, *, has_valid, checkpoint_key=None):
    """This fit's settings on an initialized net, through skorch's
    ``set_params``: the side early stopping, a plateau schedule and the
    checkpoint watch (validation when there is a validation set, else
    training) and the checkpoint's key."""
    side = "valid" if has_valid else "train"
    callbacks = dict(net.callbacks_)
    wanted = []
    if "early_stopping" in callbacks:
        wanted.append(("early_stopping", "monitor", plan.monitor_key(side)))
    schedule = callbacks.get("lr_schedule")
    if schedule is not None and schedule.monitor is not None:
        wanted.append(("lr_schedule", "monitor", f"{side}_loss"))
    if "checkpoint" in callbacks:
        wanted.append(("checkpoint", "monitor", f"{side}_loss_best"))
        wanted.append(("checkpoint", "key", checkpoint_key))
    params = {
        f"callbacks__{name}__{attr}": value
        for name, attr, value in wanted
        if getattr(callbacks[name], attr) != value
    }
    if params:
        net.set_params(**params)


def _out_of_memory(exc):
    """An allocator failure: Python's, CUDA's or torch's CPU allocator's."""
    return isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or (
        "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower()
    )


def fit_once(net, plan, train, valid, *, epochs, name, describe):
    """Train ``net`` for up to ``epochs`` epochs on ``train`` (early stopping
    on ``valid``). Returns True when Ctrl-C ended it. ``name`` and
    ``describe`` (the input) go into the error messages."""
    net.train_split = predefined_split(valid)
    stopper = dict(net.callbacks_)["stop_on_interrupt"]
    stopper.pressed = False
    try:
        with graceful_interrupt(stopper, verbose=plan.verbose):
            net.partial_fit(train, epochs=epochs)
    except DivergedError as exc:
        _diverged(net, plan, exc)
    except NoTrainingBatch:
        raise ValueError(
            f"The fit would make no optimizer step: {len(train)} training "
            f"sample(s) with batch_size={plan.batch_size} leave no batch to "
            "train on (a last batch of one sample is skipped). Pass more "
            "samples, a smaller validation_fraction or batch_size=-1."
        ) from None
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        raise MemoryError(
            f"{name} ran out of memory on {plan.device} training with "
            f"batch_size={plan.batch_size} on {describe}: pass a smaller "
            f"batch_size (e.g. {max(1, plan.batch_size // 4)}), or smaller "
            f"images. ({str(exc).splitlines()[0][:200]})"
        ) from None
    finally:
        # The validation split must not travel with the pickled model.
        net.train_split = None
    return stopper.pressed


def _diverged(net, plan, exc):
    """Stop on a NaN/inf loss with the last good weights, or none at all."""
    stopper = dict(net.callbacks_).get("early_stopping")
    best = getattr(stopper, "best_model_weights_", None)
    advice = (
        f"Lower lr (now {plan.lr!r}), scale the inputs to about [0, 1] and "
        "regression targets to unit scale."
    )
    if best is None:
        raise TrainingDivergedError(
            f"Training diverged: the {exc}. {advice} No epoch had a finite "
            "validation loss before, so no weights are kept: the estimator is "
            "left as it was before this fit.",
            kept_weights=False,
        ) from None
    net.module_.load_state_dict(best)
    del net.history[exc.epoch - 1 :]
    raise TrainingDivergedError(
        f"Training diverged: the {exc}. {advice} The estimator keeps the "
        f"weights of epoch {stopper.best_epoch_}, the best before it "
        "(interrupted_=True).",
        kept_weights=True,
    ) from None


def history_summary(net):
    """(history without batch rows, epochs run, best epoch) of a net."""
    hist = [{k: v for k, v in h.items() if k != "batches"} for h in net.history]
    stopper = dict(net.callbacks_).get("early_stopping")
    if getattr(stopper, "best_epoch_", None) is not None and hist:
        # the epoch whose weights early stopping kept (its monitor's best)
        return hist, len(hist), min(int(stopper.best_epoch_), len(hist))
    key = "valid_loss" if any("valid_loss" in h for h in hist) else "train_loss"
    losses = [h.get(key, np.inf) for h in hist]
    return hist, len(hist), int(np.argmin(losses)) + 1 if losses else 0
