"""A backbone cut for feature extraction: adapter, network, cut point, pooling."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeatureBackbone"]


class _StopForward(Exception):
    """Raised by the layer hook: nothing after the requested layer is computed."""


class FeatureBackbone(nn.Module):
    """Adapter + backbone, truncated at its penultimate features or a hooked layer.

    Parameters
    ----------
    adapter : nn.Module
        Input adaptation (channels, size, normalisation) in front.
    model : nn.Module
        The backbone; with ``layer=None`` its classifier must already be cut
        (replaced by ``nn.Identity``).
    layer : str or None
        Module whose output is the feature map; the forward pass stops there.
    pooling : {"avg", "max", None}
        How a feature map becomes a vector; None flattens it.
    channels_last : bool, default=False
        Channels-last memory format for the backbone's convolutions.
    """

    def __init__(self, adapter, model, layer, pooling, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.adapter = adapter
        self.model = model
        self.layer = layer
        self.pooling = pooling
        self._captured = None
        if layer is not None:
            model.get_submodule(layer).register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        self._captured = output
        raise _StopForward

    def forward(self, x):
        x = self.adapter(x)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.layer is None:
            out = self.model(x)
        else:
            try:
                self.model(x)
                raise RuntimeError(
                    f"Layer {self.layer!r} was not reached in the forward pass."
                )
            except _StopForward:
                out = self._captured
                self._captured = None
        if out.ndim > 2:
            if self.pooling == "avg":
                out = out.flatten(2).mean(2)
            elif self.pooling == "max":
                out = out.flatten(2).amax(2)
            else:
                out = out.flatten(1)
        return out
