"""What fine-tuning estimators share: one transfer-learning stack.

A backbone from :mod:`skcnn.backbones`, cut after stage ``layer``; a new
head started at random or from a linear probe of the frozen features
(``head_init``), trained alone for ``head_epochs``; then the last
``finetune_depth`` stages unfrozen, the backbone at ``lr *
backbone_lr_scale``. Used by :class:`~skcnn.DenseNetClassifier` and
:class:`~skcnn.PretrainedClassifier`, whose module is a
:class:`~skcnn.models.finetune.PretrainedNet`.
"""

from __future__ import annotations

import warnings

from sklearn.utils.validation import check_is_fitted

from ._engine.adapt import interpolate_state
from ._engine.callbacks import finetune_callbacks
from ._engine.linear_probe import fit_linear_probe
from .models.finetune import PretrainedNet
from .pretrained import ResolvedWeights

__all__ = ["TransferMixin"]


def _state_copy(module):
    """A copy of the weights in host memory (a GPU keeps only the network)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class TransferMixin:
    """Cut, head start, head epochs, fine-tuning depth and the backbone's
    learning rate."""

    _shared_group = ("transfer",)
    # the least size of input_size="auto"
    _auto_smallest = 96

    def _transfer_module(self, backbone, layout, n_outputs, input_size, dropout=0.0):
        """The network: ``backbone`` cut after ``layer``, its input adapter
        and a new head, frozen below ``finetune_depth``."""
        backbone = backbone.cut(self.layer)
        module = PretrainedNet(
            backbone,
            n_outputs,
            adapter=backbone.input_adapter(layout, input_size, self._auto_smallest),
            dropout=dropout,
            pooling=self.pooling,
            input_shape=layout.shape,
            keep_bn_statistics=self.bn_statistics == "frozen",
        )
        return module.set_finetune_depth(self.finetune_depth)

    def _head_init_is_the_fit(self):
        # the head alone on frozen features: the probe is its optimum
        return self.head_init == "probe" and self.finetune_depth == 0

    def _init_head(self, train, plan):
        self.probe_score_ = None
        if self.head_init == "probe":
            self.probe_score_ = fit_linear_probe(self.module_, train, plan)
        # WiSE-FT's starting point, kept in memory only (not in model files)
        self._wise_start = _state_copy(self.module_)

    def _after_fit(self, valid):
        self._wise_end = _state_copy(self.module_)
        self._interpolate(self.wise_alpha)
        super()._after_fit(valid)

    def _interpolate(self, alpha):
        if alpha == 1.0:
            self.module_.load_state_dict(self._wise_end)
            return
        start = getattr(self, "_wise_start", None)
        if start is None:
            raise ValueError(
                f"{type(self).__name__} has no starting weights to interpolate with "
                "(a loaded model keeps only its fitted weights): fit it again "
                "with wise_alpha set."
            )
        state = interpolate_state(start, self._wise_end, float(alpha))
        self.module_.load_state_dict(state)

    def with_wise_alpha(self, alpha):
        """A fitted copy whose weights are WiSE-FT's interpolation at ``alpha``
        between the starting point and the fine-tuned weights of this fit
        (``wise_alpha``), without training again: one fit, then choose
        ``alpha`` on a selection set. ``temperature_`` is this fit's.

        Parameters
        ----------
        alpha : float in [0, 1]
            0: the starting point (the probe with ``head_init="probe"``);
            1: the fine-tuned weights.

        Returns
        -------
        estimator : object
            A new fitted estimator, ``wise_alpha=alpha``.
        """
        import copy

        check_is_fitted(self, "net_")
        if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
            raise ValueError(f"alpha must be a number in [0, 1]; got {alpha!r}.")
        if getattr(self, "_wise_end", None) is None:
            raise ValueError(
                f"This {type(self).__name__} was not fitted in this session (a "
                "loaded model keeps only its fitted weights): fit it to interpolate."
            )
        new = copy.deepcopy(self)
        new.wise_alpha = float(alpha)
        new._interpolate(new.wise_alpha)
        return new

    @property
    def layer_(self):
        """The stage the backbone was cut after: ``layer``, or the first stage
        when it has fewer (None: the whole backbone)."""
        check_is_fitted(self, "net_")
        return self.module_.layer

    @property
    def finetune_depth_(self):
        """The depth that trained: ``finetune_depth``, or every stage of the
        (cut) backbone when it has fewer."""
        check_is_fitted(self, "net_")
        return self.module_.finetune_depth

    def _check_params(self):
        super()._check_params()
        if self.finetune_depth != 0 and self.head_epochs >= self.max_epochs:
            warnings.warn(
                f"head_epochs={self.head_epochs} >= max_epochs={self.max_epochs}: "
                "the backbone never trains, whatever finetune_depth says "
                f"({self.finetune_depth!r}). Raise max_epochs, lower head_epochs, or "
                "pass finetune_depth=0 for a frozen base.",
                UserWarning,
                stacklevel=4,
            )

    def _extra_callbacks(self, module):
        if not self.head_epochs or self.finetune_depth == 0:
            return []
        return finetune_callbacks(
            module.backbone_prefix,
            module.trainable_names(self.finetune_depth),
            int(self.head_epochs),
        )

    def _optimizer_kwargs(self):
        if self.backbone_lr_scale == 1.0:
            return {}
        lr = float(self.lr) * float(self.backbone_lr_scale)
        prefix = PretrainedNet.backbone_prefix
        return {
            "param_groups": [
                (pattern, {"lr": lr})
                for pattern in (f"{prefix}*", f"_orig_mod.{prefix}*")
            ]
        }

    def _stand_in(self, backbone):
        """``backbone`` (built without weights) for a model being loaded: its
        file holds every weight, including the input normalisation; what
        matters is whether it was pretrained."""
        if self.weights_source_ is not None:
            backbone.weights = ResolvedWeights({}, source=self.weights_source_)
        return backbone
