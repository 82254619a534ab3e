"""
Your own folder of photos: where the models go wrong
====================================================

``skcnn compare`` on a folder with one subfolder per class, here texture
patches cut from scikit-image's photos of brick, grass and gravel (offline).
The external set is another population: patches from the other half of each
photo, darker (as if taken in other light), never the output of a transform a
model trains with.

Besides the table, ``report.md`` shows per set the images the best row of
each family got most confidently wrong, how calibrated their confidences are
(the ``*_ece`` columns and the reliability diagrams) and what answering "I
don't know" on the least confident images would buy.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from skimage import data

from skcnn.compare import run_comparison

rng = np.random.default_rng(0)
root = Path("photos_example")
for name in ("brick", "grass", "gravel"):
    photo = getattr(data, name)()  # 512 x 512 gray
    for part, rows, n, light in (
        ("train", (0, 224), 80, 1.0),
        ("external", (288, 480), 40, 0.6),
    ):
        folder = root / part / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            y = rng.integers(*rows)
            x = rng.integers(0, 480)
            patch = photo[y : y + 32, x : x + 32] * light
            Image.fromarray(patch.astype(np.uint8)).save(folder / f"{i}.png")

result = run_comparison(
    root / "train",
    external=root / "external",
    quick=True,
    models=["pixels+rf", "hog+svm", "cnn", "cnn+aug"],
    out="photos_compare",
)
print(result.to_markdown())

# %%
# The images each family's best row got most confidently wrong on the
# external photos, and the reliability of their confidences.
for figure in ("mistakes_ext.png", "calibration.png"):
    path = Path("photos_compare") / figure
    if path.exists():
        fig, ax = plt.subplots(figsize=(10, 5))
        ax.imshow(plt.imread(path))
        ax.axis("off")
plt.show()
