import torch
import torch.nn.functional as F

from datadiet.data.transforms import Normalizer, augment, default_pad, random_crop, random_flip


def _batch(b=6, c=2, h=5, w=7, seed=0):
    return torch.randint(0, 256, (b, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_random_crop_matches_a_per_image_loop():
    x, pad = _batch(), 3
    out = random_crop(x, pad, torch.Generator().manual_seed(1))
    offsets = torch.randint(0, 2 * pad + 1, (2, x.shape[0]), generator=torch.Generator().manual_seed(1))
    padded = F.pad(x, (pad,) * 4)
    for i in range(x.shape[0]):
        r, c = offsets[:, i].tolist()
        assert torch.equal(out[i], padded[i, :, r:r + x.shape[2], c:c + x.shape[3]])


def test_crop_keeps_shape_dtype_and_only_adds_zero_padding():
    x = _batch() | 1  # no zero pixels in the input
    out = random_crop(x, 4, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.dtype == torch.uint8
    nonzero = out[out > 0]
    assert set(nonzero.unique().tolist()) <= set(x.unique().tolist())


def test_pad_zero_is_identity():
    x = _batch()
    assert random_crop(x, 0, torch.Generator()) is x


def test_flip_mirrors_exactly_the_drawn_images():
    x = _batch(b=64)
    out = random_flip(x, torch.Generator().manual_seed(3))
    drawn = torch.rand(64, generator=torch.Generator().manual_seed(3)) < 0.5
    for i in range(64):
        assert torch.equal(out[i], x[i].flip(2) if drawn[i] else x[i])
    assert 10 < int(drawn.sum()) < 54


def test_augment_is_deterministic_given_the_seed():
    x = _batch(b=32)
    a = augment(x, pad=2, flip=True, generator=torch.Generator().manual_seed(5))
    b = augment(x, pad=2, flip=True, generator=torch.Generator().manual_seed(5))
    c = augment(x, pad=2, flip=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_normalizer_matches_the_formula():
    x = _batch(c=2)
    norm = Normalizer((0.5, 0.25), (0.2, 0.1))
    expected = (x.double() / 255 - torch.tensor([0.5, 0.25]).view(1, 2, 1, 1).double()) / torch.tensor(
        [0.2, 0.1]).view(1, 2, 1, 1).double()
    torch.testing.assert_close(norm(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_default_pad_is_four_for_cifar_and_two_for_mnist():
    assert default_pad(32) == 4
    assert default_pad(28) == 2
