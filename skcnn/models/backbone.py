"""A backbone cut for feature extraction: adapter, network, cut point, pooling."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeatureBackbone", "ForwardTo", "pool"]


class _StopForward(Exception):
    """Raised by the layer hook: nothing after the requested layer is computed."""


class ForwardTo:
    """Runs a model up to one of its modules and returns that module's output.

    A forward hook on the module stops the pass there, so nothing after it
    is computed, whatever the model's ``forward`` does next.

    Parameters
    ----------
    model : nn.Module
        The network.
    name : str
        The module (``model.get_submodule(name)``) whose output is wanted.
    """

    def __init__(self, model, name):
        self.name = name
        self._captured = None
        model.get_submodule(name).register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        self._captured = output
        raise _StopForward

    def __call__(self, model, x):
        try:
            model(x)
        except _StopForward:
            out, self._captured = self._captured, None
            return out
        raise RuntimeError(f"Layer {self.name!r} was not reached in the forward pass.")


def pool(out, pooling):
    """A feature map as one vector per sample: ``"avg"`` or ``"max"`` over
    its positions, None flattens it; vectors pass through."""
    if out.ndim <= 2:
        return out
    if pooling == "avg":
        return out.flatten(2).mean(2)
    if pooling == "max":
        return out.flatten(2).amax(2)
    return out.flatten(1)


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
        self._forward_to = None if layer is None else ForwardTo(model, layer)

    def forward(self, x):
        x = self.adapter(x)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.layer is None:
            return pool(self.model(x), self.pooling)
        return pool(self._forward_to(self.model, x), self.pooling)
