"""DenseNetClassifier: torchvision DenseNets, from scratch or pretrained."""

from __future__ import annotations

import os

from ._base import BaseNetEstimator, NetClassifierMixin
from ._transfer import TransferMixin
from ._validation import (
    DEPRECATED,
    Int,
    Num,
    Sizes,
    StrOptions,
    deprecated_name,
    renamed,
)
from .backbones import build_backbone, densenet_stages
from .models.densenet import DENSENET_CONFIGS, make_densenet

__all__ = ["DenseNetClassifier"]

_SMALL_IMAGE = 64


class DenseNetClassifier(TransferMixin, NetClassifierMixin, BaseNetEstimator):
    """DenseNet classifier with fine-tuning depth as a hyperparameter.

    The architecture is torchvision's. Trained from scratch, small images
    (<= 64 px) get a small-image stem (3x3 conv, no max-pool). With
    ``weights``, the ImageNet stem and weights are loaded, the head is
    replaced for the task's classes and ``finetune_depth`` chooses how much of
    the backbone trains (the classic transfer-learning recipe: a new head on
    a frozen base, then the top blocks unfrozen at a lower learning rate).
    A named ``arch`` with ``weights`` is the same network, built by the same
    code (:mod:`skcnn.backbones`), as ``PretrainedClassifier(arch,
    weights=...)``; the stages are the dense blocks.

    Inputs that are not 3-channel: 1-channel images are repeated to 3
    channels on the device for a pretrained backbone; from scratch, the first
    convolution takes the images' own channel count.

    Parameters
    ----------
    arch : {"densenet121", "densenet161", "densenet169", "densenet201"} or None, default=None
        A named torchvision architecture; None builds a DenseNet-BC from
        ``growth_rate``, ``block_config`` and ``num_init_features``.
    growth_rate : int, default=12
    block_config : tuple of int, default=(4, 4, 4)
        Dense layers per dense block.
    num_init_features : int, default=24
    bn_size : int, default=4
    dropout : float, default=0.0
        Dropout after each dense layer (torchvision's ``drop_rate``).
    drop_rate : float
        Deprecated old name of ``dropout`` (removed in 0.3).
    memory_efficient : bool, default=False
        Gradient checkpointing in dense layers (less memory, slower).
    weights : None, str, path or URL, default=None
        ``"DEFAULT"`` / ``"IMAGENET1K_V1"`` (torchvision, through the torch hub
        cache, hash checked), a local ``.pth`` / ``.safetensors`` state dict, or
        a URL. Loaded with ``weights_only=True``; never unpickles objects.
    input_size : int, (H, W) or None, default=None
        Resize inputs to this size on the device.
    stem : {"auto", "small", "imagenet"}, default="auto"
        "auto" is "small" for images <= 64 px trained from scratch.
    @shared_parameters@

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skcnn import DenseNetClassifier
    >>> d = load_digits()
    >>> clf = DenseNetClassifier(block_config=(2, 2), max_epochs=1, random_state=0)
    >>> clf.fit(d.images[:100], d.target[:100]).predict(d.images[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        "arch": [StrOptions(set(DENSENET_CONFIGS)), None],
        "growth_rate": [Int(1)],
        "block_config": [Sizes(1, nonempty=True)],
        "num_init_features": [Int(1)],
        "bn_size": [Int(1)],
        "dropout": [Num(0, 1, closed="left")],
        "drop_rate": deprecated_name([Num(0, 1, closed="left")]),
        "memory_efficient": ["boolean"],
        "weights": [None, str, os.PathLike, dict],
        "input_size": [Int(1), Sizes(1, nonempty=True), None],
        "stem": [StrOptions({"auto", "small", "imagenet"})],
    }
    # what a model file does not restore (skcnn._params.places)
    _places = {"weights": "source"}

    def __init__(
        self,
        arch=None,
        growth_rate=12,
        block_config=(4, 4, 4),
        num_init_features=24,
        bn_size=4,
        dropout=0.0,
        memory_efficient=False,
        weights=None,
        finetune_depth="all",
        head_epochs=0,
        backbone_lr_scale=1.0,
        layer=None,
        pooling="avg",
        head_init="random",
        bn_statistics="batch",
        input_size=None,
        stem="auto",
        max_epochs=30,
        batch_size="auto",
        lr=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        clip_grad_norm=None,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=6,
        tol=0.0,
        monitor="auto",
        augment=None,
        image_shape=None,
        channels="auto",
        device="auto",
        precision="auto",
        compile=False,
        random_state=None,
        verbose=0,
        warm_start=False,
        checkpoint_dir=None,
        num_workers=0,
        num_threads="auto",
        callbacks=None,
        progress=False,
        lr_schedule=None,
        warmup_epochs=0,
        schedule_epochs=None,
        mixup=0.0,
        cutmix=0.0,
        tta=0,
        class_weight=None,
        label_smoothing=0.0,
        temperature=None,
        wise_alpha=1.0,
        drop_rate=DEPRECATED,
    ):
        self._set_init_params(locals())

    def _backbone(self, weights, *, small_stem=False, in_channels=3):
        """The DenseNet with ``weights`` loaded and its head cut: a named
        ``arch`` from the backbone table, otherwise this configuration."""
        options = dict(
            bn_size=self.bn_size,
            drop_rate=renamed(self, "drop_rate", "dropout"),
            memory_efficient=self.memory_efficient,
        )
        if self.arch is not None and not small_stem and in_channels == 3:
            return build_backbone(self.arch, weights, **options)
        model = make_densenet(
            self.arch,
            growth_rate=self.growth_rate,
            block_config=self.block_config,
            num_init_features=self.num_init_features,
            small_stem=small_stem,
            in_channels=in_channels,
            **options,
        )
        return build_backbone(
            model, weights, stages=densenet_stages(len(self._blocks()))
        )

    def _resolve_pretrained(self):
        return None if self.weights is None else self._backbone(self.weights)

    def _saved_pretrained(self):
        if self.weights_source_ is None:
            return None
        return self._stand_in(self._backbone(None))

    def _build_module(self, layout, n_outputs, pretrained=None):
        size = self.input_size or layout.spatial
        if isinstance(size, int):
            size = (size, size)
        small = self.stem == "small" or (
            self.stem == "auto" and pretrained is None and max(size) <= _SMALL_IMAGE
        )
        if pretrained is not None and small:
            raise ValueError(
                "stem='small' cannot take pretrained weights; use stem='auto' or 'imagenet'."
            )
        backbone = pretrained
        if backbone is None:
            backbone = self._backbone(
                None, small_stem=small, in_channels=layout.in_channels
            )
        # Each transition halves the map; the ImageNet stem quarters it.
        n_down = len(backbone.stages) - 1 + (0 if small else 2)
        backbone.min_size = 2**n_down
        return self._transfer_module(backbone, layout, n_outputs, self.input_size)

    @classmethod
    def _from_fitted_state(cls, params, state, weights):
        # skcnn <= 0.2 kept the DenseNet's features at the top of the module
        weights = {
            f"body.{k}" if k.startswith("features.") else k: v
            for k, v in weights.items()
        }
        return super()._from_fitted_state(params, state, weights)

    def _blocks(self):
        """Dense layers per block."""
        return DENSENET_CONFIGS[self.arch][1] if self.arch else self.block_config
