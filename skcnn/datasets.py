"""Image data sets: bundled ones, folders of class subfolders, shifted test sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ._data import ImagePaths

__all__ = [
    "load_digits_external",
    "load_digits_images",
    "load_image_folder",
    "load_lfw",
    "make_shapes_3d",
    "make_shifted",
    "render_font_digits",
]

_EXTERNAL_DIGITS = Path(__file__).parent / "data" / "digits_fonts.npz"
# The fonts the bundled set was drawn with: matplotlib's own (DejaVu, STIX,
# Computer Modern), so that the set can be remade wherever matplotlib is.
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
)
# Other faces of matplotlib's font folder, none of them in FONT_FILES: a
# second font population for choosing a recipe without the bundled set.
OTHER_FONT_FILES = (
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmb10.ttf",
    "cmti10.ttf",
    "cmmi10.ttf",
)
FRAMES = ("uci", "28px")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_digits_images():
    """scikit-learn's 1,797 8x8 digits as uint8 images ``(n, 8, 8)`` in 0-255, and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images * (255 / 16)).astype(np.uint8), d.target


def load_digits_external():
    """Digits from another population: 500 printed digits (50 per class).

    scikit-learn's digits are handwritten: 32x32 bitmaps of people's
    writing, cut into 4x4 blocks whose set pixels are counted (0-16). This
    set goes through the same 32x32 -> 8x8 counting, but its digits are
    drawn by fonts (15 faces of DejaVu, STIX and Computer Modern, regular,
    bold and italic), not by hands: a different drawing process, which no
    model in ``skcnn compare`` trains with and which skcnn's augmentation
    (affine transforms, noise) cannot produce from handwriting. Made by
    :func:`render_font_digits` (``python -m skcnn.datasets``), seeded, and
    bundled with the package.

    Returns
    -------
    X : ndarray of shape (500, 8, 8), uint8
        Images in 0-255, as :func:`load_digits_images`.
    y : ndarray of shape (500,)
        The digits.
    """
    with np.load(_EXTERNAL_DIGITS) as data:
        return data["X"], data["y"]


def render_font_digits(
    n_per_class=50, random_state=0, font_dir=None, fonts=FONT_FILES, frame="uci"
):
    """Draw digits with fonts and reduce them to 8x8 images.

    Each image: a font of ``fonts`` and a glyph size drawn at random, then
    one of two reductions (``frame``):

    - ``"uci"`` (as the UCI digits were made): the glyph's bounding box
      scaled to fill a 32x32 box (aspect kept, centred), thresholded to a
      bitmap, and the set pixels of each 4x4 block counted (0-16), then
      scaled to 0-255;
    - ``"28px"`` (as MNIST-like sets are framed): the anti-aliased glyph
      scaled to fit a 20x20 box, placed in a 28x28 frame by its centre of
      mass, then averaged down to 8x8 (area resampling, no threshold): a
      smaller digit with gray edges, a different reduction from the one
      the digits a model trains with went through.

    Parameters
    ----------
    n_per_class : int, default=50
        Images per digit.
    random_state : int, default=0
        Seed of the font, size and position choices.
    font_dir : str or Path or None, default=None
        Folder of the font files; None is matplotlib's own font folder.
    fonts : sequence of str, default=FONT_FILES
        Font file names in ``font_dir`` (:data:`OTHER_FONT_FILES`: faces the
        bundled set does not use).
    frame : {"uci", "28px"}, default="uci"
        The reduction, see above.

    Returns
    -------
    X : ndarray of shape (10 * n_per_class, 8, 8), uint8
        The images.
    y : ndarray of shape (10 * n_per_class,)
        The digits.
    """
    from PIL import ImageFont

    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {FRAMES}; got {frame!r}.")
    if font_dir is None:
        import matplotlib

        font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = list(fonts)
    rng = np.random.default_rng(random_state)
    images, labels = [], []
    for digit in range(10):
        for _ in range(n_per_class):
            font = ImageFont.truetype(
                str(Path(font_dir) / fonts[rng.integers(len(fonts))]),
                int(rng.integers(40, 72)),
            )
            images.append(_reduce_glyph(_glyph(digit, font), frame))
            labels.append(digit)
    return np.stack(images), np.asarray(labels)


def _glyph(digit, font):
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (128, 128), 0)
    ImageDraw.Draw(canvas).text((20, 10), str(digit), fill=255, font=font)
    return canvas.crop(canvas.getbbox())


def _fit_box(glyph, side):
    from PIL import Image

    w, h = glyph.size
    scale = side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return glyph.resize(size, Image.BILINEAR)


def _reduce_glyph(glyph, frame):
    from PIL import Image

    if frame == "uci":
        glyph = _fit_box(glyph, 32)
        box = Image.new("L", (32, 32), 0)
        box.paste(glyph, ((32 - glyph.size[0]) // 2, (32 - glyph.size[1]) // 2))
        bitmap = np.asarray(box) > 127
        counts = bitmap.reshape(8, 4, 8, 4).sum((1, 3))
        return np.round(counts * (255 / 16)).astype(np.uint8)
    glyph = np.asarray(_fit_box(glyph, 20), dtype=np.float64)
    rows, cols = np.indices(glyph.shape)
    mass = glyph.sum()
    cy, cx = (rows * glyph).sum() / mass, (cols * glyph).sum() / mass
    top = int(np.clip(round(14 - cy), 0, 28 - glyph.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - glyph.shape[1]))
    box = np.zeros((28, 28))
    box[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    small = Image.fromarray(box.astype(np.uint8)).resize((8, 8), Image.BOX)
    return np.asarray(small, dtype=np.uint8)


def load_lfw():
    """scikit-image's 200 25x25 faces (label 1) and non-faces (label 0), uint8."""
    from skimage.data import lfw_subset

    images = lfw_subset()
    X = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    y = np.r_[np.ones(100, dtype=int), np.zeros(100, dtype=int)]
    return X, y


def load_image_folder(path, image_size=None, lazy=False, mode="auto"):
    """Read a folder with one subfolder per class (the ImageFolder layout).

    Parameters
    ----------
    path : str or Path
        The folder; each subfolder's name is a class.
    image_size : (H, W), int or None, default=None
        Resize every image; None takes the first image's size.
    lazy : bool, default=False
        Return ``(paths, y)`` (a list of file paths, decoded batch by batch
        when an estimator uses them) instead of ``(X, y)`` arrays.
    mode : {"auto", "L", "RGB"}, default="auto"
        Colour mode; "auto" is gray when every image is gray.

    Returns
    -------
    X : ndarray or list of str
        uint8 images ``(n, H, W)`` or ``(n, H, W, 3)``; file paths when lazy.
    y : ndarray of str
        The subfolder names.
    """
    root = Path(path)
    if not root.is_dir():
        raise ValueError(
            f"{str(root)!r} is not a folder; expected one subfolder per class."
        )
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for folder in classes:
        files = sorted(
            f
            for f in folder.rglob("*")
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
        )
        paths += [str(f) for f in files]
        labels += [folder.name] * len(files)
    if not paths:
        raise ValueError(
            f"No images ({', '.join(IMAGE_SUFFIXES)}) found in class subfolders of {str(root)!r}."
        )
    y = np.asarray(labels)
    if lazy:
        return paths, y
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    source = ImagePaths(paths, image_size=image_size, mode=mode)
    X = source.numpy()  # (n, C, H, W)
    X = X[:, 0] if X.shape[1] == 1 else X.transpose(0, 2, 3, 1)
    return X, y


def make_shifted(X, *, rotation=10.0, shift=0.1, noise=0.05, random_state=0):
    """A shifted copy of image set ``X``: the default external test set.

    Each image gets a random rotation (up to ``rotation`` degrees), a
    translation (up to ``shift`` of its size) and Gaussian noise (std
    ``noise`` on the 0-1 scale), seeded by ``random_state``. The dtype and
    layout of ``X`` are kept.

    Parameters
    ----------
    X : array-like
        Images in any layout skcnn takes.
    rotation : float, default=10.0
        Largest rotation in degrees.
    shift : float, default=0.1
        Largest translation, as a fraction of the image size.
    noise : float, default=0.05
        Standard deviation of the Gaussian noise on the 0-1 scale.
    random_state : int, default=0
        Seed of the transforms.

    Returns
    -------
    X_shifted : ndarray
        The shifted images, in the dtype and layout of ``X``.
    """
    from ._data import from_channels_first, to_channels_first
    from .augmentation import Augment

    X = np.asarray(X)
    arr, _ = to_channels_first(X)
    x = torch.as_tensor(arr)
    x = x.float() / 255 if X.dtype == np.uint8 else x
    aug = Augment(rotation=rotation, shift=shift, noise=noise).seed(random_state)
    out = aug(x).clamp(0, 1) if X.dtype == np.uint8 else aug(x)
    out = out.numpy() * 255 if X.dtype == np.uint8 else out.numpy()
    return from_channels_first(out, X)


SHAPES_3D = ("ball", "cube", "cross")


def make_shapes_3d(
    n_samples=600, size=16, *, noise=0.1, random_state=None, return_voxels=False
):
    """Volumes of one solid each (a ball, a cube or a 3-D cross) of random
    size and position, with noise: a volume task for 3-D convolutions.

    Each volume is ``size`` voxels a side; the object's voxels are bright
    (about 0.8), the background dark (about 0.1), both with Gaussian noise of
    ``noise`` (0-1 scale), stored as uint8 0-255. The radius is uniform in
    ``[size / 6, size / 3.2]`` (smaller objects lose their shape on the
    grid: a ball of radius 2 and a cube of side 3 are nearly the same
    voxels); a cube's half-side is 0.8 radius, so that size alone does not
    tell the shapes apart; a cross is three orthogonal bars of the radius'
    length. Every object lies inside the volume.

    Parameters
    ----------
    n_samples : int, default=600
        Number of volumes; the three shapes in turn (balanced).
    size : int, default=16
        Side of each volume, at least 8.
    noise : float, default=0.1
        Noise standard deviation on the 0-1 scale.
    random_state : int or None, default=None
        Seeds sizes, positions and noise.
    return_voxels : bool, default=False
        Also return each object's voxel count (a regression target).

    Returns
    -------
    X : ndarray of shape (n_samples, size, size, size), uint8
        The volumes ``(n, D, H, W)``: pass ``channels="none"`` to skcnn
        estimators (or add a channel axis: ``X[..., None]``).
    y : ndarray of shape (n_samples,)
        The shape: 0 ball, 1 cube, 2 cross (names in ``SHAPES_3D``).
    voxels : ndarray of shape (n_samples,)
        The object's voxel count (only with ``return_voxels=True``).
    """
    if int(size) < 8:
        raise ValueError(f"size must be at least 8; got {size!r}.")
    size = int(size)
    rng = np.random.default_rng(random_state)
    grid = np.indices((size, size, size)).transpose(1, 2, 3, 0).astype(np.float32)
    y = np.arange(n_samples) % 3
    rng.shuffle(y)
    X = np.empty((n_samples, size, size, size), np.uint8)
    voxels = np.empty(n_samples, np.int64)
    for i, shape in enumerate(y):
        radius = rng.uniform(size / 6, size / 3.2)
        centre = rng.uniform(radius + 0.5, size - radius - 1.5, size=3)
        d = np.abs(grid - centre)
        if shape == 0:
            mask = (d**2).sum(-1) <= radius**2
        elif shape == 1:
            mask = (d <= radius * 0.8).all(-1)
        else:
            arm = max(1.0, radius / 3)
            thin = d <= arm
            mask = (d <= radius).all(-1) & (thin.sum(-1) >= 2)
        values = np.where(mask, 0.8, 0.1) + rng.normal(0, noise, mask.shape)
        X[i] = np.clip(np.round(values * 255), 0, 255).astype(np.uint8)
        voxels[i] = int(mask.sum())
    return (X, y, voxels) if return_voxels else (X, y)


if __name__ == "__main__":  # python -m skcnn.datasets: remake the bundled set
    X, y = render_font_digits()
    np.savez_compressed(_EXTERNAL_DIGITS, X=X, y=y)
    print(f"wrote {X.shape} to {_EXTERNAL_DIGITS}")
