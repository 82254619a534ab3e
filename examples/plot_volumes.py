"""
Volumes: 3-D convolutions on a shape task
=========================================

CT and MRI scans, microscopy stacks and video clips are volumes: samples of
shape ``(D, H, W)`` (or ``(D, H, W, C)``). ``CNNClassifier`` and
``CNNRegressor`` build 3-D convolutions (``Conv3d``, ``MaxPool3d``,
``BatchNorm3d``) when the samples are volumes; there is no other estimator
to learn. A 4-D array ``(n, D, H, W)`` could also be colour images, so say
``channels="none"`` (no channel axis); a 5-D array ``(n, D, H, W, C)`` or
``(n, C, D, H, W)`` needs nothing.

The data: balls, cubes and crosses of random size and position in noisy
16^3 volumes (``skcnn.datasets.make_shapes_3d``).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from skcnn import CNNClassifier, CNNRegressor
from skcnn.baselines import ImageFlattener
from skcnn.datasets import SHAPES_3D, make_shapes_3d
from skcnn.inspection import plot_feature_maps, summary

X, y, voxels = make_shapes_3d(600, random_state=0, return_voxels=True)
X_train, X_test = X[:450], X[450:]
y_train, y_test = y[:450], y[450:]
print(X.shape, X.dtype)  # (600, 16, 16, 16) uint8

# %%
# The data: the middle depth slice of a few volumes.
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
for ax, volume, label in zip(axes, X, y):
    ax.imshow(volume[8], cmap="gray", vmin=0, vmax=255)
    ax.set_title(SHAPES_3D[label], fontsize=9)
    ax.axis("off")

# %%
# The default CNN, with 3-D convolutions, against raw voxels + PCA + SVM.
clf = CNNClassifier(channels="none", random_state=0).fit(X_train, y_train)
print(summary(clf))
print(f"CNN test accuracy: {clf.score(X_test, y_test):.3f}")
baseline = make_pipeline(ImageFlattener(channels="none"), PCA(0.9), SVC())
baseline.fit(X_train, y_train)
print(f"voxels + PCA + SVM test accuracy: {baseline.score(X_test, y_test):.3f}")

# %%
# Regression of the object's size (its voxel count, unscaled).
reg = CNNRegressor(channels="none", random_state=0)
reg.fit(X_train, voxels[:450].astype(float))
print(f"voxel-count R^2: {reg.score(X_test, voxels[450:].astype(float)):.3f}")

# %%
# What the first conv layer sees: its maps of one volume, middle depth slice.
fig = plot_feature_maps(clf, X_test[0], layer=0, max_maps=16)
plt.show()

# %%
# ``predict``, ``save`` / ``skcnn.load`` and ``to_onnx`` take volumes as
# they were given to ``fit``; augmentation on volumes (``augment=``) shifts,
# zooms, flips (``dflip`` for the depth axis), rotates in the H-W plane and
# adds noise, brightness and contrast.
print(np.bincount(clf.predict(X_test), minlength=3))
