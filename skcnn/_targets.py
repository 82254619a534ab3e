"""What classifiers and regressors add to a network estimator: targets,
losses and outputs."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import column_or_1d
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from torch import nn

__all__ = ["NetClassifierMixin", "NetRegressorMixin"]


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
        if isinstance(self.class_weight, dict):
            bad = {
                k: v
                for k, v in self.class_weight.items()
                if isinstance(v, bool)
                or not isinstance(v, (int, float, np.number))
                or not np.isfinite(v)
                or v < 0
            }
            if bad:
                raise ValueError(
                    f"class_weight has invalid weights {bad}; expected a finite "
                    "number >= 0 per class."
                )
        per_class = compute_sample_weight(self.class_weight, np.asarray(y).ravel())
        weights = per_class if weights is None else weights * per_class
        if not (weights > 0).any():
            raise ValueError(
                f"class_weight={self.class_weight!r} (with sample_weight) gives every "
                "training sample a weight of 0: there is nothing to learn. Give at "
                "least one class of y a positive weight."
            )
        return weights.astype(np.float32)

    def _n_outputs(self):
        return 1 if self.task_ == "binary" else len(self.classes_)

    def _criterion(self):
        return (
            nn.CrossEntropyLoss if self.task_ == "multiclass" else nn.BCEWithLogitsLoss
        )

    def _after_fit(self, valid):
        """Fit ``temperature_`` (the ``temperature`` parameter)."""
        self.temperature_ = fit_temperature(self, valid)

    def _fitted_state(self):
        state = super()._fitted_state()
        state["classes"] = {
            "values": self.classes_.tolist(),
            "dtype": self.classes_.dtype.str,
        }
        state["temperature"] = float(getattr(self, "temperature_", 1.0))
        return state

    def _set_fitted_state(self, state):
        super()._set_fitted_state(state)
        classes = state["classes"]
        self.classes_ = np.asarray(classes["values"], dtype=np.dtype(classes["dtype"]))
        t = state.get("temperature", 1.0)  # files before 0.3 have none
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 1e6:
            raise ValueError(
                f"The model file has an invalid fitted temperature {t!r}; expected a "
                "positive number."
            )
        self.temperature_ = float(t)

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
        # pickles of older versions have no temperature_
        t = getattr(self, "temperature_", 1.0)
        logits = torch.as_tensor(logits, dtype=torch.float64) / t
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
            ``np.log(predict_proba(X))`` (as scikit-learn's classifiers; -inf
            only where a probability underflows float64).
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

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

    def _after_fit(self, valid):
        """What a kind of estimator fits after training, on the validation
        split ``valid`` (or None): a regressor nothing (classifiers: the
        temperature)."""

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


# The temperatures "auto" may choose.
TEMPERATURE_RANGE = (0.2, 5.0)


def fit_temperature(estimator, valid):
    """The ``temperature_`` of a fitted classifier: 1 unless its
    ``temperature`` parameter asks for one; "auto" minimises the log-loss of
    the temperature-scaled outputs on the validation split ``valid`` (one
    parameter, LBFGS on its logarithm)."""
    temperature = getattr(estimator, "temperature", None)
    if temperature is None:
        return 1.0
    if temperature != "auto":
        return float(temperature)
    if valid is None or valid.y is None or len(valid) < 2:
        warnings.warn(
            "temperature='auto' is fitted on the internal validation split; this fit "
            "has none (validation_fraction=0 or None): temperature_ is 1.",
            UserWarning,
            stacklevel=5,
        )
        return 1.0
    logits = estimator.net_.predict_logits(valid.with_targets(None))
    logits = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(valid.y)
    if estimator.task_ == "multiclass":
        y = y.long()

        def loss_of(z):
            return nn.functional.cross_entropy(z, y)
    else:
        y = y.to(torch.float64).reshape(logits.shape)

        def loss_of(z):
            return nn.functional.binary_cross_entropy_with_logits(z, y)

    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100)

    def closure():
        opt.zero_grad()
        loss = loss_of(logits / log_t.exp())
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not np.isfinite(t):
        return 1.0
    low, high = TEMPERATURE_RANGE
    if not low <= t <= high:
        # A split classified (almost) perfectly has no best temperature: its
        # log-loss keeps falling as the temperature does (digits: 0.03).
        warnings.warn(
            f"temperature='auto': the validation split's log-loss is lowest at "
            f"temperature {t:.3g}, outside [{low}, {high}] (a split the network "
            f"classifies almost perfectly says little about its confidence); "
            f"temperature_ is {min(max(t, low), high)}.",
            UserWarning,
            stacklevel=5,
        )
        t = min(max(t, low), high)
    return t
