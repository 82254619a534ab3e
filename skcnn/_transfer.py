"""What fine-tuning estimators share: the classic transfer-learning recipe.

A new head on a pretrained base, trained alone for ``head_epochs``, then the
last ``finetune_depth`` stages unfrozen, the backbone at ``lr *
backbone_lr_scale``. Used by :class:`~skcnn.DenseNetClassifier` and
:class:`~skcnn.PretrainedClassifier`, whose modules mix in
:class:`~skcnn.models.finetune.FinetuneMixin`.
"""

from __future__ import annotations

import warnings

from ._engine.callbacks import finetune_callbacks
from .models.finetune import PretrainedNet
from .pretrained import ResolvedWeights

__all__ = ["TransferMixin"]


class TransferMixin:
    """Head epochs, fine-tuning depth and the backbone's learning rate."""

    _shared_group = ("transfer",)

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
