"""Fine-tuning depth for any network made of a backbone's stages and a head.

A module that mixes in :class:`FinetuneMixin` names its head (``head_prefix``),
its backbone (``backbone_prefix``) and the parameter-name prefixes where its
stages start (``stage_starts()``, in forward order). ``finetune_depth`` then
means the same for every architecture: 0 trains the head alone, ``k`` the
last ``k`` stages and everything after them (final norms, a 1x1 head conv;
every stage when there are fewer than ``k``), ``-k`` the first ``k`` stages
and what comes before them (a stem; surgical fine-tuning), ``"all"``
everything. Frozen batch-norm layers stay in eval mode, so their
running statistics keep the pretrained values.
"""

from __future__ import annotations

import torch
from torch import nn

from .._device import eval_mode
from .backbone import CutModule, ForwardTo, pool

__all__ = ["FinetuneMixin", "ParamNames", "PretrainedNet"]


class FinetuneMixin:
    """Freezing by stages; see the module docstring."""

    head_prefix = "classifier."
    backbone_prefix = "features."

    def stage_starts(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def trained_depth(self, depth):
        """The stages ``finetune_depth=depth`` trains: ``depth``, or all of
        them when there are fewer ("all" stays "all"; a negative depth counts
        the first stages, at most all of them)."""
        if depth == "all":
            return depth
        if not isinstance(depth, int) or isinstance(depth, bool):
            raise ValueError(f"finetune_depth must be 'all' or an int; got {depth!r}.")
        n = len(self.stage_starts())
        return max(depth, -n) if depth < 0 else min(depth, n)

    def trainable_names(self, depth):
        """Names of the parameters that train at fine-tuning ``depth``."""
        names = [n for n, _ in self.named_parameters()]
        head = {n for n in names if n.startswith(self.head_prefix)}
        body = [n for n in names if n.startswith(self.backbone_prefix)]
        depth = self.trained_depth(depth)
        if depth == "all":
            return head | set(body)
        if depth == 0:
            return head
        starts = self.stage_starts()
        if depth < 0:
            # surgical: the layers before the first stage (a stem) and the
            # first -depth stages, where input-level shifts act
            if -depth >= len(starts):
                return head | set(body)
            end = next(
                i for i, n in enumerate(body) if n.startswith(starts[-depth] + ".")
            )
            return head | set(body[:end])
        start = starts[len(starts) - depth]
        first = next(i for i, n in enumerate(body) if n.startswith(start + "."))
        return head | set(body[first:])

    def set_finetune_depth(self, depth):
        """Train the head and the last ``depth`` stages (all of them when
        there are fewer); ``self.finetune_depth`` is the depth that trains."""
        trainable = self.trainable_names(depth)
        for name, p in self.named_parameters():
            p.requires_grad_(name in trainable)
        self.finetune_depth = self.trained_depth(depth)
        return self

    # True: every batch norm keeps its running statistics while training
    # (its scale and shift still train where they are unfrozen)
    keep_bn_statistics = False

    def train(self, mode=True):
        super().train(mode)
        if mode:
            # Frozen batch norm keeps its running statistics: eval mode.
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    params = list(m.parameters(recurse=False))
                    frozen = params and not any(p.requires_grad for p in params)
                    if frozen or self.keep_bn_statistics:
                        m.eval()
        return self


class PretrainedNet(FinetuneMixin, CutModule):
    """Input adapter + a backbone returning features + a new head.

    Parameters
    ----------
    backbone : skcnn.backbones.Backbone
        The built backbone (its head cut), possibly cut after a stage
        (:meth:`~skcnn.backbones.Backbone.cut`).
    n_classes : int
        Outputs of the new linear head.
    adapter : nn.Module or None
        Channel repeat, resizing and normalisation in front of the backbone.
    dropout : float, default=0.0
        Dropout on the features, before the head.
    pooling : {"avg", "max", None}, default="avg"
        How the feature map of a cut backbone becomes a vector (None
        flattens it); a whole backbone pools as it was built to.
    input_shape : tuple or None
        ``(C, H, W)`` of the images, to size the head of a cut backbone.
    keep_bn_statistics : bool, default=False
        Every batch norm keeps its running statistics while training (its
        scale and shift still train where they are unfrozen).
    """

    backbone_prefix = "body."

    def __init__(
        self,
        backbone,
        n_classes,
        adapter=None,
        dropout=0.0,
        pooling="avg",
        input_shape=None,
        keep_bn_statistics=False,
    ):
        super().__init__()
        self.keep_bn_statistics = keep_bn_statistics
        self.adapter = adapter if adapter is not None else nn.Identity()
        self.body = backbone.model
        self.pooling = pooling
        self.layer = backbone.cut_layer
        self._forward_to = (
            None if backbone.cut_at is None else ForwardTo(self.body, backbone.cut_at)
        )
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.num_features = backbone.feature_dim
        if self._forward_to is not None:
            self.num_features = self._width(input_shape)
        self.classifier = nn.Linear(self.num_features, n_classes)
        nn.init.zeros_(self.classifier.bias)
        self._stage_starts = [self.backbone_prefix + s.start for s in backbone.stages]

    def _width(self, input_shape):
        """Features of the cut backbone on images of ``input_shape``."""
        if input_shape is None:
            raise ValueError("A cut backbone needs input_shape to size its head.")
        with eval_mode(self), torch.no_grad():
            return int(self.forward_features(torch.zeros(2, *input_shape)).shape[1])

    def stage_starts(self):
        return list(self._stage_starts)

    def forward_features(self, x):
        x = self.adapter(x)
        if self._forward_to is None:
            return self.body(x)
        return pool(self._forward_to(self.body, x), self.pooling)

    def forward_head(self, x, pre_logits=False):
        return x if pre_logits else self.classifier(self.dropout(x))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, n_classes):
        self.classifier = nn.Linear(self.num_features, n_classes)


class ParamNames:
    """A picklable parameter selector for skorch's freezing callbacks:
    matches names in ``names`` or starting with ``prefix``, with or without
    the ``_orig_mod.`` that ``torch.compile`` adds."""

    def __init__(self, names=(), prefix=None):
        self.names = frozenset(names)
        self.prefix = prefix

    def __call__(self, name):
        name = name.removeprefix("_orig_mod.")
        return name in self.names or (
            self.prefix is not None and name.startswith(self.prefix)
        )
