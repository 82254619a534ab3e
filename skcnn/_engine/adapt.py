"""What changes a trained network's weights after training, without labels:
batch-norm statistics re-estimated on the images to be predicted (AdaBN)
and the interpolation of fine-tuned weights with their starting point
(WiSE-FT)."""

from __future__ import annotations

import torch
from torch import nn

from .._device import eval_mode

__all__ = ["batch_norms", "interpolate_state", "reestimate_batch_norm"]


def batch_norms(module):
    """The batch-norm layers of ``module`` that keep running statistics."""
    return [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def reestimate_batch_norm(module, batches):
    """Replace the running mean and variance of every batch norm of
    ``module`` by those of the images in ``batches`` (a cumulative average
    over all of them), the rest of the network in eval mode (AdaBN, Li et
    al. 2016). Returns the number of layers re-estimated."""
    norms = batch_norms(module)
    momenta = [m.momentum for m in norms]
    with eval_mode(module), torch.no_grad():
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: every batch counts
            m.train()
        try:
            for xb in batches:
                module(xb)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
    return len(norms)


def interpolate_state(start, end, alpha):
    """``start + alpha * (end - start)`` for every floating-point tensor of two
    state dicts (WiSE-FT, Wortsman et al. 2022); other entries (counters)
    are ``end``'s."""
    return {
        k: start[k] + alpha * (v - start[k]) if v.is_floating_point() else v
        for k, v in end.items()
    }
