"""
Grid search over dropout and epochs
===================================

Keras users grid-search epochs and layer sizes with ``KerasClassifier``.
The same search with skcnn is a plain ``GridSearchCV``. Searching epochs is
wasteful (each candidate retrains from scratch): early stopping
(``early_stopping=True``, the default) finds the epoch count inside one fit,
so here epochs are searched with early stopping switched off, for contrast.
"""

from sklearn.model_selection import GridSearchCV, train_test_split

from skcnn import CNNClassifier
from skcnn.datasets import load_digits_images

X, y = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

search = GridSearchCV(
    CNNClassifier(early_stopping=False, validation_fraction=0, random_state=0),
    {"dropout": [0.0, 0.5], "max_epochs": [5, 15]},
    cv=3,
    n_jobs=2,
)
search.fit(X_train, y_train)
for params, score in zip(
    search.cv_results_["params"], search.cv_results_["mean_test_score"]
):
    print(f"{params}: {score:.3f}")
print("best:", search.best_params_, f"test accuracy {search.score(X_test, y_test):.3f}")

early = CNNClassifier(max_epochs=60, random_state=0).fit(X_train, y_train)
print(
    f"early stopping chose {early.best_epoch_} epochs; test accuracy {early.score(X_test, y_test):.3f}"
)
