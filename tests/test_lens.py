"""The logit lens (probe.logit_lens): checked against direct computations, kept on disk, and its verb."""
import json
import math

import numpy as np
import pytest
import torch

from igpt_lite import probe
from igpt_lite.checkpoint import save_checkpoint
from igpt_lite.cli import main
from igpt_lite.probe import LensCurve, fit_tuned_lens, lens_bits, load_split, logit_lens
from igpt_lite.scoring import evaluate_bits_per_dim
from conftest import tiny_model


@pytest.fixture
def tokens():
    return torch.randint(0, 8, (12, 30), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def digits_model(tmp_path, grey_palette):
    return save_checkpoint(tmp_path / "m", tiny_model(seed=1, height=8, width=8), grey_palette, {"dataset": "digits"})


def hand_bits(model, tokens, upto: int) -> float:
    """Bits/dim of the residual stream after block `upto`, through ln_f and the head, by hand."""
    with torch.no_grad():
        x = model.image_inputs(tokens)
        h = model.wte(x) + model.wpe(torch.arange(tokens.shape[1]))
        for block in model.blocks[: upto + 1]:
            h = h + block.attn(block.ln_1(h), causal=True)[0]
            h = h + block.mlp(block.ln_2(h))
        logp = torch.log_softmax(model.lm_head(model.ln_f(h)), -1)
        nll = -logp.gather(-1, tokens[..., None]).mean()
    return nll.item() / math.log(2)


def test_the_last_layers_lens_is_the_models_own_bits_per_dim(tokens):
    model = tiny_model(n_layer=3)
    bits = lens_bits(model, tokens, batch_size=5)
    own = evaluate_bits_per_dim(model, tokens)
    assert list(bits) == ["embed", "blocks.0", "blocks.1", "blocks.2", "ln_f"]
    assert bits["blocks.2"] == pytest.approx(own, rel=1e-5)
    assert bits["ln_f"] == pytest.approx(own, rel=1e-5)


def test_a_middle_layers_lens_equals_a_hand_computation(tokens):
    model = tiny_model(n_layer=3)
    bits = lens_bits(model, tokens, ["blocks.0", "blocks.1"], batch_size=7)
    assert bits["blocks.0"] == pytest.approx(hand_bits(model, tokens, 0), rel=1e-5)
    assert bits["blocks.1"] == pytest.approx(hand_bits(model, tokens, 1), rel=1e-5)
    assert abs(bits["blocks.0"] - bits["blocks.1"]) > 1e-3  # the layers differ by far more than the tolerance


def test_the_tuned_lens_is_the_least_squares_map_to_the_last_block(tokens):
    model = tiny_model(n_layer=3)
    maps = fit_tuned_lens(model, tokens, batch_size=5, ridge=0.0)
    assert set(maps) == {"embed", "blocks.0", "blocks.1"}  # the last block is the target; ln_f reads the head
    with torch.no_grad():
        _, cache = model.run_with_cache(model.image_inputs(tokens))
    x = cache["blocks.0.resid_post"].reshape(-1, 32).double().numpy()
    y = cache["blocks.2.resid_post"].reshape(-1, 32).double().numpy()
    sol = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)[0]
    W, b = maps["blocks.0"]
    np.testing.assert_allclose(W.numpy(), sol[:32], atol=1e-3)
    np.testing.assert_allclose(b.numpy(), sol[32], atol=1e-3)
    tuned = lens_bits(model, tokens, ["blocks.0"], maps)["blocks.0"]
    with torch.no_grad():
        logp = torch.log_softmax(model.lm_head(model.ln_f(cache["blocks.0.resid_post"] @ W + b)), -1)
    assert tuned == pytest.approx(-logp.gather(-1, tokens[..., None]).mean().item() / math.log(2), rel=1e-5)


def test_logit_lens_scores_held_out_images_and_keeps_the_result(digits_model, tmp_path, monkeypatch):
    curve = logit_lens(digits_model, limit=20, cache_dir=tmp_path / "c")
    assert curve.layers() == ["embed", "blocks.0", "blocks.1", "ln_f"] and [r.depth for r in curve.rows] == [0, 1, 2, 3]
    assert (curve.dataset, curve.split, curve.n_images, curve.n_train, curve.source) == ("digits", "test", 20, 20,
                                                                                         "computed")
    from igpt_lite.checkpoint import load_checkpoint
    ck = load_checkpoint(digits_model)
    test = load_split("digits", "test", ck.palette, 8, 20)[1]
    assert curve.row("blocks.1").bits_per_dim == pytest.approx(evaluate_bits_per_dim(ck.model, test), rel=1e-5)
    assert curve.row("blocks.1").tuned_bits_per_dim == curve.row("blocks.1").bits_per_dim  # no map on the last block
    assert curve.row("embed").tuned_bits_per_dim != curve.row("embed").bits_per_dim  # read through its map

    monkeypatch.setattr(probe.lens, "_bits", lambda *a, **k: pytest.fail("recomputed a kept lens"))
    again = logit_lens(digits_model, limit=20, cache_dir=tmp_path / "c", compute=False)
    assert again.source == "cached" and again.rows == curve.rows
    with pytest.raises(LookupError, match="no logit lens is stored"):
        logit_lens(digits_model, limit=21, cache_dir=tmp_path / "c", compute=False)
    assert LensCurve.from_dict(json.loads(json.dumps(curve.to_dict()))).rows == curve.rows
    assert curve.text().splitlines()[1].split() == ["layer", "bits_per_dim", "tuned_bits_per_dim"]


def test_a_shipped_lens_is_used_when_it_belongs_to_the_model(digits_model, tmp_path):
    curve = logit_lens(digits_model, limit=10, tuned=False, cache_dir=tmp_path / "a")
    assert not curve.tuned and curve.row("embed").tuned_bits_per_dim is None
    curve.save(digits_model / probe.LENS_FILE)
    shipped = logit_lens(digits_model, limit=10, tuned=False, cache_dir=tmp_path / "b", compute=False)
    assert shipped.source == "shipped" and shipped.rows == curve.rows
    with pytest.raises(LookupError):  # other settings: not this curve
        logit_lens(digits_model, limit=10, tuned=True, cache_dir=tmp_path / "b", compute=False)


def test_a_bert_model_gets_a_clear_error(tokens):
    with pytest.raises(ValueError, match="the logit lens needs an ar model"):
        lens_bits(tiny_model(objective="bert"), tokens)


def test_the_lens_verb(digits_model, capsys):
    assert main(["lens", "--model", str(digits_model), "--limit", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in out["rows"]] == ["embed", "blocks.0", "blocks.1", "ln_f"]
    assert out["n_images"] == 10 and out["n_train"] == 10 and out["dataset"] == "digits"
    assert main(["lens", "--model", str(digits_model), "--limit", "10", "--plain"]) == 0
    text = capsys.readouterr().out
    assert "bits/dim on 10 digits test images" in text and "tuned" not in text
