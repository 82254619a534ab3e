"""skcnn's own training callbacks: metrics, smoothing, Ctrl-C."""

from __future__ import annotations

import contextlib
import math
import signal
import threading

import torch
from skorch.callbacks import Callback, Freezer, Unfreezer

from ..models.finetune import ParamNames

__all__ = [
    "EpochAccuracy",
    "RankedAccuracy",
    "SmoothedLoss",
    "StopOnInterrupt",
    "finetune_callbacks",
    "graceful_interrupt",
]


class StopOnInterrupt(Callback):
    """Ends training after the current batch once Ctrl-C has been pressed.

    ``pressed`` stays True once Ctrl-C was pressed during the fit (also when
    a second Ctrl-C aborted the batch), so the estimator can tell a user's
    interrupt from early stopping (which skorch also signals with
    KeyboardInterrupt).
    """

    def __init__(self):
        self.requested = False
        self.pressed = False

    def on_batch_end(self, net, **kwargs):
        if self.requested:
            self.requested = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def graceful_interrupt(stopper, verbose=False):
    """While training, the first Ctrl-C asks ``stopper`` to stop after the
    batch (skorch then ends training normally); a second one aborts at once.

    SIGTERM is handled the same way when the process made it raise
    KeyboardInterrupt (``signal.signal(SIGTERM, signal.default_int_handler)``,
    as ``skcnn compare`` does, so that ``kill PID`` keeps the finished work):
    raised inside skorch's loop, a KeyboardInterrupt would only end the fit
    early, unnoticed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signal.SIGINT: signal.getsignal(signal.SIGINT),
        signal.SIGTERM: signal.getsignal(signal.SIGTERM),
    }
    # The process chose to ignore Ctrl-C (e.g. a background job): keep it so.
    handled = [
        s
        for s, h in previous.items()
        if (
            h not in (signal.SIG_IGN, None)
            if s == signal.SIGINT
            else h is signal.default_int_handler
        )
    ]

    def handler(signum, frame):
        stopper.pressed = True
        if stopper.requested:
            for s in handled:
                signal.signal(s, previous[s])
            raise KeyboardInterrupt
        stopper.requested = True
        if verbose:
            print(
                "Interrupted: stopping after the current batch (Ctrl-C again to abort)."
            )

    for s in handled:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s in handled:
            signal.signal(s, previous[s])


class EpochAccuracy(Callback):
    """Per-epoch training / validation accuracy, computed once per epoch.

    Each batch only keeps references to its (detached) outputs and targets;
    the comparison runs on the device at the end of the epoch, with one
    synchronisation, instead of NumPy scoring of every cached prediction as
    in skorch's ``EpochScoring``.
    """

    def __init__(self, task):
        self.task = task

    def on_epoch_begin(self, net, **kwargs):
        self.seen_ = {True: [], False: []}

    def on_batch_end(self, net, batch, training, y_pred=None, **kwargs):
        y = batch[1][0] if isinstance(batch[1], (tuple, list)) else batch[1]
        self.seen_[training].append((y_pred, y))

    def on_epoch_end(self, net, **kwargs):
        for training, seen in self.seen_.items():
            if not seen:
                continue
            y_pred = torch.cat([p for p, _ in seen])
            y = torch.cat([t for _, t in seen])
            if self.task == "multiclass":
                correct = y_pred.argmax(1) == y
            else:
                correct = ((y_pred > 0) == (y > 0.5)).all(1)
            name = "train_acc" if training else "valid_acc"
            net.history.record(name, correct.float().mean().item())
        self.seen_ = {True: [], False: []}


class SmoothedLoss(Callback):
    """An exponential moving average of each epoch's losses, for early stopping.

    Records ``train_loss_smooth`` (and ``valid_loss_smooth`` when there is a
    validation set): ``s_t = (1 - w) * loss_t + w * s_(t-1)``, so one noisy
    epoch of a small or augmented validation set neither ends training nor
    becomes the "best" epoch.
    """

    def __init__(self, weight=0.6):
        self.weight = weight

    def on_epoch_end(self, net, **kwargs):
        history = net.history
        for key in ("train_loss", "valid_loss"):
            if key not in history[-1]:
                continue
            value = float(history[-1, key])
            before = history[-2].get(f"{key}_smooth") if len(history) > 1 else None
            if before is not None and math.isfinite(before):
                value = (1 - self.weight) * value + self.weight * before
            history.record(f"{key}_smooth", value)


class RankedAccuracy(Callback):
    """Accuracy with ties going to the lower loss, for early stopping.

    Records ``valid_acc_rank`` (and ``train_acc_rank``): the accuracy minus
    1e-6 x the loss. On a small validation set the accuracy saturates within
    a few epochs; plain accuracy would then keep the first epoch that reached
    it, however high its loss. Accuracies of fewer than 10^5 samples differ
    by more than 1e-5, so the loss only orders equal accuracies (losses below
    10).
    """

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        for side in ("train", "valid"):
            if f"{side}_acc" in row and f"{side}_loss" in row:
                rank = row[f"{side}_acc"] - 1e-6 * min(float(row[f"{side}_loss"]), 10.0)
                net.history.record(f"{side}_acc_rank", rank)


def finetune_callbacks(backbone_prefix, trainable, head_epochs):
    """The head alone on a frozen base (everything under ``backbone_prefix``)
    for ``head_epochs`` epochs, then the parameters named in ``trainable``
    unfrozen (epochs count from 1; a resumed fit is past both)."""
    return [
        ("freeze_base", Freezer(ParamNames(prefix=backbone_prefix), at=1)),
        ("unfreeze", Unfreezer(ParamNames(trainable), at=head_epochs + 1)),
    ]
