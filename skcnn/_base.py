"""What skcnn estimators share: data, targets, training, prediction.

An estimator subclass defines ``__init__`` (storing its parameters verbatim)
and ``_build_module(layout, n_outputs)``. ``fit`` validates input, encodes
targets, builds the module and a skorch net (``net_``) and trains it.
"""

from __future__ import annotations

import gc
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted
from skorch.callbacks import Checkpoint, EarlyStopping
from skorch.utils import noop
from torch import nn

from ._data import prepare_images
from ._training import (
    EpochAccuracy,
    FixedSplit,
    SkcnnNet,
    StopOnInterrupt,
    gpu_missing,
    graceful_interrupt,
    resolve_device,
    resolve_precision,
    unique_run_name,
)
from .augmentation import make_augment

__all__ = [
    "BaseNetEstimator",
    "ImageTransformerMixin",
    "NetClassifierMixin",
    "NetRegressorMixin",
]

_OPTIMIZERS = {
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "sgd": (torch.optim.SGD, {"momentum": 0.9}),
    "rmsprop": (torch.optim.RMSprop, {}),
}


def _optimizer(spec):
    if isinstance(spec, str):
        if spec.lower() not in _OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {sorted(_OPTIMIZERS)} or a torch optimizer class; "
                f"got {spec!r}."
            )
        return _OPTIMIZERS[spec.lower()]
    if isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
        return spec, {}
    raise TypeError(
        f"optimizer must be a name or a torch.optim.Optimizer class; got {spec!r}."
    )


class BaseNetEstimator(BaseEstimator):
    """Shared machinery; not for direct use."""

    _task = None  # set on fit: "binary", "multiclass", "multilabel", "regression"

    # -- to be provided by subclasses ---------------------------------------
    def _build_module(
        self, layout, n_outputs, state=None
    ):  # pragma: no cover - abstract
        raise NotImplementedError

    def _extra_callbacks(self, module):
        return []

    def _optimizer_kwargs(self):
        return {}

    # -- parameter checks ------------------------------------------------------
    def _check_training_params(self):
        if not (
            isinstance(self.max_epochs, (int, np.integer)) and self.max_epochs >= 1
        ):
            raise ValueError(
                f"max_epochs must be an int >= 1; got {self.max_epochs!r}."
            )
        if self.batch_size != "auto" and not (
            isinstance(self.batch_size, (int, np.integer))
            and (self.batch_size >= 1 or self.batch_size == -1)
        ):
            raise ValueError(
                f"batch_size must be 'auto' or an int >= 1 (or -1 for all); got {self.batch_size!r}."
            )
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a number > 0; got {self.lr!r}.")
        frac = self.validation_fraction
        if frac is not None and not (0 <= frac < 1):
            raise ValueError(
                f"validation_fraction must be in [0, 1) or None; got {frac!r}."
            )
        if not (
            isinstance(self.n_iter_no_change, (int, np.integer))
            and self.n_iter_no_change >= 1
        ):
            raise ValueError(
                f"n_iter_no_change must be an int >= 1; got {self.n_iter_no_change!r}."
            )
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay!r}.")

    # -- input -----------------------------------------------------------------
    def _prepare_X(self, X, reset):
        """Validate X; return (TensorData or ImagePaths, layout). Nothing else reshapes."""
        data, layout, _ = prepare_images(self, X, reset=reset)
        return data, layout

    # -- fitting -----------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train the network on ``X``, ``y``.

        Parameters
        ----------
        X : array-like or list of image paths
            Images as ``(n, H, W)``, ``(n, H, W, C)``, ``(n, C, H, W)``,
            flattened ``(n, H*W*C)`` with ``image_shape``, or ``(n, L)`` 1-D
            signals; uint8 is scaled to [0, 1].
        y : array-like of shape (n,) or (n, n_outputs)
        sample_weight : array-like of shape (n,), default=None

        Returns
        -------
        self
        """
        warm = self.warm_start and hasattr(self, "net_")
        return self._fit(X, y, sample_weight, epochs=self.max_epochs, reset=not warm)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch, building the network on the first call."""
        reset = not hasattr(self, "net_")
        if reset and classes is not None and self._is_classifier():
            self._partial_classes = np.asarray(classes)
        return self._fit(X, y, sample_weight, epochs=1, reset=reset)

    def _is_classifier(self):
        return isinstance(self, ClassifierMixin)

    def _fit(self, X, y, sample_weight, epochs, reset):
        self._check_training_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        data, layout, y = prepare_images(
            self, X, reset=reset, y=y, y_numeric=not self._is_classifier()
        )
        y_enc = self._encode_y(y, reset=reset)
        weights = self._sample_weights(y, sample_weight, len(y_enc))
        data = data.with_targets(
            torch.as_tensor(y_enc),
            None if weights is None else torch.as_tensor(weights, dtype=torch.float32),
        )

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if reset:
            self.device_ = resolve_device(self.device)
            self.layout_ = layout
        on_cuda = self.device_.startswith("cuda")
        if on_cuda:
            # Free what earlier fits (other CV folds) left in the cache.
            gc.collect()
            torch.cuda.empty_cache()
        devices = [torch.device(self.device_).index or 0] if on_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            train, valid = self._split(data, y_enc, seed)
            if reset:
                module = self._build_module(layout, self._n_outputs())
                _probe(module, layout)
                self.batch_size_ = _auto_batch_size(self.batch_size, len(train))
                self.net_ = self._make_net(module, seed)
                self.net_.initialize()
                if self.warm_start:
                    self._resume_from_checkpoint()
            self.net_.train_split = FixedSplit(valid)
            self._set_monitor(valid is not None)
            self.net_.interrupted_ = False
            stopper = dict(self.net_.callbacks_)["stop_on_interrupt"]
            try:
                with graceful_interrupt(stopper, verbose=self.verbose):
                    self.net_.partial_fit(train, epochs=epochs)
            finally:
                # The validation split must not travel with the pickled model.
                self.net_.train_split = None
        self.interrupted_ = bool(self.net_.interrupted_)
        self._record_history()
        return self

    def _resume_from_checkpoint(self):
        """warm_start with checkpoint_dir: start from the newest saved best weights."""
        folder = getattr(self, "checkpoint_dir", None)
        if folder is None:
            return
        found = sorted(
            Path(folder).glob("fit-*/params.pt"), key=lambda p: p.stat().st_mtime
        )
        if not found:
            return
        try:
            self.net_.load_params(f_params=str(found[-1]))
        except RuntimeError as exc:
            raise ValueError(
                f"The checkpoint {found[-1]} does not fit this network: {str(exc).splitlines()[0]}"
            ) from None
        self.resumed_from_ = str(found[-1])

    def _split(self, data, y_enc, seed):
        frac = self.validation_fraction
        n = len(data)
        if not frac:
            return data, None
        n_valid = math.ceil(frac * n)
        if n_valid < 1 or n - n_valid < 2:
            warnings.warn(
                f"validation_fraction={frac} leaves too few of the {n} samples to split; "
                "training without an internal validation set.",
                UserWarning,
                stacklevel=3,
            )
            return data, None
        stratify = None
        if self._task in ("binary", "multiclass"):
            counts = np.bincount(np.asarray(y_enc).ravel().astype(int))
            counts = counts[counts > 0]
            if (
                counts.min() >= 2
                and n_valid >= len(counts)
                and n - n_valid >= len(counts)
            ):
                stratify = np.asarray(y_enc).ravel()
            else:
                warnings.warn(
                    "Some classes have too few samples for a stratified validation split "
                    f"of {n_valid} samples; using a random split instead.",
                    UserWarning,
                    stacklevel=3,
                )
        idx_train, idx_valid = train_test_split(
            np.arange(n),
            test_size=n_valid,
            random_state=seed % (2**32),
            stratify=stratify,
        )
        return data.subset(idx_train), data.subset(idx_valid)

    def _make_net(self, module, seed, strict_precision=True):
        opt_cls, opt_defaults = _optimizer(self.optimizer)
        opt_kwargs = {**opt_defaults, "weight_decay": float(self.weight_decay)}
        opt_kwargs.update(self._optimizer_kwargs())
        callbacks = []
        if self._task != "regression":
            callbacks.append(("accuracy", EpochAccuracy(self._task)))
        if self.early_stopping:
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss",
                        patience=self.n_iter_no_change,
                        load_best=True,
                        sink=print if self.verbose else noop,
                    ),
                )
            )
        checkpoint_dir = getattr(self, "checkpoint_dir", None)
        if checkpoint_dir is not None:
            callbacks.append(("checkpoint", _checkpoint(checkpoint_dir)))
        callbacks.append(("stop_on_interrupt", StopOnInterrupt()))
        callbacks += self._extra_callbacks(module)
        device = self.device_
        precision = getattr(self, "precision", "auto")
        amp = resolve_precision(precision, device, strict=strict_precision)
        if device.startswith("cuda"):
            torch.backends.cudnn.benchmark = True
        channels_last = len(self.layout_.shape) == 3
        if channels_last:
            # Weights and batches both channels-last: cudnn's and oneDNN's fast
            # NHWC kernels (on CPU, training steps took 0.63-0.80x the time;
            # benchmarks/bench_overhead.py).
            module = module.to(memory_format=torch.channels_last)
        if getattr(self, "compile", False):
            module = torch.compile(module)
        return SkcnnNet(
            module=module,
            criterion=self._criterion(),
            optimizer=opt_cls,
            lr=float(self.lr),
            max_epochs=int(self.max_epochs),
            batch_size=self.batch_size_,
            train_split=None,
            callbacks=callbacks,
            predict_nonlinearity=None,
            device=device,
            verbose=int(bool(self.verbose)),
            # skorch builds its epoch table even when silent; drop it then.
            **({} if self.verbose else {"callbacks__print_log": None}),
            amp_dtype=amp,
            augment=self._augment(seed),
            shuffle_seed=seed,
            channels_last=channels_last,
            num_workers=getattr(self, "num_workers", 0),
            **{f"optimizer__{k}": v for k, v in opt_kwargs.items()},
        )

    def _augment(self, seed):
        augment = make_augment(self.augment)
        if augment is not None and hasattr(augment, "seed"):
            augment.seed(seed + 1)
        return augment

    def _set_monitor(self, has_valid):
        """Monitor validation loss when there is a validation set, else training loss."""
        net = self.net_
        for name, cb in net.callbacks_:
            if name == "early_stopping":
                cb.monitor = "valid_loss" if has_valid else "train_loss"
            if name == "checkpoint":
                cb.monitor = "valid_loss_best" if has_valid else "train_loss_best"

    def _record_history(self):
        hist = [
            {k: v for k, v in h.items() if k != "batches"} for h in self.net_.history
        ]
        self.history_ = hist
        self.n_iter_ = len(hist)
        key = "valid_loss" if any("valid_loss" in h for h in hist) else "train_loss"
        losses = [h.get(key, np.inf) for h in hist]
        self.best_epoch_ = int(np.argmin(losses)) + 1 if losses else 0

    def _sample_weights(self, y, sample_weight, n):
        """Per-sample loss weights, or None when they are all one."""
        class_weight = getattr(self, "class_weight", None)
        if sample_weight is None and class_weight is None:
            return None
        weights = np.ones(n, dtype=np.float64)
        if sample_weight is not None:
            weights = _check_sample_weight(
                sample_weight, np.empty((n, 0)), dtype=np.float64
            )
            if np.any(weights < 0):
                raise ValueError("sample_weight must be non-negative.")
        if class_weight is not None and self._task in ("binary", "multiclass"):
            weights = weights * compute_sample_weight(
                class_weight, np.asarray(y).ravel()
            )
        return weights.astype(np.float32)

    # -- prediction ----------------------------------------------------------------
    def _logits(self, X):
        check_is_fitted(self, "net_")
        data, _ = self._prepare_X(X, reset=False)
        return self.net_.predict_logits(data)

    def save(self, path):
        """Write a safe model file: parameters as JSON, weights as safetensors.

        Load it with :func:`skcnn.load`; loading never executes code.
        """
        from ._persistence import save

        return save(self, path)

    def _restore_net(self, state):
        """Rebuild ``net_`` around saved weights (used by :func:`skcnn.load`)."""
        self.device_ = resolve_device(self.device)
        module = self._build_module(self.layout_, self._n_outputs(), state=state)
        self.net_ = self._make_net(module, seed=0, strict_precision=False)
        self.net_.initialize()
        self.module_.load_state_dict(state)
        for h in self.history_:
            self.net_.history.append(h)

    @property
    def module_(self):
        """The trained ``torch.nn.Module`` (unwrapped when ``compile=True``)."""
        check_is_fitted(self, "net_")
        module = self.net_.module_
        return getattr(module, "_orig_mod", module)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_partial_classes", None)
        return state

    def __setstate__(self, state):
        # A model pickled on a GPU machine and loaded where there is none:
        # skorch moves net_ to the CPU; follow it.
        if gpu_missing(state.get("device_")):
            state["device_"] = "cpu"
            net = state.get("net_")
            if net is not None:
                # Mixed precision was chosen for the GPU: re-choose for the CPU
                # ("auto" and fp16 become float32), without fp16's grad scaler.
                net.amp_dtype = resolve_precision(
                    state.get("precision", "auto"), "cpu", strict=False
                )
                net.__dict__.pop("grad_scaler_", None)
        self.__dict__.update(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.non_deterministic = (
            self.device not in ("cpu",) and torch.cuda.is_available()
        )
        return tags


def _auto_batch_size(batch_size, n_train):
    """'auto': 64, but at least ~8 steps per epoch on small sets (never below 16),
    so that batch-norm statistics and early stopping see enough updates."""
    if batch_size != "auto":
        return int(batch_size)
    return int(min(64, max(16, n_train // 8)))


def _probe(module, layout):
    """One forward pass on a blank sample, so that an architecture that cannot
    take these images fails here with a plain message, not deep in training."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros((1, *layout.shape)))
    except RuntimeError as exc:
        raise ValueError(
            f"The network cannot take {layout.describe()}: {str(exc).splitlines()[0]} "
            "Use padding='same', fewer or smaller blocks, or larger images (input_size)."
        ) from None
    finally:
        module.train(was_training)


def _checkpoint(checkpoint_dir):
    """Best-weights checkpoint in a folder of its own for this fit, so parallel
    search jobs never overwrite each other."""
    folder = os.path.join(os.fspath(checkpoint_dir), unique_run_name())
    return Checkpoint(
        dirname=folder,
        monitor="valid_loss_best",
        f_optimizer=None,
        f_criterion=None,
        f_history=None,
        load_best=False,
    )


class NetClassifierMixin(ClassifierMixin):
    """Targets, losses and outputs of classification."""

    def _encode_y(self, y, reset):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        task = type_of_target(y)
        if task == "multilabel-indicator":
            if reset:
                self._task = "multilabel"
                self.classes_ = np.arange(y.shape[1])
            elif self._task != "multilabel" or y.shape[1] != len(self.classes_):
                raise ValueError(
                    "y does not match the labels the estimator was fitted on."
                )
            return y.astype(np.float32)
        check_classification_targets(y)
        if task not in ("binary", "multiclass"):
            raise ValueError(
                f"{type(self).__name__} supports binary, multiclass and multilabel-indicator "
                f"targets; got {task!r}."
            )
        if reset:
            encoder = LabelEncoder().fit(getattr(self, "_partial_classes", y))
            classes = encoder.classes_
            if len(classes) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contains only one class: {classes[0]!r}."
                )
            self.classes_ = classes
            self._task = "binary" if len(classes) == 2 else "multiclass"
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y contains labels {unseen.tolist()} not seen when fitting."
            )
        codes = np.searchsorted(self.classes_, y)
        if self._task == "binary":
            return codes.astype(np.float32).reshape(-1, 1)
        return codes.astype(np.int64)

    def _n_outputs(self):
        return 1 if self._task == "binary" else len(self.classes_)

    def _criterion(self):
        return (
            nn.CrossEntropyLoss if self._task == "multiclass" else nn.BCEWithLogitsLoss
        )

    def predict_proba(self, X):
        """Class probabilities, shape ``(n, n_classes)`` (``(n, n_labels)`` if multilabel)."""
        logits = torch.as_tensor(self._logits(X), dtype=torch.float64)
        if self._task == "multiclass":
            return torch.softmax(logits, 1).numpy()
        p = torch.sigmoid(logits).numpy()
        if self._task == "binary":
            return np.column_stack([1 - p[:, 0], p[:, 0]])
        return p

    def predict_log_proba(self, X):
        return np.log(np.clip(self.predict_proba(X), 1e-12, None))

    def predict(self, X):
        """Predicted labels (an indicator matrix when multilabel)."""
        proba = self.predict_proba(X)
        if self._task == "multilabel":
            return (proba > 0.5).astype(int)
        return self.classes_[proba.argmax(1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        tags.classifier_tags.multi_label = True
        return tags


class NetRegressorMixin(RegressorMixin):
    """Targets, losses and outputs of regression."""

    def _encode_y(self, y, reset):
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
            single = True
        else:
            single = False
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity; expected finite targets.")
        if reset:
            self._task = "regression"
            self._single_output = single
            self.n_outputs_ = y.shape[1]
        elif y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} outputs; the estimator was fitted on {self.n_outputs_}."
            )
        return y

    def _n_outputs(self):
        return self.n_outputs_

    def _criterion(self):
        return nn.MSELoss

    def predict(self, X):
        """Predicted targets, shape ``(n,)`` or ``(n, n_outputs)``."""
        out = self._logits(X).astype(np.float64)
        return out[:, 0] if self._single_output else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags


class ImageTransformerMixin(ClassNamePrefixFeaturesOutMixin):
    """sklearn plumbing of the transformers that turn images into float32
    features (baselines, pretrained features): feature names and tags."""

    @property
    def _n_features_out(self):
        # Read by ClassNamePrefixFeaturesOutMixin.get_feature_names_out.
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
