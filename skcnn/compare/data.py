"""The data of a comparison: loading it, describing it, checking it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from ..datasets import (
    load_digits_external,
    load_digits_images,
    load_image_folder,
    load_lfw,
    make_shifted,
)


def describe_external(data, external):
    """What the external test set of a run is, in words (the report says it)."""
    if external is None and data == "digits":
        return (
            "500 printed digits (load_digits_external): another population, drawn by "
            "15 fonts instead of hands, reduced to 8x8 as the handwritten ones were"
        )
    if external is None or external == "shifted":
        return (
            "the validation split shifted by skcnn's own augmentation (rotations up to "
            "10 degrees, 10% translations, noise 0.05): an augmentation-family shift, "
            "not a new population; models trained with those transforms are flattered"
        )
    return f"the images of the folder {str(external)!r}"


def describe_data(data):
    """What the data of a run is, in words."""
    if data == "digits":
        return "scikit-learn's 1,797 handwritten digits, 8x8 gray, 10 classes"
    if data in ("lfw", "lfw-subset"):
        return (
            "scikit-image's lfw_subset: 200 gray 25x25 images, 100 faces (from Labeled "
            "Faces in the Wild) and 100 non-faces; a face / non-face task, not face "
            "recognition"
        )
    return f"the images of the folder {str(data)!r}, one subfolder per class"


def load_comparison_data(data="digits", external=None, image_size=None, random_state=0):
    """Return train / validation / external splits as uint8 image arrays.

    ``external``: a folder of class subfolders, ``"shifted"`` (the validation
    split through skcnn's augmentation) or None: for digits a truly external
    population (:func:`~skcnn.datasets.load_digits_external`), otherwise the
    shifted copy. :func:`describe_external` says which.
    """
    if data == "digits":
        X, y = load_digits_images()
    elif data in ("lfw", "lfw-subset"):
        X, y = load_lfw()
    elif Path(str(data)).is_dir():
        X, y = load_image_folder(data, image_size=image_size or (32, 32))
    else:
        raise ValueError(
            "data must be 'digits', 'lfw-subset' (alias 'lfw') or a folder of class "
            f"subfolders; got {data!r}."
        )
    _check_classes(data, y)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state
    )
    if external is None and data == "digits":
        X_ext, y_ext = load_digits_external()
    elif external not in (None, "shifted"):
        size = X.shape[1:3]
        X_ext, y_ext = load_image_folder(external, image_size=size)
        if X_ext.ndim != X.ndim:  # match colour / gray
            X_ext = (
                X_ext.mean(-1).astype(np.uint8)
                if X.ndim == 3
                else np.repeat(X_ext[..., None], 3, -1)
            )
        # Folder names are strings: compare labels as strings on both sides.
        y_train, y_val = y_train.astype(str), y_val.astype(str)
        unknown = sorted(str(c) for c in set(y_ext) - set(y_train))
        if unknown:
            raise ValueError(
                f"The external set has classes {unknown} that the data does not have."
            )
    else:
        X_ext, y_ext = make_shifted(X_val, random_state=random_state), y_val
    return X_train, y_train, X_val, y_val, X_ext, y_ext


MAX_IMAGE_SIZE = 1024


def _check_classes(data, y):
    """At least two classes with two images each (a stratified split needs
    them), said in terms of the data's folders."""
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) >= 2 and counts.min() >= 2:
        return
    found = ", ".join(f"{str(c)!r}: {n} image(s)" for c, n in zip(classes, counts))
    if len(classes) < 2:
        hint = ""
        if Path(str(data)).is_dir():
            inner = Path(str(data)) / str(classes[0])
            sub = sorted(p.name for p in inner.iterdir() if p.is_dir())
            if sub:
                hint = (
                    f" Its images are in subfolders of {str(inner)!r} ({sub[:5]}"
                    f"{', ...' if len(sub) > 5 else ''}): did you mean --data "
                    f"{str(inner)!r}?"
                )
        raise ValueError(
            f"The data ({describe_data(data)}) has {len(classes)} class ({found}); a "
            f"comparison needs at least 2 classes, one subfolder per class.{hint}"
        )
    few = [str(c) for c, n in zip(classes, counts) if n < 2]
    raise ValueError(
        f"The data ({describe_data(data)}): class(es) {few} have fewer than 2 images "
        f"({found}); each class needs images in both the training and the validation "
        "split."
    )


def _check_folds(y_train, n_splits):
    """Each class needs an image in every CV fold of the training split."""
    classes, counts = np.unique(y_train, return_counts=True)
    few = {str(c): int(n) for c, n in zip(classes, counts) if n < n_splits}
    if few:
        raise ValueError(
            f"The training split has classes with fewer images than the "
            f"{n_splits} CV folds: {few}. Add images to those classes or pass a "
            f"smaller --cv (at least 2)."
        )
