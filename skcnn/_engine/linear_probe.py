"""A linear probe as the starting head of a fine-tuning (LP-FT).

Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution" (ICLR 2022): a random head's large early gradients
distort the backbone's features; a head fitted first on the frozen features
(a linear probe) does not. The probe here is scikit-learn's
``LogisticRegression`` on the standardised features of the training split;
the standardisation is folded into the head's weights, so the network's
outputs are the probe's decision function.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from .._data import BatchIterator
from .._device import autocast, eval_mode

__all__ = ["PROBE_C", "fit_linear_probe", "probe_features"]

# Inverse L2 strength of the probe on standardised features; measured in
# benchmarks/bench_transfer.py (digits 10 per class and LFW).
PROBE_C = 0.1
# converged well past sklearn's default tol=1e-4: the probe is the optimum
_TOL, _MAX_ITER = 1e-6, 2000


def probe_features(module, data, plan):
    """``module.forward_features`` of every sample of ``data`` (eval mode,
    no augmentation), with its targets and weights, as numpy arrays."""
    feats, ys, ws = [], [], []
    batches = BatchIterator(
        data,
        plan.batch_size,
        device=plan.device,
        channels_last=plan.channels_last,
    )
    with (
        eval_mode(module),
        torch.inference_mode(),
        autocast(plan.device, plan.amp_dtype),
    ):
        for xb, (yb, wb) in batches:
            feats.append(module.forward_features(xb).float().cpu())
            ys.append(yb.cpu())
            ws.append(None if wb is None else wb.cpu())
    weights = None if any(w is None for w in ws) else torch.cat(ws).numpy()
    return torch.cat(feats).numpy(), torch.cat(ys).numpy(), weights


def _logistic(Z, y, weights):
    """(coef, intercept, classes) of the probe; None when y has one class."""
    classes = np.unique(y)
    if len(classes) < 2:
        return None
    clf = LogisticRegression(C=PROBE_C, tol=_TOL, max_iter=_MAX_ITER)
    with warnings.catch_warnings():
        # a probe short of convergence is still a far better start than a random head
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Z, y, sample_weight=weights)
    return clf.coef_, clf.intercept_, clf.classes_


def fit_linear_probe(module, data, plan):
    """Set ``module.classifier`` to the linear probe of ``data``'s features.

    Binary tasks (one logit) and multilabel ones (one logit per label) get a
    binary probe per output, multiclass tasks a multinomial one. An output
    whose class is absent from ``data`` gets zero weights and a bias below
    every other. Returns the probe's training accuracy (the fraction of
    exact matches for multilabel targets).
    """
    F, y, weights = probe_features(module, data, plan)
    F = F.astype(np.float64)
    mean = F.mean(0)
    scale = F.std(0)
    scale[scale < 1e-12] = 1.0
    Z = (F - mean) / scale
    head = module.classifier
    n_out = head.out_features
    coef = np.zeros((n_out, F.shape[1]))
    bias = np.zeros(n_out)
    if plan.task == "multiclass":
        fitted = _logistic(Z, y.astype(int).ravel(), weights)
        if fitted is not None:
            c, b, classes = fitted
            if len(classes) == 2:  # sklearn's binary form: one row for classes[1]
                c, b = np.vstack([-c / 2, c / 2]), np.array([-b[0] / 2, b[0] / 2])
            coef[classes], bias[classes] = c, b
            absent = np.setdiff1d(np.arange(n_out), classes)
            bias[absent] = b.min() - 10.0
    else:  # binary (one logit) or multilabel (one per label)
        Y = y.reshape(len(y), -1)
        for k in range(n_out):
            fitted = _logistic(Z, Y[:, k].astype(int), weights)
            if fitted is None:
                rate = float(Y[:, k].mean())
                bias[k] = 10.0 if rate > 0.5 else -10.0
            else:
                coef[k], bias[k] = fitted[0][0], fitted[1][0]
    # logits = coef @ ((f - mean) / scale) + bias = (coef / scale) @ f + bias'
    folded = coef / scale
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(folded, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(bias - folded @ mean, dtype=head.bias.dtype))
    logits = Z @ coef.T + bias
    if plan.task == "multiclass":
        return float(np.mean(np.argmax(logits, 1) == y.astype(int).ravel()))
    return float(np.mean(((logits > 0) == (y.reshape(len(y), -1) > 0.5)).all(1)))
