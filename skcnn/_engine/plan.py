"""The TrainingPlan: every setting of one fit, resolved once.

:func:`plan_for` is the one function of the engine that reads an
estimator's parameters ("auto" values resolved, defaults of older files
filled in); everything after it (building the net, running the fit) reads
the plan.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from numbers import Integral

import torch

from .._device import resolve_precision, usable_cores
from .._params import MONITORS, OPTIMIZERS
from ..augmentation import Augment, make_augment
from .logging import fit_label
from .recipe import tta_views

__all__ = [
    "RUN_PARAMS",
    "TrainingPlan",
    "auto_batch_size",
    "plan_for",
    "with_batch_size",
]


@dataclass(frozen=True)
class TrainingPlan:
    """How one fit trains (frozen: resolved once per fit)."""

    task: str
    device: str
    precision: str
    amp_dtype: torch.dtype | None
    channels_last: bool
    batch_size: int | str
    seed: int
    max_epochs: int
    lr: float
    optimizer: type
    optimizer_kwargs: dict
    clip_grad_norm: float | None
    criterion: object
    criterion_kwargs: dict
    label_smoothing: float
    # early stopping: None, or the monitor ("loss", "smoothed_loss", "accuracy")
    monitor: str | None
    patience: int
    tol: float
    lr_schedule: str | None
    schedule_span: int
    warmup_epochs: int
    mixup: float
    cutmix: float
    augment: object = field(compare=False)
    validation_fraction: float | None = None
    compile: bool = False
    num_workers: int = 0
    verbose: bool = False
    progress: bool = False
    label: str = ""
    short_label: str = ""
    checkpoint_dir: str | None = None
    # the estimator's class, parameters, layout and classes: with the
    # training data, the key of its checkpoints
    checkpoint_params: str = ""
    callbacks: tuple = ()

    def net_settings(self):
        """The plan's fields that :class:`~skcnn._engine.net.TensorBatchNet`
        takes as they are (:data:`NET_SETTINGS`): a shared parameter the net
        uses is declared in the registry, the signatures, here and in the net,
        and nowhere in between."""
        return {name: getattr(self, name) for name in NET_SETTINGS}

    def monitor_key(self, side):
        """The history key early stopping watches on ``side`` ("train"/"valid")."""
        return MONITORS[self.monitor][0].format(side)

    @property
    def lower_is_better(self):
        return MONITORS[self.monitor][1]


# TrainingPlan fields that the net takes under the same name.
NET_SETTINGS = (
    "amp_dtype",
    "precision",
    "augment",
    "channels_last",
    "num_workers",
    "label_smoothing",
    "clip_grad_norm",
)


# Parameters that change how long or where a network trains, not what it
# is: a checkpoint written under other values of these still fits.
RUN_PARAMS = frozenset(
    {
        "checkpoint_dir",
        "warm_start",
        "verbose",
        "device",
        "num_workers",
        "max_epochs",
        "early_stopping",
        "n_iter_no_change",
        "tol",
        "monitor",
        "precision",
        "compile",
        "callbacks",
        "progress",
        "tta",
        "num_threads",
    }
)


# "auto" batches of volumes hold at most this many input values (64 volumes
# of 40^3 voxels; 64^3 voxels: batches of 16; 128^3: batches of 2).
VOLUME_BATCH_VALUES = 2**22


def auto_batch_size(batch_size, n_train, layout=None):
    """'auto': 64, but at least ~8 steps per epoch on small sets (never below 16),
    so that batch-norm statistics and early stopping see enough updates.
    Volumes: also at most :data:`VOLUME_BATCH_VALUES` values per batch (the
    activations of 3-D convolutions grow with the voxel count), never below 2."""
    if batch_size != "auto":
        return int(batch_size)
    size = int(min(64, max(16, n_train // 8)))
    if layout is not None and layout.ndim == 3:
        values = math.prod(layout.shape)
        size = min(
            size, max(2, 2 ** int(math.log2(max(1, VOLUME_BATCH_VALUES // values))))
        )
    return size


def make_optimizer(spec, kwargs):
    """The optimizer class and its keyword arguments; an optimizer class that
    cannot take the arguments fails here, before any training."""
    if isinstance(spec, str):
        cls, defaults = OPTIMIZERS[spec.lower()]
    else:
        cls, defaults = spec, {}
    kwargs = {**defaults, **kwargs}
    try:
        cls([torch.zeros(1, requires_grad=True)], lr=1e-3, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"optimizer={cls.__name__} cannot take the arguments {sorted(kwargs)} "
            f"(with lr): {exc}"
        ) from None
    return cls, kwargs


def _fused(spec, kwargs, device):
    """Adam and AdamW named by string take their fused step on the CPU and
    on CUDA (one kernel over every parameter instead of a loop of small
    ops): the hand-written digits loop took 0.91x the time with
    ``fused=True``, and a CNNClassifier fit went from 1.08x to 0.98x the time
    of the same-layout hand loop (medians of 5 interleaved pairs, 2 cores;
    benchmarks/bench_overhead.py). An
    optimizer class given by the user, or ``fused`` set in its arguments,
    is left as it is."""
    named = isinstance(spec, str) and spec.lower() in ("adam", "adamw")
    if not named or "fused" in kwargs or "foreach" in kwargs:
        return kwargs
    if torch.device(device).type not in ("cpu", "cuda"):
        return kwargs
    return {**kwargs, "fused": True}


def resolved_monitor(est):
    """The monitor early stopping uses: "auto" resolved."""
    if est.monitor != "auto":
        return est.monitor
    augmented = bool(est.augment) or est.mixup or est.cutmix
    return "smoothed_loss" if augmented else "loss"


def _patience(n_iter_no_change, max_epochs):
    """n_iter_no_change in epochs: an int, or a fraction of max_epochs."""
    if isinstance(n_iter_no_change, Integral):
        return int(n_iter_no_change)
    return max(1, math.ceil(n_iter_no_change * max_epochs))


def _augment(spec, seed):
    augment = make_augment(spec)
    if augment is not None and hasattr(augment, "seed"):
        augment.seed(seed + 1)
    return augment


def with_batch_size(plan, n_train, layout=None):
    """The plan with its batch size resolved for ``n_train`` training samples
    of ``layout``."""
    return replace(plan, batch_size=auto_batch_size(plan.batch_size, n_train, layout))


def _checkpoint_params(est):
    params = sorted(
        (k, repr(v))
        for k, v in est.get_params(deep=False).items()
        if k not in RUN_PARAMS
    )
    return repr((type(est).__name__, params, est.layout_)) + repr(
        getattr(est, "classes_", None)
    )


def plan_for(est, *, seed, batch_size, strict_precision=True):
    """The plan of a fit of ``est`` (fitted state ``task_``, ``layout_`` and
    ``device_`` set): its parameters and its hooks ``_criterion()`` and
    ``_optimizer_kwargs()`` resolved. ``batch_size`` is the net's, or "auto"
    before :func:`with_batch_size` knows the training set."""
    extra = dict(est._optimizer_kwargs())
    groups = extra.pop("param_groups", None)
    opt_cls, opt_kwargs = make_optimizer(
        est.optimizer, {"weight_decay": float(est.weight_decay), **extra}
    )
    if groups is not None:
        opt_kwargs["param_groups"] = groups
    opt_kwargs = _fused(est.optimizer, opt_kwargs, est.device_)
    smoothing = float(getattr(est, "label_smoothing", 0.0))
    multiclass = est.task_ == "multiclass"
    amp = resolve_precision(est.precision, est.device_, strict=strict_precision)
    return TrainingPlan(
        task=est.task_,
        device=est.device_,
        precision=est.precision,
        amp_dtype=amp,
        # weights and batches both channels-last for images: cudnn's and
        # oneDNN's fast NHWC kernels (on CPU, training steps took 0.63-0.80x
        # the time; benchmarks/bench_overhead.py)
        channels_last=len(est.layout_.shape) == 3,
        batch_size=batch_size,
        seed=int(seed),
        max_epochs=int(est.max_epochs),
        lr=float(est.lr),
        optimizer=opt_cls,
        optimizer_kwargs=opt_kwargs,
        clip_grad_norm=getattr(est, "clip_grad_norm", None),
        criterion=est._criterion(),
        criterion_kwargs={"label_smoothing": smoothing}
        if smoothing and multiclass
        else {},
        label_smoothing=0.0 if multiclass else smoothing,
        monitor=resolved_monitor(est) if est.early_stopping else None,
        patience=_patience(est.n_iter_no_change, est.max_epochs),
        tol=float(est.tol),
        lr_schedule=est.lr_schedule,
        schedule_span=int(est.schedule_epochs or est.max_epochs),
        warmup_epochs=int(est.warmup_epochs),
        mixup=float(est.mixup),
        cutmix=float(est.cutmix),
        augment=_augment(est.augment, seed),
        validation_fraction=est.validation_fraction,
        compile=bool(est.compile),
        num_workers=int(est.num_workers),
        verbose=bool(est.verbose),
        progress=bool(est.progress),
        label=fit_label(est, width=200),
        short_label=fit_label(est, width=60),
        checkpoint_dir=None if est.checkpoint_dir is None else str(est.checkpoint_dir),
        checkpoint_params=_checkpoint_params(est) if est.checkpoint_dir else "",
        callbacks=tuple(est.callbacks or ()),
    )


def check_params(est, *, regressor):
    """Checks across the shared parameters of ``est``, before a fit: errors
    for combinations that cannot work, warnings for settings that do nothing."""
    if est.monitor == "accuracy" and regressor:
        raise ValueError(
            "monitor='accuracy' needs a classifier; a regressor's early "
            "stopping monitors 'loss' or 'smoothed_loss'."
        )
    if est.tta:
        # a typo in a view's spec fails here, not at the first predict
        tta_views(est.tta, est.augment, est.random_state)
    span = est.schedule_epochs or est.max_epochs
    if est.warmup_epochs and est.lr_schedule not in ("onecycle", "cosine"):
        warnings.warn(
            f"warmup_epochs={est.warmup_epochs} does nothing with "
            f"lr_schedule={est.lr_schedule!r}; only 'onecycle' and 'cosine' "
            "warm up.",
            UserWarning,
            stacklevel=5,
        )
    elif est.warmup_epochs and est.warmup_epochs >= span:
        warnings.warn(
            f"warmup_epochs={est.warmup_epochs} >= the schedule's {span} epochs: "
            "the learning rate never leaves its warm-up. Lower warmup_epochs or "
            "raise max_epochs (or schedule_epochs).",
            UserWarning,
            stacklevel=5,
        )
    threads, cores = est.num_threads, usable_cores()
    if isinstance(threads, Integral) and threads > cores:
        warnings.warn(
            f"num_threads={threads} exceeds the {cores} usable CPU "
            f"core(s); using {cores}. More threads than cores only slow "
            "a fit down (256 threads on 2 cores ran 60x slower).",
            UserWarning,
            stacklevel=5,
        )


def check_layout(est, layout):
    """Warn about augmentation options the fitted input cannot use."""
    augment = make_augment(est.augment)
    if not isinstance(augment, Augment):
        return
    unused = augment.unused_on(layout.ndim)
    if unused:
        applies = {
            1: "1-D signals; only shift (circular) and noise apply",
            2: "images; dflip flips volumes",
            3: "volumes; shift, zoom, flips, rotation and shear (in the H-W plane), "
            "noise, brightness and contrast apply",
        }[layout.ndim]
        warnings.warn(
            f"augment options {unused} do nothing on {applies}.",
            UserWarning,
            stacklevel=5,
        )
