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


@pytest.mark.parametrize(
    "field, value",
    [
        ("elastic", 1.5),
        ("blur", 1.0),
        ("stroke", 1.0),
        ("brightness", 0.2),
        ("contrast", 0.5),
        ("erasing", 1.0),
    ],
)
def test_each_new_transform_changes_images_reproducibly(field, value):
    x = torch.zeros(6, 1, 16, 16)
    x[:, :, 6:10, 4:12] = 1.0  # a bright bar
    a = Augment(**{field: value}).seed(1)(x)
    assert a.shape == x.shape
    changed = (a - x).abs().amax(dim=(1, 2, 3)) > 1e-3
    assert changed.float().mean() >= 0.5  # draws near 0 leave a few as they were
    torch.testing.assert_close(a, Augment(**{field: value}).seed(1)(x))
    assert not torch.equal(a, Augment(**{field: value}).seed(2)(x))


def test_blur_and_morphology_filters():
    from skcnn.augmentation import gaussian_blur, grey_morphology

    x = torch.zeros(3, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    blurred = gaussian_blur(x, torch.tensor([0.0, 1.0, 2.0]))
    torch.testing.assert_close(blurred[0], x[0])  # sigma 0: unchanged
    assert blurred[1].max() > blurred[2].max() > 0  # wider spreads further
    # mass kept while the kernel fits inside the image
    torch.testing.assert_close(blurred[:2].sum(dim=(1, 2, 3)), torch.ones(2))
    grown = grey_morphology(x, torch.tensor([0.0, 1.0, -1.0]))
    assert grown[0].sum() == 1 and grown[1].sum() == 4 and grown[2].sum() == 0
    half = grey_morphology(x, 0.5)
    torch.testing.assert_close(half, 0.5 * x + 0.5 * grey_morphology(x, 1.0))


def test_morphology_of_a_batch_is_each_image_on_its_own():
    """Batched: each image gets its own width change, exactly as alone
    (dilation and erosion, whole and fractional pixels, in one batch)."""
    from skcnn.augmentation import grey_morphology

    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 2, 10, 10, generator=g)
    px = torch.tensor([0.0, 1.0, -1.0, 2.5, -2.5, 0.3, -0.7, 1.9, -1.2, 2.0, -2.0, 0.5])
    batch = grey_morphology(x, px)
    for i in range(len(x)):
        assert torch.equal(batch[i : i + 1], grey_morphology(x[i : i + 1], px[i]))


def test_stroke_thickens_and_thins():
    x = torch.zeros(200, 1, 12, 12)
    x[:, :, 3:9, 5:7] = 1.0
    out = Augment(stroke=1.0).seed(0)(x)
    ink = out.sum(dim=(1, 2, 3))
    assert ink.max() > x[0].sum() > ink.min()  # some thicker, some thinner


def test_erasing_probability_and_bounds():
    x = torch.full((400, 1, 10, 10), 0.5)
    out = Augment(erasing=0.5).seed(0)(x)
    erased = (out != 0.5).flatten(1).any(1).float().mean()
    assert 0.4 < erased < 0.6
    assert out.min() >= 0 and out.max() <= 1


def test_new_fields_are_checked():
    with pytest.raises(ValueError, match="erasing"):
        Augment(erasing=1.5)
    with pytest.raises(ValueError, match="blur must be a finite number >= 0"):
        Augment(blur=-1)
