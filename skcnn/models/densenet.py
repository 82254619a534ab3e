"""torchvision DenseNets wrapped for skcnn: input adaptation, new head, freezing.

The architecture is torchvision's (``torchvision.models.DenseNet``), not a
rewrite. This module adds what the estimator needs around it:

- an :class:`~skcnn.models.adapter.InputAdapter` in front (gray to 3
  channels, resizing on the device, pretrained weights' normalisation);
- a small-image stem (3x3 conv, stride 1, no max-pool) so 8x8 to 32x32
  images are not pooled away when training from scratch;
- a classifier head for the task; ``set_finetune_depth`` (shared with every
  backbone, :mod:`skcnn.models.finetune`) freezes all but the last ``k``
  dense blocks. Frozen batch-norm layers stay in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import DenseNet

from .finetune import FinetuneMixin

__all__ = ["DenseNetModule", "DENSENET_CONFIGS", "make_densenet"]

# growth_rate, block_config, num_init_features, as torchvision's builders.
DENSENET_CONFIGS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}


def make_densenet(
    arch=None,
    *,
    growth_rate=32,
    block_config=(6, 12, 24, 16),
    num_init_features=64,
    bn_size=4,
    drop_rate=0.0,
    memory_efficient=False,
    small_stem=False,
    in_channels=3,
):
    """Build a torchvision DenseNet (named ``arch`` or custom), optionally with a small stem."""
    if arch is not None:
        if arch not in DENSENET_CONFIGS:
            raise ValueError(
                f"arch must be one of {sorted(DENSENET_CONFIGS)} or None; got {arch!r}."
            )
        growth_rate, block_config, num_init_features = DENSENET_CONFIGS[arch]
    net = DenseNet(
        growth_rate=int(growth_rate),
        block_config=tuple(int(b) for b in block_config),
        num_init_features=int(num_init_features),
        bn_size=int(bn_size),
        drop_rate=float(drop_rate),
        num_classes=1000,
        memory_efficient=bool(memory_efficient),
    )
    if small_stem or in_channels != 3:
        kernel, stride, pad = (3, 1, 1) if small_stem else (7, 2, 3)
        net.features.conv0 = nn.Conv2d(
            in_channels, int(num_init_features), kernel, stride, pad, bias=False
        )
        nn.init.kaiming_normal_(net.features.conv0.weight)
    if small_stem:
        net.features.pool0 = nn.Identity()
    return net


class DenseNetModule(FinetuneMixin, nn.Module):
    """Input adapter + torchvision DenseNet features + a new classifier.

    Parameters
    ----------
    backbone : torchvision.models.DenseNet
        The network whose ``features`` are kept.
    n_classes : int
        Outputs of the new classifier.
    adapter : InputAdapter or None
        Channel repeat, resizing and normalisation in front of the backbone.
    """

    def __init__(self, backbone, n_classes, adapter=None):
        super().__init__()
        self.adapter = adapter if adapter is not None else nn.Identity()
        self.features = backbone.features
        self.num_features = backbone.classifier.in_features
        self.classifier = nn.Linear(self.num_features, n_classes)
        nn.init.zeros_(self.classifier.bias)

    def forward_features(self, x):
        x = F.relu(self.features(self.adapter(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward_head(self, x, pre_logits=False):
        return x if pre_logits else self.classifier(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, n_classes):
        self.classifier = nn.Linear(self.num_features, n_classes)

    def stage_starts(self):
        """The dense blocks (each with the transition after it)."""
        return [
            f"features.{n}"
            for n, _ in self.features.named_children()
            if n.startswith("denseblock")
        ]
