"""The training engine: a skorch ``NeuralNet`` with skcnn's data path.

skorch runs the loop, callbacks, history and early stopping. What this
subclass changes is only what makes it as fast as a hand-written loop:
batches are slices of preloaded tensors (:class:`skcnn._data.BatchIterator`)
instead of per-sample ``__getitem__`` + collation; mixed precision on CUDA;
per-sample weights in the loss; predictions without autograd.
"""

from __future__ import annotations

import math

import torch
from skorch import NeuralNet
from skorch.dataset import unpack_data

from .._data import BatchIterator, TensorData, to_float_tensor
from .._device import autocast, infer_batches, resolve_precision

_CPU_FLOAT_COPY_BYTES = 1 << 30
# Prediction batches: up to 1024 images (few batches, little overhead), but
# no more input values than this at the network's own input size (after an
# input adapter's resize): EfficientNet-Lite0 predicting 1024 images of
# 28 px enlarged to 112 px peaked at 4.8 GB.
_INFER_BATCH, _INFER_VALUES = 1024, 1 << 23

__all__ = [
    "DivergedError",
    "NoTrainingBatch",
    "TensorBatchNet",
    "TrainingDivergedError",
]


class DivergedError(RuntimeError):
    """The loss became NaN or infinite during training."""

    def __init__(self, epoch, prefix):
        super().__init__(f"{prefix} became NaN or infinite in epoch {epoch}")
        self.epoch, self.prefix = epoch, prefix


class NoTrainingBatch(RuntimeError):
    """An epoch's training pass had no batch: nothing would be learned."""


class TrainingDivergedError(ValueError):
    """Raised by ``fit`` when the loss diverged. ``kept_weights`` says whether
    the estimator was left fitted with the last good weights."""

    def __init__(self, message, kept_weights):
        super().__init__(message)
        self.kept_weights = kept_weights


class TensorBatchNet(NeuralNet):
    """skorch NeuralNet fed by :class:`BatchIterator`, with AMP and sample weights."""

    def __init__(
        self,
        *args,
        amp_dtype=None,
        augment=None,
        shuffle_seed=0,
        channels_last=False,
        num_workers=0,
        mix=None,
        label_smoothing=0.0,
        precision="auto",
        clip_grad_norm=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.clip_grad_norm = clip_grad_norm
        self.precision = precision
        self.mix = mix
        self.label_smoothing = label_smoothing
        self.amp_dtype = amp_dtype
        self.augment = augment
        self.shuffle_seed = shuffle_seed
        self.channels_last = channels_last
        self.num_workers = num_workers

    # -- data --------------------------------------------------------------
    def get_dataset(self, X, y=None):
        if isinstance(X, torch.utils.data.Dataset):
            return X
        return TensorData(X, y)

    def get_iterator(self, dataset, training=False):
        if not hasattr(self, "generator_"):
            self.generator_ = torch.Generator().manual_seed(int(self.shuffle_seed))
        if (
            training
            and isinstance(dataset, TensorData)
            and dataset.X.dtype == torch.uint8
            and torch.device(self.device).type == "cpu"
            and dataset.X.numel() * 4 <= _CPU_FLOAT_COPY_BYTES
        ):
            # On the CPU, scale small uint8 sets once instead of every batch
            # (on a GPU they stay uint8: 4x less memory and transfer).
            dataset = TensorData(to_float_tensor(dataset.X), dataset.y, dataset.weights)
        batch_size = (
            self.batch_size
            if training
            else max(self.batch_size, _infer_batch(self.module_, dataset))
        )
        return BatchIterator(
            dataset,
            len(dataset) if batch_size == -1 else batch_size,
            shuffle=training,
            device=self.device,
            generator=self.generator_,
            transform=self.augment if training else None,
            drop_last_single=training,
            num_workers=self.num_workers,
            channels_last=self.channels_last,
        )

    # -- per-epoch work kept off the per-batch path ---------------------------
    def on_epoch_begin(self, net, **kwargs):
        super().on_epoch_begin(net, **kwargs)
        self._mode = None  # re-apply train(): freezing callbacks may change it

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        # skorch's loop calls loss.item() after every batch, which forces a GPU
        # sync per batch. Keep the (detached) losses on the device and write
        # them into the history's batch rows once the epoch's pass is over;
        # epoch-level callbacks (loss scoring, early stopping) read them then.
        if iterator is None:
            return
        losses, sizes = [], []
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            losses.append(step["loss"])
            sizes.append(
                len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)
            )
            self.notify("on_batch_end", batch=batch, training=training, **step)
        if training and not losses:
            raise NoTrainingBatch
        if losses:
            rows = self.history[-1]["batches"][-len(losses) :]
            values = torch.stack([loss.float() for loss in losses]).tolist()
            if not all(map(math.isfinite, values)):
                raise DivergedError(len(self.history), prefix + " loss")
            if training and not self._state_is_finite():
                raise DivergedError(
                    len(self.history), "weights or batch-norm statistics"
                )
            for row, value, size in zip(rows, values, sizes):
                row[prefix + "_loss"] = value
                row[prefix + "_batch_size"] = size
        self.history.record(prefix + "_batch_count", len(losses))

    def _state_is_finite(self):
        """Weights and buffers (batch-norm statistics) all finite: one sum per
        tensor and one synchronisation per epoch."""
        sums = [
            t.detach().float().sum()
            for t in self.module_.state_dict().values()
            if t.is_floating_point()
        ]
        return bool(torch.isfinite(torch.stack(sums)).all())

    def _set_training(self, training=True):
        # module.train() walks every submodule; do it only when the mode changes.
        if getattr(self, "_mode", None) is training:
            return
        super()._set_training(training)
        self._mode = training

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_mode", None)
        return state

    def __setstate__(self, state):
        on_gpu = str(state.get("device")).startswith("cuda")
        super().__setstate__(state)  # skorch moves to the CPU if CUDA is missing
        if on_gpu and not str(self.device).startswith("cuda"):
            # Mixed precision was chosen for the GPU: re-choose for the CPU
            # ("auto" and fp16 become float32), without fp16's grad scaler.
            precision = getattr(self, "precision", "auto")
            self.amp_dtype = resolve_precision(precision, "cpu", strict=False)
            self.__dict__.pop("grad_scaler_", None)

    # -- steps -------------------------------------------------------------
    def infer(self, x, **fit_params):
        with autocast(self.device, self.amp_dtype):
            return self.module_(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y, weights = y_true if isinstance(y_true, (tuple, list)) else (y_true, None)
        y_pred = y_pred.float()
        if self.label_smoothing and isinstance(
            self.criterion_, torch.nn.BCEWithLogitsLoss
        ):
            # binary / multilabel: targets pulled towards 0.5 (the softmax
            # case is CrossEntropyLoss's own label_smoothing)
            y = y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        if weights is None:
            # The criterion's own fused mean: nothing extra per batch.
            return self.criterion_(y_pred, y)
        self.criterion_.reduction = "none"
        try:
            loss = self.criterion_(y_pred, y)
        finally:
            self.criterion_.reduction = "mean"
        if loss.ndim > 1:
            loss = loss.mean(dim=tuple(range(1, loss.ndim)))
        return (loss * weights).mean()

    def _scaler(self):
        if self.amp_dtype is not torch.float16:
            return None
        if not hasattr(self, "grad_scaler_"):
            self.grad_scaler_ = torch.amp.GradScaler(torch.device(self.device).type)
        return self.grad_scaler_

    def _optimizer_objects(self):
        return [getattr(self, name + "_") for name in self._optimizers]

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        if self.mix is None:
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        else:
            # mixup / CutMix: the loss against both sides' targets (and weights)
            Xi, perm, lam = self.mix(Xi)
            y_pred = self.infer(Xi, **fit_params)
            other = (
                tuple(None if t is None else t[perm] for t in yi)
                if isinstance(yi, (tuple, list))
                else yi[perm]
            )
            loss = lam * self.get_loss(y_pred, yi, X=Xi, training=True) + (
                1 - lam
            ) * self.get_loss(y_pred, other, X=Xi, training=True)
        scaler = self._scaler()
        (scaler.scale(loss) if scaler is not None else loss).backward()
        clip = getattr(self, "clip_grad_norm", None)  # None in older pickles
        if clip is not None:
            if scaler is not None:
                for optimizer in self._optimizer_objects():
                    scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.module_.parameters(), clip)
        # Detached so scoring callbacks that cache predictions hold no graph.
        return {"loss": loss.detach(), "y_pred": y_pred.detach()}

    def _step_optimizer(self, step_fn):
        scaler = self._scaler()
        if scaler is None:
            return super()._step_optimizer(step_fn)
        if step_fn is not None:
            step_fn()
        for optimizer in self._optimizer_objects():
            scaler.step(optimizer)
        scaler.update()

    # -- prediction ----------------------------------------------------------
    def predict_logits(self, data, transform=None):
        """Raw network outputs for a TensorData / ImagePaths, under
        inference_mode; ``transform`` augments each batch (test-time views)."""
        batches = self.get_iterator(data, training=False)
        batches.transform = transform
        return infer_batches(
            self.module_, batches, device=self.device, amp_dtype=self.amp_dtype
        )


def _infer_batch(module, dataset):
    """Images per prediction batch: :data:`_INFER_BATCH`, fewer when the
    network's input (the images, or an input adapter's resize of them) is
    large."""
    from ..models.adapter import InputAdapter

    if isinstance(dataset, TensorData):
        shape = tuple(dataset.X.shape[1:])
    else:  # image files: the layout they are read to
        shape = tuple(getattr(getattr(dataset, "layout", None), "shape", ()) or ())
    if not shape:
        return _INFER_BATCH
    values = math.prod(shape)
    adapter = next((m for m in module.modules() if isinstance(m, InputAdapter)), None)
    if adapter is not None and len(shape) == 3:
        channels = adapter.repeat or shape[0]
        values = channels * math.prod(adapter.output_size(shape[1:]))
    return int(max(1, min(_INFER_BATCH, _INFER_VALUES // max(values, 1))))
