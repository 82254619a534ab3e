import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def digits_uint8():
    """Digits as uint8 images (n, 8, 8) in 0-255, with the 75/25 stratified split."""
    d = load_digits()
    X = np.round(d.images * (255 / 16)).astype(np.uint8)
    return train_test_split(
        X, d.target, test_size=0.25, stratify=d.target, random_state=0
    )


@pytest.fixture(scope="session")
def small_digits(digits_uint8):
    Xtr, _, ytr, _ = digits_uint8
    return Xtr[:300], ytr[:300]


@pytest.fixture(scope="session")
def heldout_digits(digits_uint8):
    """The 450 test digits: scores on them are held-out scores (the tiny
    networks below reach about 0.90 after 5 epochs on ``small_digits``)."""
    _, Xte, _, yte = digits_uint8
    return Xte, yte


TINY = dict(
    conv_filters=(8,),
    dense_units=(32,),
    max_epochs=5,
    batch_size=32,
    lr=5e-3,
    # the mechanics under test: plain training, early stopping on
    lr_schedule=None,
    early_stopping=True,
    monitor="loss",
    device="cpu",
    random_state=0,
)

# A DenseNet small enough for tests (two dense blocks of two layers each).
TINY_DN = dict(
    growth_rate=4,
    block_config=(2, 2),
    num_init_features=8,
    max_epochs=2,
    device="cpu",
    random_state=0,
)


class Branchy(torch.nn.Module):
    """A module with data-dependent control flow: neither torch.fx nor
    torch.export can trace it (eager PyTorch runs it)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3)
        self.b = torch.nn.Conv2d(4, 4, 3)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        x = self.a(x)
        if x.sum() > 0:  # data-dependent
            x = -x
        return self.fc(self.b(x).mean((2, 3)))
