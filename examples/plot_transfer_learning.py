"""
Transfer learning with fine-tuning depth as a hyperparameter
============================================================

The classic recipe: replace the head of a pretrained DenseNet-121,
train it with the backbone frozen, then unfreeze the top blocks and train on
at a lower learning rate. ``finetune_depth`` (0 = head only, k = last k dense
blocks, "all") and ``head_epochs`` make that one estimator, and a grid search
picks the depth.

Weights: pass a DenseNet-121 state dict (``python plot_transfer_learning.py
densenet121-a639ec97.pth``) or have it in the torch hub cache. Without one
(no internet here), the script runs with randomly initialised weights to show
the mechanics; the accuracies are then not those of transfer learning.
"""

import sys

import torch
from sklearn.model_selection import GridSearchCV, train_test_split
from torchvision.models import densenet121

from skcnn import DenseNetClassifier
from skcnn.datasets import load_digits_images
from skcnn.pretrained import cached_densenet121

weights = sys.argv[1] if len(sys.argv) > 1 else cached_densenet121()
if weights is None:
    print("No DenseNet-121 weights found: using random weights to show the API.")
    torch.manual_seed(0)
    weights = "/tmp/densenet121_random.pth"
    torch.save(densenet121().state_dict(), weights)

X, y = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    X[:600], y[:600], stratify=y[:600], random_state=0
)

for depth in [0, 1, 2, "all"]:
    clf = DenseNetClassifier(
        arch="densenet121",
        weights=weights,
        finetune_depth=depth,
        input_size=32,
        max_epochs=1,
    )
    clf.fit(X_train[:20], y_train[:20])
    trainable = sum(p.numel() for p in clf.module_.parameters() if p.requires_grad)
    print(f"finetune_depth={depth!s:>3}: {trainable:>9,} trainable parameters")

search = GridSearchCV(
    DenseNetClassifier(
        arch="densenet121",
        weights=weights,
        input_size=32,
        head_epochs=2,
        max_epochs=4,
        backbone_lr_scale=0.1,
        random_state=0,
    ),
    {"finetune_depth": [0, 1]},
    cv=2,
)
search.fit(X_train, y_train)
print("best:", search.best_params_, f"test accuracy {search.score(X_test, y_test):.3f}")
