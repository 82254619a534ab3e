import numpy as np
import pytest
import torch

from skcnn.augmentation import Augment, make_augment


def test_identity_when_nothing_enabled():
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(Augment()(x), x)


def test_hflip_flips():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = Augment(hflip=True).seed(0)(x)
    flipped = torch.flip(x[0], dims=[-1])
    n_flipped = sum(torch.allclose(o, flipped, atol=1e-4) for o in out)
    n_same = sum(torch.allclose(o, x[0], atol=1e-4) for o in out)
    assert n_flipped + n_same == 64 and 10 < n_flipped < 54


def test_seeded_and_batched():
    x = torch.rand(5, 3, 16, 16)
    a = Augment(rotation=20, shift=0.1, zoom=0.1, shear=5, noise=0.1).seed(1)(x)
    b = Augment(rotation=20, shift=0.1, zoom=0.1, shear=5, noise=0.1).seed(1)(x)
    torch.testing.assert_close(a, b)
    assert a.shape == x.shape and not torch.allclose(a, x)


def test_one_dimensional_shift():
    x = torch.arange(10.0).view(1, 1, 10).repeat(4, 1, 1)
    out = Augment(shift=0.3).seed(0)(x)
    assert out.shape == x.shape
    for o in out:
        assert sorted(o[0].tolist()) == list(range(10))


def test_make_augment_specs():
    assert make_augment(None) is None and make_augment(False) is None
    assert isinstance(make_augment(True), Augment)
    assert make_augment({"rotation": 5}).rotation == 5
    with pytest.raises(ValueError, match="Unknown augment"):
        make_augment({"rotate": 5})
    with pytest.raises(ValueError, match=">= 0"):
        make_augment({"rotation": -1})
    with pytest.raises(TypeError):
        make_augment(3)
    f = lambda x: x  # noqa: E731
    assert make_augment(f) is f
    assert np.isfinite(make_augment(True)(torch.rand(2, 1, 8, 8)).numpy()).all()
