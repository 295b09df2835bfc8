import numpy as np
import pytest
import torch

from igpt_lite.palette import Palette


def brute_force_nearest(images, centers):
    x = images.reshape(len(images), -1, centers.shape[1]).astype(np.float64) / 127.5 - 1
    d = ((x[:, :, None, :] - centers[None, None].astype(np.float64)) ** 2).sum(-1)
    return d.argmin(-1)


def test_encode_matches_brute_force_nearest_centre(rng):
    centers = rng.uniform(-1, 1, (16, 3)).astype(np.float32)
    images = rng.integers(0, 256, (5, 7, 9, 3), dtype=np.uint8)
    tokens = Palette(centers).encode(images, batch_size=2)
    assert tokens.shape == (5, 63) and tokens.dtype == torch.long
    np.testing.assert_array_equal(tokens.numpy(), brute_force_nearest(images, centers))


def test_decode_is_the_papers_formula_and_round_trips_palette_colours(rng):
    pal = Palette(rng.uniform(-1, 1, (8, 3)).astype(np.float32))
    tokens = torch.from_numpy(rng.integers(0, 8, (3, 12)))
    images = pal.decode(tokens, 3, 4)
    assert images.shape == (3, 3, 4, 3) and images.dtype == np.uint8
    expected = np.rint(127.5 * (pal.centers[tokens.numpy()] + 1)).astype(np.uint8).reshape(3, 3, 4, 3)
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(pal.encode(images), tokens)  # decoded colours encode back to themselves


def test_grayscale_stack_and_round_trip_error(grey_palette, rng):
    images = rng.integers(0, 256, (4, 5, 5), dtype=np.uint8)
    tokens = grey_palette.encode(images)
    assert tokens.shape == (4, 25)
    back = grey_palette.decode(tokens, 5, 5)[..., 0].astype(float)
    assert grey_palette.round_trip_error(images) == pytest.approx(np.abs(back - images).mean(), rel=1e-6)
    # 8 evenly spaced levels: no pixel is further than half a step (255/7/2) from its level
    assert np.abs(back - images).max() <= 255 / 14 + 1


def test_fit_sorts_by_brightness_and_is_deterministic(rng):
    images = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    a, b = Palette.fit(images, 12, seed=1), Palette.fit(images, 12, seed=1)
    assert a == b and a.fingerprint == b.fingerprint
    assert np.all(np.diff(a.centers.sum(1)) >= 0)
    assert a.round_trip_error(images) < 40


def test_fit_refuses_more_colours_than_the_images_have():
    images = np.zeros((3, 4, 4, 1), dtype=np.uint8)
    images[:, :2] = 255
    with pytest.raises(ValueError, match="only 2 distinct colours"):
        Palette.fit(images, 8)


def test_channel_mismatch_and_bad_input_say_what_to_do(grey_palette, rng):
    with pytest.raises(ValueError, match="convert the images"):
        grey_palette.encode(rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        grey_palette.encode(rng.random((2, 4, 4)))
    with pytest.raises(ValueError, match="cannot form"):
        grey_palette.decode(torch.zeros(1, 10, dtype=torch.long), 3, 3)


def test_save_load_round_trip_and_corrupt_file(tmp_path, rng):
    pal = Palette(rng.uniform(-1, 1, (512, 3)).astype(np.float32))
    pal.save(tmp_path / "palette.json")
    assert Palette.load(tmp_path / "palette.json") == pal
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a valid palette"):
        Palette.load(tmp_path / "bad.json")


def test_token_entropy_of_uniform_tokens_is_log2_k(grey_palette):
    tokens = torch.arange(8).repeat(10)
    assert grey_palette.token_entropy_bits(tokens) == pytest.approx(3.0)
