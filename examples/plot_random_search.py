"""
Randomized search with a log-uniform learning rate
==================================================

Learning rate and weight decay span orders of magnitude, so they are drawn
from log-uniform distributions, as is usual for learning rates.
"""

from scipy.stats import loguniform
from sklearn.model_selection import RandomizedSearchCV, train_test_split

from skcnn import CNNClassifier
from skcnn.datasets import load_digits_images

X, y = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

search = RandomizedSearchCV(
    CNNClassifier(max_epochs=20, random_state=0),
    {
        "lr": loguniform(1e-4, 3e-2),
        "weight_decay": loguniform(1e-6, 1e-2),
        "conv_filters": [(16,), (32, 64), (16, 32, 64)],
    },
    n_iter=6,
    cv=3,
    random_state=0,
    n_jobs=2,
)
search.fit(X_train, y_train)
print("best:", search.best_params_)
print(
    f"CV accuracy {search.best_score_:.3f}, test accuracy {search.score(X_test, y_test):.3f}"
)
