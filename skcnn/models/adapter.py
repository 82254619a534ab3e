"""Input adaptation in front of an image backbone, run on the device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InputAdapter"]


class InputAdapter(nn.Module):
    """Repeat gray to 3 channels, resize, normalise; all batched on the device.

    Parameters
    ----------
    in_channels : int
        Channels of the user's images.
    backbone_channels : int, default=3
        Channels the backbone's first layer takes; 1-channel input is
        repeated to match, any other mismatch is an error raised at build.
    input_size : int, (H, W) or None
        Resize every input to this size (bilinear).
    min_size : int, default=1
        Inputs smaller than this on a side are enlarged to it, so that deep
        backbones do not pool small images (or 1-D signals, seen as 1-row
        images) down to nothing.
    mean, std : sequence of float or None
        Per-channel normalisation (pretrained weights' own).
    """

    def __init__(
        self,
        in_channels,
        backbone_channels=3,
        input_size=None,
        min_size=1,
        mean=None,
        std=None,
    ):
        super().__init__()
        if in_channels != backbone_channels and in_channels != 1:
            raise ValueError(
                f"The backbone takes {backbone_channels}-channel images; got {in_channels} "
                "channels. Pass 1-channel (repeated) or matching images."
            )
        self.repeat = (
            backbone_channels if in_channels == 1 and backbone_channels != 1 else 0
        )
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.input_size = (
            tuple(int(s) for s in input_size) if input_size is not None else None
        )
        self.min_size = int(min_size)
        self.mean = self.std = None
        if mean is not None:
            self.set_normalisation(mean, std)

    def set_normalisation(self, mean, std):
        """Normalise inputs with ``mean`` and ``std`` (one value per backbone
        channel; sequences or tensors), kept as buffers of the module."""
        for name, value in (("mean", mean), ("std", std)):
            if name in self._buffers:
                del self._buffers[name]
            else:
                delattr(self, name)
            value = torch.as_tensor(value, dtype=torch.float32).clone()
            self.register_buffer(name, value.view(1, -1, 1, 1))

    def output_size(self, spatial):
        """The (H, W) that images of size ``spatial`` reach the backbone at."""
        return self.input_size or tuple(max(s, self.min_size) for s in spatial)

    def forward(self, x):
        if x.ndim == 3:  # 1-D signals: a 1-row image
            x = x.unsqueeze(2)
        if self.repeat:
            x = x.expand(-1, self.repeat, -1, -1)
        size = self.output_size(x.shape[-2:])
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if self.mean is not None:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return x
