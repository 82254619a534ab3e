"""
Looking inside a CNN
====================

Train on digits, then print the Keras-style summary and save pictures of
the learning curves, the first layer's kernels, the feature maps one image
produces and saliency maps (PNG files in ``inspection_out/``).
"""

from pathlib import Path

from skcnn import CNNClassifier
from skcnn.datasets import load_digits_images
from skcnn.inspection import (
    plot_feature_maps,
    plot_kernels,
    plot_learning_curves,
    plot_saliency,
    summary,
)

out = Path("inspection_out")
out.mkdir(exist_ok=True)
X, y = load_digits_images()
clf = CNNClassifier(conv_filters=(16, 32), random_state=0).fit(X, y)
print(summary(clf))

figures = {
    "learning_curves.png": plot_learning_curves(clf),
    "kernels.png": plot_kernels(clf, layer=0),
    "feature_maps.png": plot_feature_maps(clf, X[0], layer=0),
    "saliency_gradient.png": plot_saliency(clf, X[:6]),
    "saliency_smoothgrad.png": plot_saliency(clf, X[:6], method="smoothgrad"),
    "saliency_integrated_gradients.png": plot_saliency(
        clf, X[:6], method="integrated_gradients"
    ),
}
for name, fig in figures.items():
    fig.savefig(out / name, dpi=100)
    print("wrote", out / name)
