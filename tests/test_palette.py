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
    # the tokens, when at hand, give the same error without encoding again
    assert grey_palette.round_trip_error(images, tokens=grey_palette.encode(images)) == grey_palette.round_trip_error(images)
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


def test_to_json_is_what_save_writes_and_reads_back_bit_for_bit(tmp_path, rng):
    pal = Palette(rng.uniform(-1, 1, (16, 3)).astype(np.float32))
    pal.save(tmp_path / "palette.json")
    assert (tmp_path / "palette.json").read_text() == pal.to_json()
    back = Palette.from_json(pal.to_json())
    assert back == pal and back.centers.dtype == np.float32
    assert Palette.load(tmp_path / "palette.json").fingerprint == pal.fingerprint


def test_report_carries_its_palette_and_sweep_reports_each_fitted_palette(rng):
    import json

    from igpt_lite.palette import palette_sweep

    train = rng.integers(0, 256, (20, 6, 6, 3)).astype(np.uint8)
    val = rng.integers(0, 256, (5, 6, 6, 3)).astype(np.uint8)
    reports = palette_sweep(train, val, ks=(2, 8))
    assert [r.n_colors for r in reports] == [2, 8]
    for r in reports:
        assert r.palette == Palette.fit(train, r.n_colors)  # the palette fitted with the same seed
        assert r.round_trip_error == r.palette.round_trip_error(val)
        np.testing.assert_array_equal(r.colors, r.palette.colors)
        assert "palette" not in json.loads(json.dumps(r.to_dict()))  # to_dict stays plain JSON
    assert reports[1].round_trip_error < reports[0].round_trip_error


def test_swatches_draw_one_square_per_colour_in_its_colour(grey_palette):
    from igpt_lite.palette import palette_swatches

    grey = palette_swatches(grey_palette.colors, usage=np.full(8, 1 / 8))
    marker = grey.data[0].marker
    assert len(grey.data[0].x) == 8 and marker.symbol == "square"
    assert list(marker.color) == [f"rgb({v},{v},{v})" for v in grey_palette.colors[:, 0]]
    assert grey.data[0].text[3] == "3<br>12%"
    rgb = np.array([[255, 0, 0], [0, 128, 255]], dtype=np.uint8)
    fig = palette_swatches(rgb)
    assert list(fig.data[0].marker.color) == ["rgb(255,0,0)", "rgb(0,128,255)"] and "%" not in fig.data[0].hovertext[0]


def test_sweep_chart_plots_error_and_entropy_against_k(rng):
    from igpt_lite.palette import palette_sweep, palette_sweep_chart

    images = rng.integers(0, 256, (10, 5, 5, 1)).astype(np.uint8)
    reports = palette_sweep(images, images, ks=(8, 2, 4))
    fig = palette_sweep_chart(reports, current=4)
    error, entropy, marked = fig.data
    assert list(marked.x) == [4, 4] and marked.name == "this model: 4 colours"
    assert list(error.x) == [2, 4, 8] and list(entropy.x) == [2, 4, 8]
    by_k = {r.n_colors: r for r in reports}
    assert list(error.y) == [by_k[k].round_trip_error for k in (2, 4, 8)]
    assert list(entropy.y) == [by_k[k].token_entropy_bits for k in (2, 4, 8)] and entropy.yaxis == "y2"
