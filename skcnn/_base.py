"""What skcnn estimators share: data, targets, training, prediction.

An estimator subclass defines ``__init__`` (storing its parameters verbatim)
and ``_build_module(layout, n_outputs)``. ``fit`` validates input, encodes
targets, builds the module and a skorch net (``net_``) and trains it.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _persistence
from ._data import ImageLayout, prepare_images
from ._device import (
    gpu_missing,
    intra_op_threads,
    resolve_device,
)
from ._engine.adapt import AdaptMixin
from ._engine.build import build_net, check_batch_norm_batches, probe
from ._engine.checkpoints import checkpoint_key, resume_best, unwrap_compiled
from ._engine.net import TrainingDivergedError
from ._engine.plan import check_layout, check_params, plan_for, with_batch_size
from ._engine.recipe import tta_views
from ._engine.run import configure, fit_context, fit_once, history_summary
from ._engine.run import split as split_data
from ._params import fill_docstring, shared_constraints
from ._targets import NetClassifierMixin, NetRegressorMixin
from ._validation import check_sample_weight, validate_params
from .export import OnnxExportMixin
from .pretrained import ResolvedWeights

__all__ = [
    "BaseNetEstimator",
    "NetClassifierMixin",
    "NetRegressorMixin",
]


class BaseNetEstimator(OnnxExportMixin, AdaptMixin, BaseEstimator):
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

    def _init_head(self, train, plan):
        """Start the new network's head from ``train``, before training."""

    def _head_init_is_the_fit(self):  # no epochs, no validation split
        return False

    def _optimizer_kwargs(self):
        return {}

    def _check_params(self):
        """Checks across parameters, after the table (subclasses extend it)."""
        check_params(self, regressor=isinstance(self, RegressorMixin))

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
        check_layout(self, layout)
        y_enc = self._encode_y(y, reset=reset, classes=classes)
        weights = self._sample_weights(y, sample_weight, len(y_enc))
        data = data.with_targets(
            torch.as_tensor(y_enc),
            None if weights is None else torch.as_tensor(weights, dtype=torch.float32),
        )
        seed = int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )
        if reset:
            self.device_ = device
            self.layout_ = layout
        plan = plan_for(
            self,
            seed=seed,
            batch_size=self.batch_size if reset else self.batch_size_,
            strict_precision=reset,
        )
        with fit_context(self.device_, seed, self._threads()):
            head_only = reset and self._head_init_is_the_fit()
            split = split and not head_only
            train, valid = split_data(data, y_enc, plan) if split else (data, None)
            if reset:
                plan = with_batch_size(plan, len(train), layout)
                self._build_net(plan, layout, len(train))
                self._init_head(train, plan)
            key = None
            if plan.checkpoint_dir is not None:
                key = checkpoint_key(plan.checkpoint_params, train)
            configure(self.net_, plan, has_valid=valid is not None, checkpoint_key=key)
            if key is not None and reset and self.warm_start:
                resumed = resume_best(plan.checkpoint_dir, key, self.module_)
                if resumed is not None:
                    self.resumed_from_ = resumed
            try:
                interrupted = not head_only and fit_once(
                    self.net_,
                    plan,
                    train,
                    valid,
                    epochs=epochs,
                    name=type(self).__name__,
                    describe=layout.describe(),
                )
            except TrainingDivergedError as exc:
                if exc.kept_weights:
                    self._record_history()
                    self.interrupted_ = True
                raise
            self._after_fit(valid)
        self.interrupted_ = interrupted
        self._record_history()
        if interrupted:
            raise KeyboardInterrupt(
                f"{type(self).__name__}: training interrupted after epoch "
                f"{self.n_iter_}; the estimator keeps the best weights so far "
                "(interrupted_=True)."
            )
        return self

    def _build_net(self, plan, layout, n_train):
        """A new module and ``net_`` for this fit."""
        pretrained = self._resolve_pretrained()
        module = self._build_module(layout, self._n_outputs(), pretrained)
        probe(module, layout)
        self.weights_source_ = None if pretrained is None else pretrained.source
        self.batch_size_ = plan.batch_size
        _check_batch_norm(self.get_params(deep=False), module, plan.batch_size, n_train)
        extra = self._extra_callbacks(module)
        self.net_ = build_net(plan, module, extra_callbacks=extra).initialize()

    def _record_history(self):
        self.history_, self.n_iter_, self.best_epoch_ = history_summary(self.net_)

    def _sample_weights(self, y, sample_weight, n):
        """Per-sample loss weights, or None when they are all one."""
        return check_sample_weight(sample_weight, n)

    # -- prediction ----------------------------------------------------------------
    def _threads(self):  # pickles of older versions lack num_threads
        cpu = str(self.device_).startswith("cpu")
        return getattr(self, "num_threads", "auto") if cpu else None

    def _views(self, X, combine):
        """``combine(logits)`` of X, averaged over the test-time views."""
        check_is_fitted(self, "net_")
        data, _, _ = prepare_images(self, X, reset=False)
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

        def build():
            # a new stand-in per build: the meta-device check must not share
            # a backbone with the module that keeps the weights
            return estimator._build_module(
                estimator.layout_,
                estimator._n_outputs(),
                estimator._saved_pretrained(),
            )

        _persistence.check_weight_shapes(build, weights)
        module = build()
        plan = plan_for(
            estimator, seed=0, batch_size=estimator.batch_size_, strict_precision=False
        )
        extra = estimator._extra_callbacks(module)
        estimator.net_ = build_net(plan, module, extra_callbacks=extra).initialize()
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
        return unwrap_compiled(self.net_.module_)

    def __setstate__(self, state):
        # Pickled on a GPU machine, loaded where there is none: the net moves
        # itself to the CPU (TensorBatchNet.__setstate__); follow it.
        if gpu_missing(state.get("device_")):
            state["device_"] = "cpu"
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


def _check_batch_norm(params, module, batch_size, n_train):
    """One-sample batches and batch norm, with the estimator's own way out.
    Frozen statistics (``bn_statistics="frozen"``) keep every batch-norm
    layer in eval mode, where one sample is fine."""
    if params.get("bn_statistics") == "frozen":
        return
    remedy = {
        "batch_norm": "batch_norm=False",
        "bn_statistics": 'bn_statistics="frozen"',
    }
    check_batch_norm_batches(
        module,
        batch_size,
        n_train,
        next((v for k, v in remedy.items() if k in params), ""),
    )
