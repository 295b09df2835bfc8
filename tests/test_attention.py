import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from igpt_lite import attention
from igpt_lite.attention import AttentionMaps, attention_maps, attention_summary, rollout
from igpt_lite.checkpoint import save_checkpoint
from igpt_lite.cli import main
from igpt_lite.model import GPT, GPTConfig
from igpt_lite.attention import attention_distance_chart, attention_grid, attention_rollout_figure
from igpt_lite.figures import figures_html

H, W = 4, 3  # not square, so rows and columns cannot be swapped unnoticed
OBJECTIVES = ["ar", "bert"]


def peaked_model(objective: str, seed: int = 0, **kw) -> GPT:
    """A random model with large weights, so attention is far from uniform (a stronger test)."""
    torch.manual_seed(seed)
    cfg = GPTConfig(**{**dict(n_colors=5, height=H, width=W, n_layer=3, n_head=2, n_embd=16), **kw},
                    objective=objective)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


def image_tokens(model: GPT, seed: int = 1, n: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.n_colors, (n, model.config.block_size), generator=g)


def manual_patterns(model: GPT, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's heads × T × T weights, recomputed from the cached residual stream entering it."""
    cfg = model.config
    names = ["embed"] + [f"blocks.{i}.resid_post" for i in range(cfg.n_layer)]
    _, cache = model.run_with_cache(model.image_inputs(tokens), names=names)
    T, d = cfg.block_size, cfg.n_embd // cfg.n_head
    out = []
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            x = cache[names[i]][0]
            q, k, _ = block.attn.qkv(block.ln_1(x)).split(cfg.n_embd, dim=-1)
            q, k = (t.view(T, cfg.n_head, d).transpose(0, 1) for t in (q, k))
            scores = q @ k.transpose(-1, -2) / math.sqrt(d)
            if cfg.objective == "ar":
                scores = scores + torch.full((T, T), float("-inf")).triu(1)
            out.append(torch.softmax(scores, -1))
    return out


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_maps_equal_manual_softmax(objective):
    model = peaked_model(objective)
    tokens = image_tokens(model)
    row, col = 2, 1
    q = row * W + col
    att = attention_maps(model, tokens, (row, col))
    for layer, pattern in enumerate(manual_patterns(model, tokens)):
        for head in range(model.config.n_head):
            weights = pattern[head, q].numpy()
            expected = np.zeros(H * W)
            for p in range(H * W):  # which key position holds pixel p
                key = p + 1 if objective == "ar" else p
                if key < len(weights):
                    expected[p] = weights[key]
            np.testing.assert_allclose(att.maps[layer, head].ravel(), expected, atol=1e-5)
            if objective == "ar":
                assert att.start[layer, head] == pytest.approx(weights[0], abs=1e-5)
    assert att.maps.shape == (3, 2, H, W)
    np.testing.assert_allclose(att.head_mean, att.maps.mean(1), atol=1e-6)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("pixel", [(0, 0), (1, 2), (3, 2)])
def test_weights_sum_to_one_over_what_the_query_sees(objective, pixel):
    model = peaked_model(objective)
    att = attention_maps(model, image_tokens(model), pixel)
    q = pixel[0] * W + pixel[1]
    start = att.start if objective == "ar" else 0.0
    np.testing.assert_allclose(att.maps.sum((2, 3)) + start, 1.0, atol=1e-5)
    np.testing.assert_allclose(att.rollout.sum() + (att.rollout_start or 0.0), 1.0, atol=1e-6)
    if objective == "ar":
        # pixel q sees the start token and pixels 0..q-1: not itself, nothing after it
        assert att.visible.ravel().tolist() == [p < q for p in range(H * W)]
        assert not att.visible[pixel]
        assert np.all(att.maps[..., ~att.visible] == 0) and np.all(att.rollout[~att.visible] == 0)
        if q == 0:  # the first pixel sees only the start token
            np.testing.assert_allclose(att.start, 1.0) and np.testing.assert_allclose(att.rollout_start, 1.0)
    else:
        assert att.visible.all() and att.start is None and att.rollout_start is None
        assert np.all(att.maps > 0)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_rollout_equals_reference_loop(objective):
    model = peaked_model(objective)
    tokens = image_tokens(model)
    T = model.config.block_size
    pixel = (3, 1)
    q = pixel[0] * W + pixel[1]
    # reference: whole matrices, plain loops, R = Â_{L-1} ... Â_0
    R = np.eye(T)
    for pattern in manual_patterns(model, tokens):
        a = pattern.mean(0).double().numpy()
        mixed = np.zeros((T, T))
        for i in range(T):
            for j in range(T):
                mixed[i, j] = 0.5 * a[i, j] + (0.5 if i == j else 0.0)
            mixed[i] /= mixed[i].sum()
        R = mixed @ R
    row = R[q]
    att = attention_maps(model, tokens, pixel)
    if objective == "ar":
        np.testing.assert_allclose(att.rollout.ravel()[: T - 1], row[1:], atol=1e-5)
        assert att.rollout.ravel()[T - 1] == 0 and att.rollout_start == pytest.approx(row[0], abs=1e-5)
    else:
        np.testing.assert_allclose(att.rollout.ravel(), row, atol=1e-5)


def test_rollout_by_hand():
    a0 = np.array([[1.0, 0.0], [0.5, 0.5]])
    a1 = np.array([[1.0, 0.0], [0.0, 1.0]])
    # Â0 = [[1, 0], [.25, .75]], Â1 = I, so row 1 of Â1·Â0 is [.25, .75]
    np.testing.assert_allclose(rollout(np.stack([a0, a1]), 1), [0.25, 0.75])
    a1 = np.array([[1.0, 0.0], [1.0, 0.0]])  # Â1 = [[1, 0], [.5, .5]]: row 1 = .5·[1,0] + .5·[.25,.75]
    np.testing.assert_allclose(rollout(np.stack([a0, a1]), 1), [0.625, 0.375])


def fake_patterns(pattern: np.ndarray):
    """Replace the model's attention with a given one (layers × heads × T × T, the same for every image)."""
    def patterns(model, tokens):
        return [torch.tensor(p, dtype=torch.float32).expand(len(tokens), *p.shape) for p in pattern]
    return patterns


def test_distance_entropy_and_start_share_by_hand_ar(monkeypatch):
    model = peaked_model("ar", height=1, width=3, n_layer=1, n_head=1)
    # keys: start, pixel 0, pixel 1 (pixel 2 is never a key)
    pattern = np.array([[[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]]])
    monkeypatch.setattr(attention.maps, "_patterns", fake_patterns(pattern))
    s = attention_summary(model, image_tokens(model, n=2), batch_size=1)
    # pixel 1 -> pixel 0: 1 px; pixel 2 -> pixel 0: 2 px, -> pixel 1: 1 px; the start token is left out
    assert s.mean_distance[0, 0] == pytest.approx((0.5 * 1 + 0.3 * 2 + 0.5 * 1) / (0.5 + 0.3 + 0.5))
    h2 = -(0.2 * math.log2(0.2) + 0.3 * math.log2(0.3) + 0.5 * math.log2(0.5))
    assert s.entropy_bits[0, 0] == pytest.approx((0 + 1 + h2) / 3)
    assert s.start_share[0, 0] == pytest.approx((1 + 0.5 + 0.2) / 3)
    assert s.n_images == 2 and s.mean_distance.shape == (1, 1)


def test_distance_and_entropy_by_hand_bert_2d(monkeypatch):
    model = peaked_model("bert", height=2, width=2, n_layer=1, n_head=2)
    r2 = math.sqrt(2)
    # pixels (0,0) (0,1) (1,0) (1,1); head 0 as below, head 1 always looks at itself
    head0 = np.array([[0, 0, 0, 1.0], [0.5, 0, 0.5, 0], [0, 0, 1.0, 0], [0.25, 0.25, 0.25, 0.25]])
    pattern = np.stack([head0, np.eye(4)])[None]
    monkeypatch.setattr(attention.maps, "_patterns", fake_patterns(pattern))
    s = attention_summary(model, image_tokens(model))
    expected = (r2 + (0.5 * 1 + 0.5 * r2) + 0 + 0.25 * (r2 + 1 + 1 + 0)) / 4
    np.testing.assert_allclose(s.mean_distance, [[expected, 0.0]])
    np.testing.assert_allclose(s.entropy_bits, [[(0 + 1 + 0 + 2) / 4, 0.0]])
    assert s.start_share is None


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_summary_on_a_model_does_not_depend_on_batching(objective):
    model = peaked_model(objective)
    tokens = image_tokens(model, n=3)
    a, b = attention_summary(model, tokens), attention_summary(model, tokens, batch_size=2)
    np.testing.assert_allclose(a.mean_distance, b.mean_distance, rtol=1e-5)
    np.testing.assert_allclose(a.entropy_bits, b.entropy_bits, rtol=1e-5)
    max_distance = math.hypot(H - 1, W - 1)
    assert np.all((a.mean_distance > 0) & (a.mean_distance <= max_distance))
    assert np.all((a.entropy_bits > 0) & (a.entropy_bits <= math.log2(H * W)))
    json.dumps(a.to_dict())


def test_bad_input_raises_clear_errors():
    model = peaked_model("ar")
    tokens = image_tokens(model)
    for pixel in [(H, 0), (0, W), (-1, 0)]:
        with pytest.raises(ValueError, match="outside the 4×3 image"):
            attention_maps(model, tokens, pixel)
    with pytest.raises(ValueError, match="pixel must be"):
        attention_maps(model, tokens, (1,))
    with pytest.raises(ValueError, match=r"expected tokens shaped 1×12"):
        attention_maps(model, image_tokens(model, n=2), (0, 0))
    with pytest.raises(ValueError, match=r"expected tokens shaped 1×12"):
        attention_maps(model, tokens[:, :-1], (0, 0))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 5\)"):
        attention_maps(model, tokens + 5, (0, 0))
    with pytest.raises(ValueError, match="N×12"):
        attention_summary(model, tokens[:, :5])
    # a single image as a 1-D sequence is fine
    assert attention_maps(model, tokens[0], (1, 1)).maps.shape == (3, 2, H, W)


@pytest.mark.parametrize("channels", [1, 3])
def test_figures_build_from_plain_arrays(channels, rng):
    maps = rng.random((2, 3, H, W))
    image = rng.integers(0, 256, (H, W, channels), dtype=np.uint8)
    visible = np.arange(H * W).reshape(H, W) < 7
    att = AttentionMaps(objective="ar", pixel=(2, 1), maps=maps, start=rng.random((2, 3)), head_mean=maps.mean(1),
                        head_mean_start=rng.random(2), rollout=maps[0, 0], rollout_start=0.1, visible=visible,
                        image=image)
    fig = attention_grid(att)
    assert "a pixel sees only the pixels before it" in fig.layout.title.text
    assert len(fig.layout.annotations) == 2 * 4  # one title per panel, the mean column included
    one = attention_grid(att, layers=[1], panel_px=200)  # one layer enlarged
    assert len(one.layout.annotations) == 4 and "layer 1, each head" in one.layout.title.text
    with pytest.raises(ValueError, match="layer 5 does not exist"):
        attention_grid(att, layers=[5])
    bert = AttentionMaps(objective="bert", pixel=(2, 1), maps=maps, start=None, head_mean=maps.mean(1),
                         head_mean_start=None, rollout=maps[0, 0], rollout_start=None, visible=None, image=None)
    assert "autoregressive" not in attention_grid(bert).layout.title.text  # bare: maps only
    roll = attention_rollout_figure(bert)
    assert "capped at the 2nd-largest" in roll.layout.title.text and "autoregressive" not in roll.layout.title.text
    chart = attention_distance_chart(rng.random((2, 3)))
    assert len(chart.data) == 3 + 1  # a trace per head, and the layer mean
    html = figures_html([fig, roll, chart])
    assert html.count("Plotly.newPlot") == 3 and "cdn.plot.ly/plotly" not in html  # plotly.js inline


@pytest.fixture
def attention_checkpoint(tmp_path, grey_palette):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=2, n_head=2, n_embd=16)).eval()
    return save_checkpoint(tmp_path / "m", model, grey_palette, {"dataset": "digits"})


def test_cli_attention_json_carries_the_numbers(attention_checkpoint, tmp_path, capsys, rng):
    png = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(png)
    html = tmp_path / "a.html"
    assert main(["attention", "--model", str(attention_checkpoint), "--image", str(png), "--pixel", "5", "2",
                 "--html", str(html), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pixel"] == [5, 2] and out["objective"] == "ar" and html.exists()
    maps, start = np.array(out["maps"]), np.array(out["start"])
    assert maps.shape == (2, 2, 8, 8) and start.shape == (2, 2) and np.array(out["rollout"]).shape == (8, 8)
    np.testing.assert_allclose(maps.sum((2, 3)) + start, 1, atol=1e-5)
    assert np.array(out["rollout"]).sum() + out["rollout_start"] == pytest.approx(1, abs=1e-5)
    assert np.array(out["mean_distance"]).shape == (2, 2) and np.array(out["entropy_bits"]).shape == (2, 2)
    assert not np.array(out["visible"])[5, 2:].any() and np.array(out["visible"])[5, :2].all()

    assert main(["attention", "--model", str(attention_checkpoint), "--index", "3", "--pixel", "0", "0",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "digits/test[3]" and np.array(out["start"]) == pytest.approx(1)

    assert main(["attention", "--model", str(attention_checkpoint), "--image", str(png), "--pixel", "8", "0"]) == 2
    assert "outside the 8×8 image" in capsys.readouterr().err


# ---- what notebook 04's widget and cells draw (widget callbacks never fire headless) ----

def _panels(fig):
    """Per panel of an attention figure: (weights z, greyed mask or None, query marker (row, col))."""
    heat = [t for t in fig.data if t.type == "heatmap"]
    marks = [(int(t.y[0]), int(t.x[0])) for t in fig.data if t.type == "scatter"]
    weights = [t for t in heat if t.hoverinfo != "skip"]
    greyed = [~np.isnan(np.asarray(t.z, dtype=float)) for t in heat if t.hoverinfo == "skip"]
    return weights, greyed, marks


@pytest.mark.parametrize("pixel, layer", [((5, 2), 1), ((0, 7), 0)])
def test_pixel_widget_figure_draws_that_pixels_maps_at_that_layer(attention_checkpoint, rng, pixel, layer):
    # notebook 04's widget shows attention_grid(attend(ck, image, (row, col)), layers=[layer]) on every change
    from igpt_lite.attention import attend
    from igpt_lite.checkpoint import load_checkpoint

    ck = load_checkpoint(attention_checkpoint)
    image = rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)
    att = attend(ck, image, pixel)
    fig = attention_grid(att, layers=[layer], panel_px=200)
    weights, greyed, marks = _panels(fig)
    assert len(weights) == ck.config.n_head + 1  # every head, then the mean over heads
    for k in range(ck.config.n_head):
        np.testing.assert_allclose(np.asarray(weights[k].z, dtype=float), att.maps[layer, k])
    np.testing.assert_allclose(np.asarray(weights[-1].z, dtype=float), att.head_mean[layer])
    assert all(m == pixel for m in marks) and len(marks) == len(weights)
    for g in greyed:  # the unseen pixels are greyed: raster order, the query itself included
        np.testing.assert_array_equal(g, ~attention.visible_pixels(ck.config, *pixel))
    assert f"(row {pixel[0]}, col {pixel[1]}), layer {layer}" in fig.layout.title.text
    # an ar model puts no weight at all on what it cannot see
    assert att.maps[:, :, ~att.visible].max() == 0


def test_visibility_figure_ar_sees_the_raster_prefix_bert_everything():
    from igpt_lite.attention import visibility_figure

    cfg = GPTConfig(n_colors=5, height=H, width=W, n_layer=1, n_head=1, n_embd=8)
    bert = GPTConfig(**{**cfg.to_dict(), "objective": "bert"})
    masks = {"ar": attention.visible_pixels(cfg, 2, 1), "bert": attention.visible_pixels(bert, 2, 1)}
    fig = visibility_figure(masks, (2, 1), image=np.zeros((H, W, 1), np.uint8))
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["ar: sees 7 of 12 pixels", "bert: sees 12 of 12 pixels"]  # pixel 2·3+1 = 7 sees 0..6
    _, greyed, marks = _panels(fig)
    np.testing.assert_array_equal(greyed[0], ~masks["ar"])
    np.testing.assert_array_equal(greyed[1], np.zeros((H, W), bool))
    assert marks == [(2, 1), (2, 1)]
