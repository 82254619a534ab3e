"""torchvision DenseNets of any configuration, with a small-image stem.

The architecture is torchvision's (``torchvision.models.DenseNet``), not a
rewrite. What this module adds is what training from scratch needs: custom
configurations, a first convolution for the images' own channel count, and
a small-image stem (3x3 conv, stride 1, no max-pool) so that 8x8 to 32x32
images are not pooled away. Everything else (the head, the input adapter,
fine-tuning by stages) is the one stack every backbone shares:
:mod:`skcnn.backbones` and :class:`~skcnn.models.finetune.PretrainedNet`.
"""

from __future__ import annotations

import warnings

from torch import nn

from .finetune import PretrainedNet

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
    # here, not at import: torchvision's import (its ops import torch._dynamo)
    # took 1 s of the comparison's start, which builds no network itself
    from torchvision.models import DenseNet

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


class DenseNetModule(PretrainedNet):
    """Deprecated (removed in 0.3): a :class:`~skcnn.models.finetune.PretrainedNet`
    over a torchvision DenseNet, which is what ``DenseNetClassifier`` builds.

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
        warnings.warn(
            "DenseNetModule is deprecated and will be removed in 0.3; use "
            "PretrainedNet(build_backbone(densenet, stages=densenet_stages(n_blocks)), "
            "n_classes), as DenseNetClassifier does.",
            FutureWarning,
            stacklevel=2,
        )
        from ..backbones import build_backbone, densenet_stages

        n_blocks = sum(
            n.startswith("denseblock") for n, _ in backbone.features.named_children()
        )
        super().__init__(
            build_backbone(backbone, stages=densenet_stages(n_blocks)),
            n_classes,
            adapter=adapter,
        )
