"""What skcnn estimators share: data, targets, training, prediction.

An estimator subclass defines ``__init__`` (storing its parameters verbatim)
and ``_build_module(layout, n_outputs)``. ``fit`` validates input, encodes
targets, builds the module and a skorch net (``net_``) and trains it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted
from skorch.callbacks import EarlyStopping
from skorch.helper import predefined_split
from skorch.utils import noop
from torch import nn

from . import _persistence
from ._data import ImageLayout, prepare_images
from ._device import (
    cudnn_benchmark,
    eval_mode,
    gpu_missing,
    intra_op_threads,
    resolve_device,
    resolve_precision,
    usable_cores,
)
from ._logging import EpochProgress, EpochTable, fit_label, user_callbacks
from ._params import MONITORS, OPTIMIZERS, fill_docstring, shared_constraints
from ._recipe import MixBatch, make_lr_scheduler, tta_views
from ._training import (
    BestCheckpoint,
    DivergedError,
    EpochAccuracy,
    NoTrainingBatch,
    RankedAccuracy,
    SkcnnNet,
    SmoothedLoss,
    StopOnInterrupt,
    TrainingDivergedError,
    graceful_interrupt,
    unique_run_name,
)
from ._validation import (
    validate_params,
)
from .augmentation import Augment, make_augment
from .export import OnnxExportMixin
from .pretrained import ResolvedWeights

__all__ = [
    "BaseNetEstimator",
    "NetClassifierMixin",
    "NetRegressorMixin",
]


def _optimizer(spec, kwargs):
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


# The monitor="auto" FutureWarning is shown once per process.
_warned_monitor = [False]


class BaseNetEstimator(OnnxExportMixin, BaseEstimator):
    """Shared machinery; not for direct use.

    Subclasses store their parameters in ``__init__``, declare them in
    ``_parameter_constraints`` and build their network in
    ``_build_module(layout, n_outputs, pretrained)``. Saving, loading and
    inspection talk to a fitted estimator through ``task_``,
    ``_fitted_state()`` and ``_from_fitted_state()``.
    """

    _parameter_constraints = {}
    _shared_group = ("net",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # the shared parameters (skcnn/_params.py): constraints and docstring
        cls._parameter_constraints = {
            **shared_constraints(cls),
            **cls._parameter_constraints,
        }
        cls.__doc__ = fill_docstring(cls)
        if not cls.__name__.startswith("_"):
            _persistence.register(cls)

    def _set_init_params(self, params):
        """Store the ``__init__`` arguments verbatim (``locals()`` of it)."""
        for name, value in params.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # -- to be provided by subclasses ---------------------------------------
    def _build_module(
        self, layout, n_outputs, pretrained=None
    ):  # pragma: no cover - abstract
        raise NotImplementedError

    def _resolve_pretrained(self):
        """The pretrained weights to start from (a ``ResolvedWeights``) or None."""
        return None

    def _extra_callbacks(self, module):
        return []

    def _optimizer_kwargs(self):
        return {}

    def _check_params(self):
        """Checks across parameters, after the table (subclasses extend it)."""
        if self.monitor == "accuracy" and isinstance(self, RegressorMixin):
            raise ValueError(
                "monitor='accuracy' needs a classifier; a regressor's early "
                "stopping monitors 'loss' or 'smoothed_loss'."
            )
        if self.tta:
            # a typo in a view's spec fails here, not at the first predict
            tta_views(self.tta, self.augment, self.random_state)
        span = self.schedule_epochs or self.max_epochs
        if self.warmup_epochs and self.lr_schedule not in ("onecycle", "cosine"):
            warnings.warn(
                f"warmup_epochs={self.warmup_epochs} does nothing with "
                f"lr_schedule={self.lr_schedule!r}; only 'onecycle' and 'cosine' "
                "warm up.",
                UserWarning,
                stacklevel=4,
            )
        elif self.warmup_epochs and self.warmup_epochs >= span:
            warnings.warn(
                f"warmup_epochs={self.warmup_epochs} >= the schedule's {span} epochs: "
                "the learning rate never leaves its warm-up. Lower warmup_epochs or "
                "raise max_epochs (or schedule_epochs).",
                UserWarning,
                stacklevel=4,
            )
        threads, cores = self.num_threads, usable_cores()
        if isinstance(threads, Integral) and threads > cores:
            warnings.warn(
                f"num_threads={threads} exceeds the {cores} usable CPU "
                f"core(s); using {cores}. More threads than cores only slow "
                "a fit down (256 threads on 2 cores ran 60x slower).",
                UserWarning,
                stacklevel=4,
            )
        if (
            self.early_stopping
            and self.monitor == "auto"
            and self._monitor() == "smoothed_loss"
            and not _warned_monitor[0]
        ):
            _warned_monitor[0] = True
            warnings.warn(
                "Since skcnn 0.2, early stopping of a fit with augmentation "
                "(augment, mixup or cutmix) watches the smoothed validation loss "
                "(monitor='auto'): with augmentation the raw loss stopped too early "
                "(digits, 10 splits: test accuracy 0.9913 against 0.9871, 31 "
                "against 22.5 epochs). Pass monitor='loss' for skcnn 0.1's results. "
                "Shown once per process.",
                FutureWarning,
                stacklevel=4,
            )

    def _monitor(self):
        """The monitor early stopping uses: "auto" resolved."""
        if self.monitor != "auto":
            return self.monitor
        augmented = bool(self.augment) or self.mixup or self.cutmix
        return "smoothed_loss" if augmented else "loss"

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
            Targets.
        sample_weight : array-like of shape (n,), default=None
            Per-sample weights of the loss.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        warm = self.warm_start and hasattr(self, "net_")
        return self._fit(X, y, sample_weight, epochs=self.max_epochs, reset=not warm)

    def _fitted_attributes(self):
        """Everything a fit sets (public ``x_`` and private state alike)."""
        params = self.get_params(deep=False)
        return {k: v for k, v in self.__dict__.items() if k not in params}

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch on all of ``X``, building the network on the first call.

        Parameters
        ----------
        X : array-like or list of image paths
            Images, as in :meth:`fit`.
        y : array-like of shape (n,) or (n, n_outputs)
            Targets.
        classes : array-like, default=None
            Every class of the whole stream; needed on the first call of a
            classifier when the first chunk does not hold them all.
        sample_weight : array-like of shape (n,), default=None
            Per-sample weights of the loss.

        Returns
        -------
        self : object
            The estimator, trained one more epoch.
        """
        reset = not hasattr(self, "net_")
        return self._fit(
            X,
            y,
            sample_weight,
            epochs=1,
            reset=reset,
            classes=classes if reset else None,
            split=False,
        )

    def _fit(self, X, y, sample_weight, epochs, reset, classes=None, split=True):
        # A fit that fails (bad input, divergence, no step) leaves the
        # estimator as it was: the previous model stays usable.
        before = self._fitted_attributes()
        try:
            return self._fit_checked(
                X, y, sample_weight, epochs, reset, classes=classes, split=split
            )
        except KeyboardInterrupt:
            raise  # the interrupted fit keeps its best weights (interrupted_)
        except TrainingDivergedError as exc:
            if not exc.kept_weights:
                self._restore_fitted_attributes(before)
            raise
        except BaseException:
            self._restore_fitted_attributes(before)
            raise

    def _restore_fitted_attributes(self, before):
        for k in set(self._fitted_attributes()) - set(before):
            delattr(self, k)
        self.__dict__.update(before)

    def _fit_checked(self, X, y, sample_weight, epochs, reset, classes, split):
        validate_params(self)
        self._check_params()
        device = resolve_device(self.device) if reset else self.device_
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        data, layout, y = prepare_images(
            self, X, reset=reset, y=y, y_numeric=not isinstance(self, ClassifierMixin)
        )
        augment = make_augment(self.augment)
        if layout.ndim == 1 and isinstance(augment, Augment):
            unused = augment.unused_on_signals()
            if unused:
                warnings.warn(
                    f"augment options {unused} do nothing on 1-D signals; only shift "
                    "(circular) and noise apply.",
                    UserWarning,
                    stacklevel=4,
                )
        y_enc = self._encode_y(y, reset=reset, classes=classes)
        weights = self._sample_weights(y, sample_weight, len(y_enc))
        data = data.with_targets(
            torch.as_tensor(y_enc),
            None if weights is None else torch.as_tensor(weights, dtype=torch.float32),
        )

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if reset:
            self.device_ = device
            self.layout_ = layout
        on_cuda = self.device_.startswith("cuda")
        if on_cuda:
            # Free what earlier fits (other CV folds) left in the cache.
            gc.collect()
            torch.cuda.empty_cache()
        devices = [torch.device(self.device_).index or 0] if on_cuda else []
        with (
            torch.random.fork_rng(devices=devices),
            cudnn_benchmark(self.device_),
            intra_op_threads(self._threads()),
        ):
            torch.manual_seed(seed)
            train, valid = self._split(data, y_enc, seed) if split else (data, None)
            if reset:
                pretrained = self._resolve_pretrained()
                module = self._build_module(layout, self._n_outputs(), pretrained)
                _probe(module, layout)
                self.weights_source_ = None if pretrained is None else pretrained.source
                self.batch_size_ = _auto_batch_size(self.batch_size, len(train))
                _check_batch_norm_batches(module, self.batch_size_, len(train))
                self.net_ = self._make_net(module, seed)
                self.net_.initialize()
            if self.checkpoint_dir is not None:
                key = self._checkpoint_key(train)
                dict(self.net_.callbacks_)["checkpoint"].key = key
                if reset and self.warm_start:
                    self._resume_from_checkpoint(key)
            self.net_.train_split = predefined_split(valid)
            self._set_monitor(valid is not None)
            stopper = dict(self.net_.callbacks_)["stop_on_interrupt"]
            stopper.pressed = False
            try:
                with graceful_interrupt(stopper, verbose=self.verbose):
                    self.net_.partial_fit(train, epochs=epochs)
            except DivergedError as exc:
                self._diverged(exc)
            except NoTrainingBatch:
                raise ValueError(
                    f"The fit would make no optimizer step: {len(train)} training "
                    f"sample(s) with batch_size={self.batch_size_} leave no batch to "
                    "train on (a last batch of one sample is skipped). Pass more "
                    "samples, a smaller validation_fraction or batch_size=-1."
                ) from None
            except (MemoryError, RuntimeError) as exc:
                if not _out_of_memory(exc):
                    raise
                raise MemoryError(
                    f"{type(self).__name__} ran out of memory on {self.device_} "
                    f"training with batch_size={self.batch_size_} on "
                    f"{layout.describe()}: pass a smaller batch_size (e.g. "
                    f"{max(1, self.batch_size_ // 4)}), or smaller images. "
                    f"({str(exc).splitlines()[0][:200]})"
                ) from None
            finally:
                # The validation split must not travel with the pickled model.
                self.net_.train_split = None
        self.interrupted_ = stopper.pressed
        self._record_history()
        if stopper.pressed:
            raise KeyboardInterrupt(
                f"{type(self).__name__}: training interrupted after epoch "
                f"{self.n_iter_}; the estimator keeps the best weights so far "
                "(interrupted_=True)."
            )
        return self

    def _diverged(self, exc):
        """Stop on a NaN/inf loss with the last good weights, or none at all."""
        stopper = dict(self.net_.callbacks_).get("early_stopping")
        best = getattr(stopper, "best_model_weights_", None)
        advice = (
            f"Lower lr (now {self.lr!r}), scale the inputs to about [0, 1] and "
            "regression targets to unit scale."
        )
        if best is None:
            raise TrainingDivergedError(
                f"Training diverged: the {exc}. {advice} No epoch had a finite "
                "validation loss before, so no weights are kept: the estimator is "
                "left as it was before this fit.",
                kept_weights=False,
            ) from None
        self.net_.module_.load_state_dict(best)
        del self.net_.history[exc.epoch - 1 :]
        self._record_history()
        self.interrupted_ = True
        raise TrainingDivergedError(
            f"Training diverged: the {exc}. {advice} The estimator keeps the "
            f"weights of epoch {stopper.best_epoch_}, the best before it "
            "(interrupted_=True).",
            kept_weights=True,
        ) from None

    # Parameters that change how long or where a network trains, not what it
    # is: a checkpoint written under other values of these still fits.
    _RUN_PARAMS = frozenset(
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

    def _checkpoint_key(self, train):
        """What a checkpoint's weights were trained on and for: the class,
        the parameters, the input layout, the targets and the training data."""
        h = hashlib.sha256()
        params = sorted(
            (k, repr(v))
            for k, v in self.get_params(deep=False).items()
            if k not in self._RUN_PARAMS
        )
        h.update(repr((type(self).__name__, params, self.layout_)).encode())
        h.update(repr(getattr(self, "classes_", None)).encode())
        h.update(train.fingerprint().encode())
        return h.hexdigest()

    def _resume_from_checkpoint(self, key):
        """warm_start with checkpoint_dir: start from the best checkpoint that
        was trained on the same data for the same estimator, if any."""
        best = None
        for meta_file in Path(self.checkpoint_dir).glob("fit-*/meta.json"):
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError):
                warnings.warn(
                    f"Skipping the unreadable checkpoint record {meta_file}.",
                    UserWarning,
                    stacklevel=5,
                )
                continue
            if meta.get("key") == key and (best is None or meta["loss"] < best[0]):
                best = (meta["loss"], meta_file.with_name("params.pt"))
        if best is None:
            return
        path = best[1]
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            self.module_.load_state_dict(_strip_compile_prefix(state))
        except Exception as exc:  # noqa: BLE001 - any unreadable file
            raise ValueError(
                f"The checkpoint {path} cannot be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else 'corrupt file'}); "
                "delete it or pass another checkpoint_dir."
            ) from None
        self.resumed_from_ = str(path)

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
                stacklevel=4,
            )
            return data, None
        stratify = None
        if self.task_ in ("binary", "multiclass"):
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
                    stacklevel=4,
                )
        idx_train, idx_valid = train_test_split(
            np.arange(n),
            test_size=n_valid,
            random_state=seed % (2**32),
            stratify=stratify,
        )
        return data.subset(idx_train), data.subset(idx_valid)

    def _make_net(self, module, seed, strict_precision=True):
        """A skorch net around ``module``, configured from the parameters."""
        extra = dict(self._optimizer_kwargs())
        groups = extra.pop("param_groups", None)
        opt_cls, opt_kwargs = _optimizer(
            self.optimizer, {"weight_decay": float(self.weight_decay), **extra}
        )
        if groups is not None:
            opt_kwargs["param_groups"] = groups
        callbacks = []
        if self.task_ != "regression":
            callbacks.append(("accuracy", EpochAccuracy(self.task_)))
        if self.early_stopping:
            monitor = self._monitor()
            if monitor == "smoothed_loss":
                callbacks.append(("smoothed_loss", SmoothedLoss()))
            if monitor == "accuracy":
                callbacks.append(("ranked_accuracy", RankedAccuracy()))
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor=MONITORS[monitor][0].format("valid"),
                        patience=self._patience(),
                        threshold=float(self.tol),
                        threshold_mode="abs",
                        lower_is_better=MONITORS[monitor][1],
                        load_best=True,
                        sink=print if self.verbose else noop,
                    ),
                )
            )
        if self.checkpoint_dir is not None:
            # A folder of its own per fit: parallel search jobs never collide.
            folder = os.path.join(os.fspath(self.checkpoint_dir), unique_run_name())
            callbacks.append(("checkpoint", BestCheckpoint(folder, key=None)))
        callbacks.append(("stop_on_interrupt", StopOnInterrupt()))
        callbacks += self._extra_callbacks(module)
        if self.lr_schedule is not None:
            callbacks.append(
                (
                    "lr_schedule",
                    make_lr_scheduler(
                        self.lr_schedule,
                        self.schedule_epochs or self.max_epochs,
                        self.warmup_epochs,
                        "valid_loss",
                    ),
                )
            )
        label = fit_label(self, width=200)
        if self.progress:
            callbacks.append(("progress", EpochProgress(fit_label(self, width=60))))
        callbacks += user_callbacks(self.callbacks)
        device = self.device_
        amp = resolve_precision(self.precision, device, strict=strict_precision)
        channels_last = len(self.layout_.shape) == 3
        if channels_last:
            # Weights and batches both channels-last: cudnn's and oneDNN's fast
            # NHWC kernels (on CPU, training steps took 0.63-0.80x the time;
            # benchmarks/bench_overhead.py).
            module = module.to(memory_format=torch.channels_last)
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
            compile=bool(self.compile),
            verbose=int(bool(self.verbose)),
            # skorch builds its epoch table even when silent; drop it then.
            callbacks__print_log=EpochTable(label) if self.verbose else None,
            amp_dtype=amp,
            augment=self._augment(seed),
            shuffle_seed=seed,
            channels_last=channels_last,
            num_workers=self.num_workers,
            mix=MixBatch(self.mixup, self.cutmix, seed + 2)
            if self.mixup or self.cutmix
            else None,
            **self._loss_kwargs(),
            **{f"optimizer__{k}": v for k, v in opt_kwargs.items()},
        )

    def _patience(self):
        """n_iter_no_change in epochs: an int, or a fraction of max_epochs."""
        patience = self.n_iter_no_change
        if isinstance(patience, Integral):
            return int(patience)
        return max(1, math.ceil(patience * self.max_epochs))

    def _loss_kwargs(self):
        smoothing = float(getattr(self, "label_smoothing", 0.0))
        if not smoothing:
            return {}
        if self.task_ == "multiclass":
            return {"criterion__label_smoothing": smoothing}
        return {"label_smoothing": smoothing}

    def _augment(self, seed):
        augment = make_augment(self.augment)
        if augment is not None and hasattr(augment, "seed"):
            augment.seed(seed + 1)
        return augment

    def _set_monitor(self, has_valid):
        """Monitor the validation set when there is one, else the training set."""
        side = "valid" if has_valid else "train"
        monitor = self._monitor()
        for name, cb in self.net_.callbacks_:
            if name == "early_stopping":
                cb.monitor = MONITORS[monitor][0].format(side)
            if name == "lr_schedule" and cb.monitor is not None:  # "plateau"
                cb.monitor = f"{side}_loss"
            if name == "checkpoint":
                cb.monitor = "valid_loss_best" if has_valid else "train_loss_best"

    def _record_history(self):
        hist = [
            {k: v for k, v in h.items() if k != "batches"} for h in self.net_.history
        ]
        self.history_ = hist
        self.n_iter_ = len(hist)
        stopper = dict(self.net_.callbacks_).get("early_stopping")
        if getattr(stopper, "best_epoch_", None) is not None and hist:
            # the epoch whose weights early stopping kept (its monitor's best)
            self.best_epoch_ = min(int(stopper.best_epoch_), len(hist))
            return
        key = "valid_loss" if any("valid_loss" in h for h in hist) else "train_loss"
        losses = [h.get(key, np.inf) for h in hist]
        self.best_epoch_ = int(np.argmin(losses)) + 1 if losses else 0

    def _sample_weights(self, y, sample_weight, n):
        """Per-sample loss weights, or None when they are all one."""
        if sample_weight is None:
            return None
        weights = _check_sample_weight(
            sample_weight, np.empty((n, 0)), dtype=np.float64
        )
        if np.any(weights < 0):
            raise ValueError("sample_weight must be non-negative.")
        return weights.astype(np.float32)

    # -- prediction ----------------------------------------------------------------
    def _threads(self):
        # models from files or pickles of older versions lack the parameter
        cpu = str(self.device_).startswith("cpu")
        return getattr(self, "num_threads", "auto") if cpu else None

    def _views(self, X, combine):
        """``combine(logits)`` of X, averaged over the test-time views."""
        check_is_fitted(self, "net_")
        data, _ = self._prepare_X(X, reset=False)
        views = tta_views(self.tta, self.augment, self.random_state)
        with intra_op_threads(self._threads()):
            out = combine(self.net_.predict_logits(data))
            for view in views:
                out = out + combine(self.net_.predict_logits(data, transform=view))
        return out / (1 + len(views))

    # -- persistence -------------------------------------------------------------
    def save(self, path):
        """Write a safe model file: parameters as JSON, weights as safetensors.

        Load it with :func:`skcnn.load`; loading never executes code.

        Parameters
        ----------
        path : str or Path
            File to write (``.safetensors`` by convention).

        Returns
        -------
        path : Path
            The file written.
        """
        return _persistence.save(self, path)

    def _fitted_state(self):
        """What a saved model needs besides its parameters and weights (JSON)."""
        check_is_fitted(self, "net_")
        return {
            "task": self.task_,
            "layout": list(self.layout_.shape),
            "pixels": self.layout_.pixels,
            "input_layout": self.layout_.order,
            "n_features_in": int(self.n_features_in_),
            "n_iter": int(self.n_iter_),
            "best_epoch": int(self.best_epoch_),
            "batch_size": int(self.batch_size_),
            "weights_source": self.weights_source_,
            "history": self.history_,
        }

    def _set_fitted_state(self, state):
        self.task_ = state["task"]
        self.layout_ = ImageLayout(
            tuple(state["layout"]),
            pixels=state["pixels"],
            order=state.get("input_layout"),
        )
        self.n_features_in_ = state["n_features_in"]
        self.n_iter_ = state["n_iter"]
        self.best_epoch_ = state["best_epoch"]
        self.batch_size_ = state["batch_size"]
        self.weights_source_ = state["weights_source"]
        self.history_ = state["history"]

    @classmethod
    def _from_fitted_state(cls, params, state, weights):
        """Rebuild a fitted estimator from ``_fitted_state()`` and its weights."""
        estimator = cls(**params)
        validate_params(estimator)
        estimator._set_fitted_state(state)
        estimator.device_ = resolve_device(estimator.device)
        # The architecture first on the meta device (no memory): parameters
        # and layout that do not describe the file's tensors fail here.
        with torch.device("meta"):
            shapes = {
                k: tuple(v.shape)
                for k, v in estimator._build_module(
                    estimator.layout_,
                    estimator._n_outputs(),
                    estimator._saved_pretrained(),
                )
                .state_dict()
                .items()
            }
        found = {k: tuple(v.shape) for k, v in weights.items()}
        if shapes != found:
            diff = sorted(set(shapes.items()) ^ set(found.items()))[:3]
            raise ValueError(
                f"The weights in the model file do not match its header (class, "
                f"parameters, layout): e.g. {diff}. The file was changed after it "
                "was saved."
            )
        module = estimator._build_module(
            estimator.layout_, estimator._n_outputs(), estimator._saved_pretrained()
        )
        estimator.net_ = estimator._make_net(module, seed=0, strict_precision=False)
        estimator.net_.initialize()
        estimator.module_.load_state_dict(weights)
        for h in estimator.history_:
            estimator.net_.history.append(h)
        return estimator

    def _saved_pretrained(self):
        """Stand-in for the pretrained weights of a model being loaded: its
        file holds every weight; what matters is whether it was pretrained."""
        if self.weights_source_ is None:
            return None
        return ResolvedWeights({}, source=self.weights_source_)

    @property
    def module_(self):
        """The trained ``torch.nn.Module`` (unwrapped when ``compile=True``)."""
        check_is_fitted(self, "net_")
        module = self.net_.module_
        return getattr(module, "_orig_mod", module)

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


def _out_of_memory(exc):
    """An allocator failure: Python's, CUDA's or torch's CPU allocator's."""
    return isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or (
        "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower()
    )


def _strip_compile_prefix(state):
    """Weights saved from a ``torch.compile``-wrapped module carry an
    ``_orig_mod.`` prefix; the plain module's names have none."""
    prefix = "_orig_mod."
    return {
        (k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()
    }


def _check_batch_norm_batches(module, batch_size, n_train):
    has_bn = any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()
    )
    if has_bn and (batch_size == 1 or n_train == 1):
        raise ValueError(
            f"Batch normalisation cannot train on batches of one sample (batch_size="
            f"{batch_size}, {n_train} training sample(s)); use batch_size >= 2 and "
            "more samples, or batch_norm=False."
        )


def _auto_batch_size(batch_size, n_train):
    """'auto': 64, but at least ~8 steps per epoch on small sets (never below 16),
    so that batch-norm statistics and early stopping see enough updates."""
    if batch_size != "auto":
        return int(batch_size)
    return int(min(64, max(16, n_train // 8)))


def _probe(module, layout):
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


class NetClassifierMixin(ClassifierMixin):
    """Targets, losses and outputs of classification."""

    _shared_group = ("classifier",)

    def _encode_y(self, y, reset, classes=None):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            if reset:
                self.task_ = "multilabel"
                self.classes_ = np.arange(y.shape[1])
            elif self.task_ != "multilabel" or y.shape[1] != len(self.classes_):
                raise ValueError(
                    "y does not match the labels the estimator was fitted on."
                )
            return y.astype(np.float32)
        check_classification_targets(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"{type(self).__name__} supports binary, multiclass and multilabel-indicator "
                f"targets; got {kind!r}."
            )
        if reset:
            encoder = LabelEncoder().fit(y if classes is None else np.asarray(classes))
            found = encoder.classes_
            if len(found) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contains only one class: {found[0]!r}."
                )
            self.classes_ = found
            self.task_ = "binary" if len(found) == 2 else "multiclass"
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(
                f"y contains labels {unseen.tolist()} not seen when fitting."
            )
        codes = np.searchsorted(self.classes_, y)
        if self.task_ == "binary":
            return codes.astype(np.float32).reshape(-1, 1)
        return codes.astype(np.int64)

    def _sample_weights(self, y, sample_weight, n):
        weights = super()._sample_weights(y, sample_weight, n)
        if self.class_weight is None:
            return weights
        if self.task_ == "multilabel":
            raise ValueError(
                "class_weight is not supported for multilabel targets; pass "
                "sample_weight instead."
            )
        per_class = compute_sample_weight(self.class_weight, np.asarray(y).ravel())
        weights = per_class if weights is None else weights * per_class
        return weights.astype(np.float32)

    def _n_outputs(self):
        return 1 if self.task_ == "binary" else len(self.classes_)

    def _criterion(self):
        return (
            nn.CrossEntropyLoss if self.task_ == "multiclass" else nn.BCEWithLogitsLoss
        )

    def _fitted_state(self):
        state = super()._fitted_state()
        state["classes"] = {
            "values": self.classes_.tolist(),
            "dtype": self.classes_.dtype.str,
        }
        return state

    def _set_fitted_state(self, state):
        super()._set_fitted_state(state)
        classes = state["classes"]
        self.classes_ = np.asarray(classes["values"], dtype=np.dtype(classes["dtype"]))

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like or list of image paths
            Images, as in :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
            ``(n, n_labels)`` for multilabel targets.
        """
        return self._views(X, self._proba)

    def _proba(self, logits):
        logits = torch.as_tensor(logits, dtype=torch.float64)
        if self.task_ == "multiclass":
            return torch.softmax(logits, 1).numpy()
        p = torch.sigmoid(logits).numpy()
        if self.task_ == "binary":
            return np.column_stack([1 - p[:, 0], p[:, 0]])
        return p

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like or list of image paths
            Images, as in :meth:`fit`.

        Returns
        -------
        log_proba : ndarray of shape (n, n_classes)
            Log-probabilities (clipped at 1e-12 before the log).
        """
        return np.log(np.clip(self.predict_proba(X), 1e-12, None))

    def predict(self, X):
        """Predicted labels.

        Parameters
        ----------
        X : array-like or list of image paths
            Images, as in :meth:`fit`.

        Returns
        -------
        y : ndarray of shape (n,)
            Labels of ``classes_``; an indicator matrix ``(n, n_labels)``
            for multilabel targets.
        """
        proba = self.predict_proba(X)
        if self.task_ == "multilabel":
            return (proba > 0.5).astype(int)
        return self.classes_[proba.argmax(1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        tags.classifier_tags.multi_label = True
        return tags


class NetRegressorMixin(RegressorMixin):
    """Targets, losses and outputs of regression."""

    def _encode_y(self, y, reset, classes=None):
        y = np.asarray(y, dtype=np.float32)
        single = y.ndim == 1
        if single:
            y = y.reshape(-1, 1)
        if not np.isfinite(y).all():
            raise ValueError(
                "y contains NaN or infinity (or values beyond float32's range); "
                "expected finite targets."
            )
        if reset:
            self.task_ = "regression"
            self._single_output = single
            self.n_outputs_ = y.shape[1]
            mean, scale = np.zeros(y.shape[1]), np.ones(y.shape[1])
            if getattr(self, "scale_target", False):
                mean, scale = y.mean(0, dtype=np.float64), y.std(0, dtype=np.float64)
                scale[scale == 0] = 1.0
            self.target_mean_, self.target_scale_ = mean, scale
        elif y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} outputs; the estimator was fitted on {self.n_outputs_}."
            )
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _n_outputs(self):
        return self.n_outputs_

    def _criterion(self):
        return nn.MSELoss

    def _fitted_state(self):
        state = super()._fitted_state()
        state["n_outputs"] = int(self.n_outputs_)
        state["single_output"] = bool(self._single_output)
        state["target_mean"] = [float(v) for v in self.target_mean_]
        state["target_scale"] = [float(v) for v in self.target_scale_]
        return state

    def _set_fitted_state(self, state):
        super()._set_fitted_state(state)
        self.n_outputs_ = state["n_outputs"]
        self._single_output = state["single_output"]
        # Files from before target scaling: no standardisation.
        self.target_mean_ = np.asarray(
            state.get("target_mean", [0.0] * self.n_outputs_), dtype=np.float64
        )
        self.target_scale_ = np.asarray(
            state.get("target_scale", [1.0] * self.n_outputs_), dtype=np.float64
        )

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like or list of image paths
            Images, as in :meth:`fit`.

        Returns
        -------
        y : ndarray of shape (n,) or (n, n_outputs)
            1-D when the targets were 1-D at fit.
        """
        out = (
            self._views(X, lambda out: out.astype(np.float64)) * self.target_scale_
            + self.target_mean_
        )
        return out[:, 0] if self._single_output else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        return tags
