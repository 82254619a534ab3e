"""The training recipe: learning-rate schedules, mixup / CutMix and
test-time augmentation. Schedules run through skorch's ``LRScheduler``
callback; mixing happens on the device, one draw per batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skorch.callbacks import LRScheduler

__all__ = ["MixBatch", "make_lr_scheduler", "tta_views"]


class EpochFactor:
    """The learning-rate factor of epoch ``e`` (0-based) of a schedule that
    spans ``total`` epochs; later epochs (warm starts, partial_fit beyond
    ``total``) start the cycle again. Picklable (no closures)."""

    def __init__(self, kind, total, warmup=0):
        self.kind, self.total, self.warmup = kind, max(1, int(total)), int(warmup)

    def __call__(self, epoch):
        e = epoch % self.total
        if self.kind == "cosine":
            if e < self.warmup:
                return (e + 1) / (self.warmup + 1)
            span = max(1, self.total - self.warmup)
            return 0.01 + 0.99 * 0.5 * (
                1 + math.cos(math.pi * (e - self.warmup) / span)
            )
        # "onecycle", per epoch: from lr/25 up to lr over the warm-up (30% of
        # the epochs unless warmup_epochs is given), then cosine down to
        # lr/25/1e4, as torch's OneCycleLR does per batch.
        rise = self.warmup or max(1, round(0.3 * self.total))
        start, end = 1 / 25, 1 / 25 / 1e4
        if e < rise:
            return start + (1 - start) * e / rise
        span = max(1, self.total - rise - 1)
        t = min(1.0, (e - rise) / span)
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))


def _lambda_schedule(optimizer, lr_lambda, last_epoch=-1):
    # skorch resumes a schedule at len(history) - 1; torch then needs the
    # initial lr recorded (a loaded model's fresh optimizer has none).
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda, last_epoch=last_epoch
    )


def make_lr_scheduler(kind, max_epochs, warmup_epochs, monitor):
    """skorch's LRScheduler callback for ``lr_schedule=kind``."""
    if kind == "plateau":
        return LRScheduler(
            policy=torch.optim.lr_scheduler.ReduceLROnPlateau,
            monitor=monitor,
            factor=0.5,
            patience=2,
        )
    return LRScheduler(
        policy=_lambda_schedule,
        lr_lambda=EpochFactor(kind, max_epochs, warmup_epochs),
    )


class MixBatch:
    """mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) of a batch.

    One mixing weight ``lam ~ Beta(alpha, alpha)`` and one permutation per
    batch; with both enabled, each batch uses one of them at random. The
    loss is ``lam * loss(y) + (1 - lam) * loss(y[perm])`` with each side's
    sample weights (class weights included), which for binary / multilabel
    targets equals the loss on the mixed targets.
    """

    def __init__(self, mixup=0.0, cutmix=0.0, seed=0):
        self.mixup, self.cutmix = float(mixup), float(cutmix)
        self.rng = np.random.default_rng(int(seed))

    def __call__(self, x):
        """Mix ``x``; return ``(x_mixed, perm, lam)``."""
        n = x.shape[0]
        kinds = [
            k for k, a in (("mixup", self.mixup), ("cutmix", self.cutmix)) if a > 0
        ]
        kind = kinds[self.rng.integers(len(kinds))]
        alpha = self.mixup if kind == "mixup" else self.cutmix
        lam = float(self.rng.beta(alpha, alpha))
        perm = torch.as_tensor(self.rng.permutation(n), device=x.device)
        if kind == "mixup":
            return lam * x + (1 - lam) * x[perm], perm, lam
        return self._cut(x, perm, lam)

    def _cut(self, x, perm, lam):
        spatial = x.shape[2:]
        ratio = math.sqrt(1 - lam)
        lo_hi = []
        for side in spatial:
            cut = int(side * ratio)
            centre = int(self.rng.integers(side))
            lo_hi.append((max(0, centre - cut // 2), min(side, centre + cut // 2)))
        x = x.clone()
        index = (slice(None), slice(None), *(slice(a, b) for a, b in lo_hi))
        x[index] = x[perm][index]
        area = np.prod([b - a for a, b in lo_hi]) / np.prod(spatial)
        return x, perm, float(1 - area)


class PerImageView:
    """One test-time view: each image's random transform is seeded by the
    view and by the image's own bytes, so an image gets the same view
    whatever else is in the call (predictions are subset-invariant)."""

    def __init__(self, augment, seed):
        self.augment, self.seed = augment, int(seed)

    def __call__(self, x):
        import hashlib

        out = []
        for image in x:
            digest = hashlib.blake2b(
                image.detach().cpu().numpy().tobytes(), digest_size=8
            ).digest()
            self.augment.seed((int.from_bytes(digest, "little") ^ self.seed) % 2**63)
            out.append(self.augment(image[None])[0])
        return torch.stack(out)


def tta_views(tta, augment, random_state):
    """The transforms of the test-time views: ``tta`` copies of the
    training augmentation (small shifts without one), or one per spec of a
    list; seeded per view and per image, so predictions repeat exactly and
    do not depend on the other images of the call."""
    from ..augmentation import make_augment

    if isinstance(tta, list):
        specs = tta
    else:
        specs = [augment if augment not in (None, False) else {"shift": 0.05}] * int(
            tta
        )
    seed = random_state if isinstance(random_state, (int, np.integer)) else 0
    views = []
    for i, spec in enumerate(specs):
        view = make_augment(spec)
        if view is None:
            raise ValueError(f"tta holds {spec!r}, which is no transform.")
        if hasattr(view, "seed"):
            view = PerImageView(view, int(seed) * 1009 + 17 + i)
        views.append(view)
    return views
