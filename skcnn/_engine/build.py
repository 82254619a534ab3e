"""A skorch net from a TrainingPlan and a torch module."""

from __future__ import annotations

import os

import torch
from skorch.callbacks import EarlyStopping
from skorch.utils import noop
from torch import nn

from .._device import eval_mode
from .callbacks import EpochAccuracy, RankedAccuracy, SmoothedLoss, StopOnInterrupt
from .checkpoints import BestCheckpoint, unique_run_name
from .logging import EpochProgress, EpochTable, user_callbacks
from .net import TensorBatchNet
from .recipe import MixBatch, make_lr_scheduler

__all__ = ["build_net", "check_batch_norm_batches", "probe"]


def _callbacks(plan, extra):
    """skcnn's callbacks for the plan, then ``extra`` (the estimator's), then
    the user's. Early stopping, the plateau schedule and the checkpoint watch
    the validation side; ``run.configure`` moves them to the training side
    for a fit without validation set."""
    callbacks = []
    if plan.task != "regression":
        callbacks.append(("accuracy", EpochAccuracy(plan.task)))
    if plan.monitor is not None:
        if plan.monitor == "smoothed_loss":
            callbacks.append(("smoothed_loss", SmoothedLoss()))
        if plan.monitor == "accuracy":
            callbacks.append(("ranked_accuracy", RankedAccuracy()))
        callbacks.append(
            (
                "early_stopping",
                EarlyStopping(
                    monitor=plan.monitor_key("valid"),
                    patience=plan.patience,
                    threshold=plan.tol,
                    threshold_mode="abs",
                    lower_is_better=plan.lower_is_better,
                    load_best=True,
                    sink=print if plan.verbose else noop,
                ),
            )
        )
    if plan.checkpoint_dir is not None:
        # A folder of its own per fit: parallel search jobs never collide.
        folder = os.path.join(plan.checkpoint_dir, unique_run_name())
        callbacks.append(("checkpoint", BestCheckpoint(folder, key=None)))
    callbacks.append(("stop_on_interrupt", StopOnInterrupt()))
    callbacks += extra
    if plan.lr_schedule is not None:
        callbacks.append(
            (
                "lr_schedule",
                make_lr_scheduler(
                    plan.lr_schedule,
                    plan.schedule_span,
                    plan.warmup_epochs,
                    "valid_loss",
                ),
            )
        )
    if plan.progress:
        callbacks.append(("progress", EpochProgress(plan.short_label)))
    return callbacks + user_callbacks(plan.callbacks)


def build_net(plan, module, *, extra_callbacks=()):
    """The skorch net that trains ``module`` as ``plan`` says (not initialized)."""
    if plan.channels_last:
        module = module.to(memory_format=torch.channels_last)
    mix = plan.mixup or plan.cutmix
    return TensorBatchNet(
        module=module,
        criterion=plan.criterion,
        optimizer=plan.optimizer,
        lr=plan.lr,
        max_epochs=plan.max_epochs,
        batch_size=plan.batch_size,
        train_split=None,
        callbacks=_callbacks(plan, list(extra_callbacks)),
        predict_nonlinearity=None,
        device=plan.device,
        compile=plan.compile,
        verbose=int(plan.verbose),
        # skorch builds its epoch table even when silent; drop it then.
        callbacks__print_log=EpochTable(plan.label) if plan.verbose else None,
        shuffle_seed=plan.seed,
        mix=MixBatch(plan.mixup, plan.cutmix, plan.seed + 2) if mix else None,
        **plan.net_settings(),
        **{f"criterion__{k}": v for k, v in plan.criterion_kwargs.items()},
        **{f"optimizer__{k}": v for k, v in plan.optimizer_kwargs.items()},
    )


def check_batch_norm_batches(module, batch_size, n_train, remedy=""):
    """Batch norm cannot train on one-sample batches: say so before training.
    ``remedy``: the estimator's own way around it (e.g. "batch_norm=False"),
    said after the general one."""
    has_bn = any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()
    )
    if has_bn and (batch_size == 1 or n_train == 1):
        raise ValueError(
            f"Batch normalisation cannot train on batches of one sample (batch_size="
            f"{batch_size}, {n_train} training sample(s)); use batch_size >= 2 and "
            f"more samples{', or ' + remedy if remedy else ''}."
        )


def probe(module, layout):
    """One forward pass on a blank sample, so that an architecture that cannot
    take these images fails here with a plain message, not deep in training."""
    try:
        with eval_mode(module), torch.no_grad():
            module(torch.zeros((1, *layout.shape)))
    except RuntimeError as exc:
        raise ValueError(
            f"The network cannot take {layout.describe()}: {str(exc).splitlines()[0]} "
            "Use padding='same', fewer or smaller blocks, or larger images (input_size)."
        ) from None
