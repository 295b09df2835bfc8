"""The one-call-per-capability functions that the CLI, app pages and notebooks all use."""
import numpy as np
import pytest
import torch

from igpt_lite import bias, checkpoint, data
from igpt_lite.attention import attend, attention_maps
from igpt_lite.features import cache_name, extract_features, parse_layers
from igpt_lite.palette import Palette, palette_sweep
from igpt_lite.sample import complete, complete_images
from conftest import tiny_model


@pytest.fixture
def tiny_ck(grey_palette):
    return checkpoint.Checkpoint(model=tiny_model(), palette=grey_palette, meta={"dataset": "digits"})


def test_dataset_name_uses_the_override_then_the_model_and_says_what_to_do_otherwise(tiny_ck):
    assert tiny_ck.dataset_name() == "digits" and tiny_ck.dataset_name("mnist") == "mnist"
    imported = checkpoint.Checkpoint(model=tiny_ck.model, palette=tiny_ck.palette, meta={"source": "transformers ImageGPT"})
    with pytest.raises(ValueError, match="names no dataset .* choose one of digits, mnist"):
        imported.dataset_name()
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        tiny_ck.dataset_name("cifar")


def test_summary_of_a_bundled_model_reads_its_config_and_history():
    ck = checkpoint.load_checkpoint("mnist")
    s = ck.summary()
    assert s.source == "bundled" and s.name == "mnist" and s.dataset == "mnist"
    assert s.parameters == sum(p.numel() for p in ck.model.parameters())
    assert s.step == ck.meta["training"]["step"] and s.val_bpd == ck.meta["training"]["history"][-1]["val_bpd"]
    card = dict(s.card())
    assert card["images"].startswith("28×28, grey, 8-colour palette")
    assert "6 layers × 128 wide" in card["size"] and card["val bits/dim"].startswith(f"{s.val_bpd:.3f}")
    imported = checkpoint.Checkpoint(model=ck.model, palette=ck.palette, meta={"source": "transformers ImageGPT"})
    assert imported.summary().source == "imported" and "choose a dataset" in dict(imported.summary().card())["data"]


def test_palette_report_equals_its_definitions(grey_palette, rng):
    images = rng.integers(0, 256, (5, 6, 7, 1), dtype=np.uint8)
    report = grey_palette.report(images)
    tokens = grey_palette.encode(images).numpy().ravel()
    counts = np.bincount(tokens, minlength=8)
    np.testing.assert_allclose(report.usage, counts / counts.sum())
    p = counts[counts > 0] / counts.sum()
    assert report.token_entropy_bits == pytest.approx(-(p * np.log2(p)).sum())
    assert report.round_trip_error == pytest.approx(grey_palette.round_trip_error(images))
    np.testing.assert_array_equal(report.colors[:, 0], np.rint(127.5 * (grey_palette.centers[:, 0] + 1)))


def test_palette_sweep_error_falls_and_entropy_rises_with_k():
    train = data.load_dataset("digits", "train").images
    val = data.load_dataset("digits", "val").images
    reports = palette_sweep(train, val, ks=(2, 4, 8))
    assert [r.n_colors for r in reports] == [2, 4, 8]
    errors, entropies = [r.round_trip_error for r in reports], [r.token_entropy_bits for r in reports]
    assert errors == sorted(errors, reverse=True) and entropies == sorted(entropies)
    assert reports[1].round_trip_error == pytest.approx(Palette.fit(train, 4).round_trip_error(val))


def test_bias_test_equals_ieat_on_the_features_it_extracts(tiny_ck, rng):
    sets = {k: rng.integers(0, 256, (5, 6, 5, 1), dtype=np.uint8) for k in "XYAB"}
    result = bias.bias_test(tiny_ck, sets, n_permutations=500, seed=3)
    feats = {k: extract_features(tiny_ck.model, tiny_ck.palette.encode(v)) for k, v in sets.items()}
    expected = bias.ieat_per_layer(feats["X"], feats["Y"], feats["A"], feats["B"], n_permutations=500, seed=3)
    assert [r.layer for r in result.table] == ["embed", "blocks.0", "blocks.1"]
    for got, want in zip(result.table, expected):
        assert got.effect_size == pytest.approx(want.effect_size, abs=1e-6)
        assert got.p_value == want.p_value and got.p_holm == want.p_holm
    assert result.n_per_set == {"X": 5, "Y": 5, "A": 5, "B": 5}
    with pytest.raises(ValueError, match="set Y: expected images shaped N×6×5×1"):
        bias.bias_test(tiny_ck, {**sets, "Y": sets["Y"][:, :4]})
    with pytest.raises(ValueError, match="missing B"):
        bias.bias_test(tiny_ck, {k: sets[k] for k in "XYA"})


def test_attend_is_attention_maps_of_the_encoded_image_with_the_image_it_saw(tiny_ck, rng):
    image = rng.integers(0, 256, (6, 5, 1), dtype=np.uint8)
    att = attend(tiny_ck, image, (3, 2))
    ref = attention_maps(tiny_ck.model, tiny_ck.palette.encode(image[None]), (3, 2))
    np.testing.assert_array_equal(att.maps, ref.maps)
    np.testing.assert_array_equal(att.image, tiny_ck.palette.decode(tiny_ck.palette.encode(image[None]), 6, 5)[0])
    with pytest.raises(ValueError, match="expected one image shaped 6×5×1"):
        attend(tiny_ck, image[:4], (0, 0))


def test_parse_layers_is_the_one_vocabulary(tiny_ck):
    model = tiny_ck.model
    assert parse_layers(model, ["embed", "1", "blocks.0", "-1", "blocks.1.resid_post", "ln_f"]) == \
        ["embed", "blocks.1", "blocks.0", "blocks.1", "blocks.1", "ln_f"]
    assert parse_layers(model) == ["embed", "blocks.0", "blocks.1", "ln_f"]
    assert parse_layers(model, None, final_norm=False) == ["embed", "blocks.0", "blocks.1"]
    with pytest.raises(ValueError, match="unknown layer 'blocks.7'.*0..1"):
        parse_layers(model, ["7"])
    _, cache = model.run_with_cache(model.image_inputs(torch.zeros(1, 30, dtype=torch.long)))
    assert all(cache_name(l) in cache for l in parse_layers(model))


def test_complete_images_is_complete_decoded(tiny_ck, rng):
    images = rng.integers(0, 256, (2, 6, 5, 1), dtype=np.uint8)
    steps = []
    result = complete_images(tiny_ck.model, tiny_ck.palette, images, 3, n_samples=2, seed=4,
                             on_step=lambda done, total: steps.append((done, total)))
    tokens = complete(tiny_ck.model, tiny_ck.palette.encode(images), 3, 2, seed=4)
    torch.testing.assert_close(result.tokens, tokens)
    assert result.images.shape == (2, 2, 6, 5, 1)
    np.testing.assert_array_equal(result.images[1, 0], tiny_ck.palette.decode(tokens[1, 0], 6, 5)[0])
    np.testing.assert_array_equal(result.images[:, :, :3], np.broadcast_to(result.quantised[:, None, :3],
                                                                           (2, 2, 3, 5, 1)))
    assert steps[-1] == (15, 15) and len(steps) == 15  # one call per generated pixel (rows 3-5 of 5 columns)
    with pytest.raises(ValueError, match="expected images shaped N×6×5×1"):
        complete_images(tiny_ck.model, tiny_ck.palette, images[..., :4, :], 3)
