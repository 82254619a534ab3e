"""Batched data augmentation that runs on the training device.

One random affine transform per image (rotation, shift, zoom, shear, flips)
is applied to a whole batch with a single ``affine_grid`` / ``grid_sample``
call, optionally an elastic distortion, then the photometric transforms
(blur, stroke width, brightness, contrast, random erasing) and Gaussian
input noise, all batched. It is used on training batches only (and on the
views of test-time augmentation); validation never sees it.

The batched filters here (:func:`gaussian_blur`, :func:`grey_morphology`)
are also what :mod:`skcnn.robustness` shifts images with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "PRESETS",
    "Augment",
    "gaussian_blur",
    "grey_morphology",
    "make_augment",
]


def gaussian_blur(x, sigma):
    """Blur images ``x`` (n, C, H, W) with a Gaussian of ``sigma`` pixels:
    a number, or one per image (a tensor of shape (n,)); separable and
    batched in one grouped convolution per axis."""
    n, c = x.shape[:2]
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    sigma = sigma.expand(n) if sigma.numel() == 1 else sigma
    top = float(sigma.max())
    if top <= 0:
        return x
    radius = max(1, math.ceil(3 * top))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma.clamp_min(1e-3)[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*C, taps)
    out = F.pad(x, (radius,) * 4, mode="replicate")
    out = out.reshape(1, n * c, *out.shape[2:])
    out = F.conv2d(out, k[:, None, None, :], groups=n * c)
    out = F.conv2d(out, k[:, None, :, None], groups=n * c)
    blurred = out.reshape(n, c, *x.shape[2:4])
    keep = (sigma <= 0).view(n, 1, 1, 1)
    return torch.where(keep, x, blurred)


def _max_filter(x, k):
    if k <= 1:
        return x
    left, right = (k - 1) // 2, k // 2
    return F.max_pool2d(F.pad(x, (left, right, left, right), mode="replicate"), k, 1)


def grey_morphology(x, px):
    """Grey dilation (``px`` > 0: bright strokes thicken) or erosion
    (``px`` < 0) by ``|px|`` pixels, a number or one per image; fractions
    blend the two neighbouring whole-pixel results."""
    n = x.shape[0]
    px = torch.as_tensor(px, dtype=x.dtype, device=x.device).reshape(-1)
    px = px.expand(n) if px.numel() == 1 else px
    levels = int(math.ceil(float(px.abs().max())))
    if levels == 0:
        return x
    # level j: dilation / erosion with a (j + 1)-wide window; each image
    # takes its two levels from its own stack (no loop over the images: the
    # loop took 1.4 ms of each 64-image batch of the "drawing" preset)
    grow = torch.stack([x] + [_max_filter(x, j + 1) for j in range(1, levels + 1)])
    shrink = torch.stack([x] + [-_max_filter(-x, j + 1) for j in range(1, levels + 1)])
    size = px.abs()
    whole, frac = size.floor().long(), (size - size.floor()).view(n, 1, 1, 1)
    upper = (whole + 1).clamp_max(levels)
    images = torch.arange(n, device=x.device)
    dilate = (px >= 0).view(n, 1, 1, 1)
    low = torch.where(dilate, grow[whole, images], shrink[whole, images])
    high = torch.where(dilate, grow[upper, images], shrink[upper, images])
    return (1 - frac) * low + frac * high


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
    dflip : bool, default=False
        Volumes: flip along the depth axis with probability 0.5.
    noise : float, default=0
        Standard deviation of Gaussian noise added to the (0-1 scaled) input.
    elastic : float, default=0
        Elastic distortion: a smooth random displacement field of up to
        about this many pixels.
    blur : float, default=0
        Gaussian blur with sigma uniform in ``[0, blur]`` pixels.
    stroke : float, default=0
        Stroke width change for gray images: grey dilation or erosion by up
        to this many pixels (uniform in ``[-stroke, stroke]``).
    brightness : float, default=0
        Brightness shift uniform in ``[-brightness, brightness]`` (0-1 scale).
    contrast : float, default=0
        Contrast factor uniform in ``[1 - contrast, 1 + contrast]`` around
        each image's mean.
    erasing : float, default=0
        Probability of random erasing: a rectangle of 2-25% of the image
        filled with noise.

    Notes
    -----
    Volumes ``(n, C, D, H, W)`` get the same affine transform in 3-D: shifts
    along the three axes, zoom, flips (``dflip`` for the depth axis), and
    rotation and shear in the H-W plane (about the depth axis), then noise,
    brightness and contrast; ``elastic``, ``blur``, ``stroke`` and
    ``erasing`` are 2-D only (a fit on volumes warns when they are set).
    1-D signals take ``shift`` (circular) and ``noise``.

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
    dflip: bool = False
    noise: float = 0.0
    elastic: float = 0.0
    blur: float = 0.0
    stroke: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    erasing: float = 0.0

    def __post_init__(self):
        for name in (
            "rotation",
            "shift",
            "zoom",
            "shear",
            "noise",
            "elastic",
            "blur",
            "stroke",
            "brightness",
            "contrast",
            "erasing",
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"Augment {name} must be a finite number >= 0; got {value!r}."
                )
        if self.zoom >= 1:
            raise ValueError(f"Augment zoom must be < 1; got {self.zoom!r}.")
        if self.erasing > 1 or self.contrast > 1:
            raise ValueError(
                "Augment erasing (a probability) and contrast must be <= 1; got "
                f"erasing={self.erasing!r}, contrast={self.contrast!r}."
            )
        self.generator = None

    @property
    def is_geometric(self):
        return any(
            (
                self.rotation,
                self.shift,
                self.zoom,
                self.shear,
                self.hflip,
                self.vflip,
                self.dflip,
            )
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

    def _matrices(self, n, volume=False):
        """``(n, 2, 3)`` affine matrices; volumes: ``(n, 3, 4)``, the 2-D
        transform in the H-W plane plus depth shift, zoom and flip (drawn
        after the 2-D ones, so images draw what they always drew)."""
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
        if not volume:
            return a
        tz, fz = self._uniform(n, 2 * self.shift), self._flip(n, self.dflip)
        theta = torch.zeros(n, 3, 4)
        theta[:, :2, :2], theta[:, :2, 3] = a[:, :, :2], a[:, :, 2]
        theta[:, 2, 2], theta[:, 2, 3] = fz / scale, tz
        return theta

    def _rand(self, *shape):
        return torch.rand(shape, generator=self.generator)

    def _elastic_grid(self, grid, x):
        n, _, h, w = x.shape
        field = self._rand(n, 2, h, w) * 2 - 1
        field = gaussian_blur(field, max(1.0, min(h, w) / 8)).to(x.device, x.dtype)
        field = field / field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        # pixels -> grid units ([-1, 1] spans the side)
        scale = torch.tensor([2 / w, 2 / h], device=x.device, dtype=x.dtype)
        return grid + self.elastic * field.permute(0, 2, 3, 1) * scale

    def _photometric(self, x):
        n = x.shape[0]
        images = x.ndim == 4  # blur, stroke and erasing are 2-D only
        if self.blur and images:
            x = gaussian_blur(x, (self._rand(n) * self.blur).to(x.device, x.dtype))
        if self.stroke and images:
            px = (self._rand(n) * 2 - 1) * self.stroke
            x = grey_morphology(x, px.to(x.device, x.dtype))
        per_sample = (n,) + (1,) * (x.ndim - 1)
        if self.brightness:
            shift = (self._rand(n) * 2 - 1) * self.brightness
            x = x + shift.to(x.device, x.dtype).view(per_sample)
        if self.contrast:
            factor = 1 + (self._rand(n) * 2 - 1) * self.contrast
            mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
            x = mean + factor.to(x.device, x.dtype).view(per_sample) * (x - mean)
        if self.erasing and images:
            h, w = x.shape[2:]
            area = 0.02 + self._rand(n) * 0.23
            aspect = torch.exp((self._rand(n) * 2 - 1) * math.log(3))
            eh = (area * aspect).sqrt().mul(h).clamp(1, h)
            ew = (area / aspect).sqrt().mul(w).clamp(1, w)
            top = self._rand(n) * (h - eh)
            left = self._rand(n) * (w - ew)
            rows = torch.arange(h).view(1, h, 1)
            cols = torch.arange(w).view(1, 1, w)
            box = (
                (rows >= top.view(n, 1, 1))
                & (rows < (top + eh).view(n, 1, 1))
                & (cols >= left.view(n, 1, 1))
                & (cols < (left + ew).view(n, 1, 1))
                & (self._rand(n) < self.erasing).view(n, 1, 1)
            )
            fill = self._rand(*x.shape).to(x.device, x.dtype)
            x = torch.where(box.unsqueeze(1).to(x.device), fill, x)
        return x

    def __call__(self, x):
        if x.ndim == 5 and self.is_geometric:
            theta = self._matrices(x.shape[0], volume=True).to(x.device, x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(
                x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
        elif x.ndim == 4 and (self.is_geometric or self.elastic):
            theta = self._matrices(x.shape[0]).to(x.device, x.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            if self.elastic:
                grid = self._elastic_grid(grid, x)
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
        if x.ndim in (4, 5):
            x = self._photometric(x)
        if self.noise:
            noise = torch.randn(x.shape, generator=self.generator).to(x.device, x.dtype)
            x = x + self.noise * noise
        return x

    def get_config(self):
        return asdict(self)

    def unused_on_signals(self):
        """The options set here that 1-D signals ignore (only ``shift`` and
        ``noise`` apply to them)."""
        return self.unused_on(1)

    def unused_on(self, ndim):
        """The options set here that inputs with ``ndim`` spatial dimensions
        ignore: 1-D signals take only ``shift`` and ``noise``; images ignore
        ``dflip``; volumes ``elastic``, ``blur``, ``stroke`` and ``erasing``."""
        ignored = {
            1: lambda name: name not in ("shift", "noise"),
            2: lambda name: name == "dflip",
            3: lambda name: name in ("elastic", "blur", "stroke", "erasing"),
        }[ndim]
        return [
            name for name, value in self.get_config().items() if value and ignored(name)
        ]


# Named augmentations (``augment="drawing"``); sizes in pixels are for small
# images (8-32 px), as the digits of the lecture notes.
PRESETS = {
    # where things are: pose and framing
    "geometric": {"rotation": 10, "shift": 0.1, "zoom": 0.1},
    # how things are drawn: the pose and framing of "geometric", wider
    # zoom (smaller and larger digits in the frame), shear (slant), an
    # elastic wobble of the strokes, stroke width, blur and contrast
    "drawing": {
        "rotation": 10,
        "shift": 0.1,
        "zoom": 0.2,
        "shear": 10,
        "elastic": 0.5,
        "stroke": 0.5,
        "blur": 0.5,
        "contrast": 0.3,
    },
}


def make_augment(spec):
    """Turn the ``augment`` parameter into an :class:`Augment` (or None).

    Accepts None / False, True (the "geometric" preset), the name of a
    preset of :data:`PRESETS` ("geometric": rotation, shift, zoom;
    "drawing": those, shear, elastic wobble, stroke width, blur and
    contrast), a dict of :class:`Augment` fields, an :class:`Augment`, or
    any callable taking and returning a batch.
    """
    if spec is None or spec is False:
        return None
    if spec is True:
        spec = "geometric"
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(
                f"Unknown augment preset {spec!r}; expected one of {sorted(PRESETS)}, "
                "a dict of Augment options, an Augment or a callable."
            )
        return Augment(**PRESETS[spec])
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
        "augment must be None, True, a preset name, a dict, an Augment or a "
        f"callable; got {type(spec).__name__}."
    )
