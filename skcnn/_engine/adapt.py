"""What changes a trained network's weights after training, without labels:
batch-norm statistics re-estimated on the images to be predicted (AdaBN)
and the interpolation of fine-tuned weights with their starting point
(WiSE-FT)."""

from __future__ import annotations

import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .._data import prepare_images
from .._device import eval_mode, intra_op_threads

__all__ = ["AdaptMixin", "batch_norms", "interpolate_state", "reestimate_batch_norm"]


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


class AdaptMixin:
    """``adapt_bn`` of every network estimator."""

    def adapt_bn(self, X):
        """Re-estimate the batch-norm statistics on unlabelled images ``X``.

        Every batch norm's running mean and variance become those of ``X``
        (AdaBN, Li et al. 2016): the images of the population the model will
        predict on, e.g. another scanner, another drawing process. Labels are
        never used; weights do not change; everything else of the fit stays.
        It helps when the new population differs in low-level statistics
        (contrast, stroke width, blur) and ``X`` holds a few hundred images
        or more; it costs one forward pass over ``X``. Score the adapted
        model apart from unadapted ones: it has seen the test images.

        Parameters
        ----------
        X : array-like or list of image paths
            Images, as in :meth:`fit`.

        Returns
        -------
        self : object
            The estimator, its batch-norm statistics those of ``X``.
        """
        check_is_fitted(self, "net_")
        if not batch_norms(self.module_):
            raise ValueError(
                f"{type(self).__name__}'s network has no batch-norm layer: "
                "adapt_bn has no statistics to re-estimate."
            )
        data, _, _ = prepare_images(self, X, reset=False)
        if len(data) < 2:
            raise ValueError(
                f"adapt_bn needs at least 2 images to estimate statistics; got {len(data)}."
            )
        with intra_op_threads(self._threads()):
            batches = self.net_.get_iterator(data, training=False)
            reestimate_batch_norm(self.module_, batches)
        return self
