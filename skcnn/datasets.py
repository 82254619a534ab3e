"""Image data sets: bundled ones, folders of class subfolders, shifted test sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ._data import ImagePaths

__all__ = ["load_digits_images", "load_image_folder", "load_lfw", "make_shifted"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_digits_images():
    """scikit-learn's 1,797 8x8 digits as uint8 images ``(n, 8, 8)`` in 0-255, and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images * (255 / 16)).astype(np.uint8), d.target


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
    from ._data import to_channels_first
    from .augmentation import Augment

    X = np.asarray(X)
    arr, _ = to_channels_first(X)
    x = torch.as_tensor(arr)
    x = x.float() / 255 if X.dtype == np.uint8 else x
    aug = Augment(rotation=rotation, shift=shift, noise=noise).seed(random_state)
    out = aug(x).clamp(0, 1) if X.dtype == np.uint8 else aug(x)
    out = out.numpy()
    if X.dtype == np.uint8:
        out = np.round(out * 255).astype(np.uint8)
    # Back to the caller's layout.
    if X.ndim == 3:
        return out[:, 0]
    if X.ndim == 4 and X.shape[1:] != out.shape[1:]:
        return out.transpose(0, 2, 3, 1)
    return out.astype(X.dtype, copy=False)
