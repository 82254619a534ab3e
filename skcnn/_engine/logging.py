"""What a fit prints: the verbose epoch table and the progress bar.

Both are skorch callbacks. The table is skorch's ``PrintLog`` labelled with
the estimator's parameters (so that the fits of a search can be told apart),
without colour codes when the output is not a terminal, and always with the
last epoch (early stopping ends an epoch before ``PrintLog`` sees it).
"""

from __future__ import annotations

import re
import sys
import time

from skorch.callbacks import Callback, PrintLog

__all__ = ["EpochProgress", "EpochTable", "fit_label", "user_callbacks"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# Parameters that say how a fit reports, not what it trains.
_UNLABELLED = {"callbacks", "progress", "verbose"}


def fit_label(estimator, width=80):
    """The estimator's class and non-default parameters, on one line: the
    fits of a search are told apart by it."""
    import inspect

    signature = inspect.signature(type(estimator).__init__).parameters
    changed = [
        f"{k}={v!r}"
        for k, v in estimator.get_params(deep=False).items()
        if k not in _UNLABELLED
        and k in signature
        and repr(v) != repr(signature[k].default)
    ]
    text = f"{type(estimator).__name__}({', '.join(changed)})"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_terminal(stream):
    return bool(getattr(stream, "isatty", lambda: False)())


def _in_notebook():
    return "ipykernel" in sys.modules


def user_callbacks(callbacks):
    """The ``callbacks`` parameter as skorch's ``(name, callback)`` pairs."""
    pairs = []
    for i, item in enumerate(callbacks or ()):
        name, cb = (
            item
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
            else (f"{type(item).__name__}_{i}", item)
        )
        if isinstance(cb, type) or not isinstance(cb, Callback):
            raise TypeError(
                "callbacks must hold skorch callback instances (e.g. "
                "skorch.callbacks.LRScheduler(...)) or (name, callback) pairs; got "
                f"{item!r}."
            )
        pairs.append((name, cb))
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"callbacks have repeated names {names}; name each once.")
    return pairs


class EpochTable(PrintLog):
    """skorch's epoch table, labelled, plain in files, last epoch included."""

    def __init__(self, label=None, sink=print, colour=None, **kwargs):
        super().__init__(sink=sink, **kwargs)
        self.label = label
        self.colour = colour

    def initialize(self):
        super().initialize()
        self.colour_ = _is_terminal(sys.stdout) if self.colour is None else self.colour
        self.printed_ = 0
        return self

    def _sink(self, text, verbose):
        if not self.colour_:
            text = _ANSI.sub("", text)
        super()._sink(text, verbose)

    def on_train_begin(self, net, **kwargs):
        self.first_iteration_ = True
        if self.label:
            self._sink(self.label, net.verbose)

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        self.printed_ = len(net.history)

    def on_train_end(self, net, **kwargs):
        if len(net.history) and self.printed_ < len(net.history):
            self.on_epoch_end(net)


class EpochProgress(Callback):
    """One progress bar per fit: epochs, losses and time left.

    A tqdm bar on a terminal or in a notebook; in a log file, one plain line
    per epoch (no carriage returns).
    """

    def __init__(self, label=None, file=None):
        self.label = label
        self.file = file

    def initialize(self):
        self.bar_ = None
        return self

    def _stream(self):
        return self.file if self.file is not None else sys.stderr

    def on_train_begin(self, net, **kwargs):
        self.start_ = time.perf_counter()
        self.first_ = len(net.history)
        self.total_ = int(net.max_epochs)
        self.seen_ = 0
        stream = self._stream()
        if _in_notebook() or _is_terminal(stream):
            from tqdm.auto import tqdm

            self.bar_ = tqdm(
                total=self.total_,
                desc=self.label,
                unit="epoch",
                file=stream,
                leave=True,
            )

    def _losses(self, row):
        return {
            k: row[k] for k in ("train_loss", "valid_loss", "valid_acc") if k in row
        }

    def on_epoch_end(self, net, **kwargs):
        done = len(net.history) - self.first_
        if done <= self.seen_:
            return
        step, self.seen_ = done - self.seen_, done
        losses = self._losses(net.history[-1])
        if self.bar_ is not None:
            self.bar_.set_postfix(
                {k: f"{v:.4f}" for k, v in losses.items()}, refresh=False
            )
            self.bar_.update(step)
            return
        elapsed = time.perf_counter() - self.start_
        left = elapsed / done * max(0, self.total_ - done)
        text = " ".join(f"{k} {v:.4f}" for k, v in losses.items())
        prefix = f"{self.label}: " if self.label else ""
        print(
            f"{prefix}epoch {done}/{self.total_} {text} ({elapsed:.1f}s, at most "
            f"{left:.0f}s left)",
            file=self._stream(),
            flush=True,
        )

    def on_train_end(self, net, **kwargs):
        self.on_epoch_end(net)  # the epoch early stopping ended
        if self.bar_ is not None:
            self.bar_.close()
            self.bar_ = None
