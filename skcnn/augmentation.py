"""Batched data augmentation that runs on the training device.

One random affine transform per image (rotation, shift, zoom, shear, flips)
is applied to a whole batch with a single ``affine_grid`` / ``grid_sample``
call, plus optional Gaussian input noise. It is used on training batches
only; validation and prediction never see it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

__all__ = ["Augment", "make_augment"]


@dataclass
class Augment:
    """Random image transforms, in the spirit of Keras' ``ImageDataGenerator``.

    Parameters
    ----------
    rotation : float, default=0
        Maximum rotation in degrees (uniform in ``[-rotation, rotation]``).
    shift : float, default=0
        Maximum translation as a fraction of the image size.
    zoom : float, default=0
        Maximum zoom: the scale is uniform in ``[1 - zoom, 1 + zoom]``.
    shear : float, default=0
        Maximum shear angle in degrees.
    hflip, vflip : bool, default=False
        Flip horizontally / vertically with probability 0.5.
    noise : float, default=0
        Standard deviation of Gaussian noise added to the (0-1 scaled) input.

    Examples
    --------
    >>> import torch
    >>> aug = Augment(rotation=15, shift=0.1, hflip=True)
    >>> aug(torch.rand(4, 1, 8, 8)).shape
    torch.Size([4, 1, 8, 8])
    """

    rotation: float = 0.0
    shift: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    hflip: bool = False
    vflip: bool = False
    noise: float = 0.0

    def __post_init__(self):
        for name in ("rotation", "shift", "zoom", "shear", "noise"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"Augment {name} must be a number >= 0; got {value!r}."
                )
        if self.zoom >= 1:
            raise ValueError(f"Augment zoom must be < 1; got {self.zoom!r}.")
        self.generator = None

    @property
    def is_geometric(self):
        return any(
            (self.rotation, self.shift, self.zoom, self.shear, self.hflip, self.vflip)
        )

    def seed(self, seed):
        """Draw this augmenter's randomness from its own seeded generator.

        Parameters
        ----------
        seed : int
            Seed of the generator.

        Returns
        -------
        self : Augment
            This augmenter.
        """
        self.generator = torch.Generator().manual_seed(int(seed))
        return self

    def _uniform(self, n, limit):
        u = torch.rand(n, generator=self.generator) * 2 - 1
        return u * limit

    def _flip(self, n, enabled):
        if not enabled:
            return torch.ones(n)
        return torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0)

    def _matrices(self, n):
        angle = self._uniform(n, math.radians(self.rotation))
        shear = self._uniform(n, math.radians(self.shear))
        scale = 1 + self._uniform(n, self.zoom)
        tx, ty = self._uniform(n, 2 * self.shift), self._uniform(n, 2 * self.shift)
        fx, fy = self._flip(n, self.hflip), self._flip(n, self.vflip)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # grid_sample maps output to input coordinates, so dividing by the
        # zoom scale enlarges the image for scale > 1.
        a = torch.stack(
            [
                torch.stack(
                    [cos * fx / scale, (-sin + torch.tan(shear)) * fy / scale, tx], 1
                ),
                torch.stack([sin * fx / scale, cos * fy / scale, ty], 1),
            ],
            1,
        )
        return a

    def __call__(self, x):
        if x.ndim == 4 and self.is_geometric:
            theta = self._matrices(x.shape[0]).to(x.device, x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(
                x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        elif x.ndim == 3 and self.shift:
            # 1-D signals: random circular shifts only.
            length = x.shape[-1]
            shifts = (
                (self._uniform(x.shape[0], self.shift * length)).round().long().tolist()
            )
            x = torch.stack([torch.roll(xi, s, dims=-1) for xi, s in zip(x, shifts)])
        if self.noise:
            noise = torch.randn(x.shape, generator=self.generator).to(x.device, x.dtype)
            x = x + self.noise * noise
        return x

    def get_config(self):
        return asdict(self)


def make_augment(spec):
    """Turn the ``augment`` parameter into an :class:`Augment` (or None).

    Accepts None / False, True (a mild default), a dict of :class:`Augment`
    fields, an :class:`Augment`, or any callable taking and returning a batch.
    """
    if spec is None or spec is False:
        return None
    if spec is True:
        return Augment(rotation=10, shift=0.1, zoom=0.1)
    if isinstance(spec, Augment):
        return Augment(**spec.get_config())
    if isinstance(spec, dict):
        unknown = set(spec) - set(Augment.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"Unknown augment option(s) {sorted(unknown)}; expected some of "
                f"{sorted(Augment.__dataclass_fields__)}."
            )
        return Augment(**spec)
    if callable(spec):
        return spec
    raise TypeError(
        f"augment must be None, True, a dict, an Augment or a callable; got {type(spec).__name__}."
    )
