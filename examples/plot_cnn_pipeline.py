"""
A CNN inside a scikit-learn Pipeline
====================================

``CNNClassifier`` is an ordinary estimator: here it sits behind a
``FunctionTransformer`` that turns flat digit rows back into 8x8 images, and
the pipeline is cross-validated like any other.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skcnn import CNNClassifier

X, y = load_digits(return_X_y=True)  # (1797, 64), values 0..16

to_images = FunctionTransformer(lambda a: (np.asarray(a) / 16.0).reshape(len(a), 8, 8))
pipe = make_pipeline(to_images, CNNClassifier(max_epochs=20, random_state=0))
scores = cross_val_score(pipe, X, y, cv=3)
print(f"3-fold accuracy: {scores.mean():.3f} +/- {scores.std():.3f}")
