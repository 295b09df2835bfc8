"""The official model's size, as a user meets it: a stand-in of openai/imagegpt-small (transformers'
ImageGPTForCausalImageModeling with its config: 24 layers × 8 heads × 512 wide, 32×32 pixels, 512
colours; random weights) written with save_pretrained, imported with `igpt-lite import-hf`, then
the CLI verbs, the app's pages and the attention notebook's fast mode on it. Fast enough for CI by
their limits (a few pixels completed, one image sampled, a few images probed, the probe and the
bias test on low layers, where the forward pass stops), never by a smaller model. The references
are transformers' own: its image processor's tokens, its model's logits, and its first two blocks
alone (the lowest layers' numbers at a twelfth of a whole forward pass)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

pytest.importorskip("transformers")
from streamlit.testing.v1 import AppTest  # noqa: E402
from transformers import ImageGPTForCausalImageModeling, ImageGPTImageProcessor  # noqa: E402

from igpt_lite import cli, data  # noqa: E402
from igpt_lite.checkpoint import load_checkpoint  # noqa: E402
from test_benchmarks import load_script  # noqa: E402
from test_notebooks import run_fast  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
PHOTOS = ["--data", "photos"]  # an imported model names no dataset: 32×32 RGB crops
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """(the transformers folder, the imported checkpoint folder): imported through the CLI."""
    root = tmp_path_factory.mktemp("official")
    hf = load_script("official").make_standin(root / "imagegpt-small")
    assert cli.main(["import-hf", str(hf), str(root / "imported")]) == 0
    return hf, root / "imported"


@pytest.fixture(scope="module")
def theirs(standin):
    """transformers' model read from the stand-in's folder, and the same cut to its first two blocks."""
    hf, _ = standin
    return (ImageGPTForCausalImageModeling.from_pretrained(hf).eval(),
            ImageGPTForCausalImageModeling.from_pretrained(hf, n_layer=2).eval())


def official_tokens(hf: Path, images) -> torch.Tensor:
    """uint8 N×32×32×3 images as transformers' image processor tokenises them."""
    return ImageGPTImageProcessor.from_pretrained(hf)(images=list(images), return_tensors="pt").input_ids


@torch.inference_mode()
def first_blocks(model, tokens) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The two-block model on whole images as an ar model reads them (the start token, then every
    pixel but the last): the residual stream after the embedding and after block 0, and the logits
    over the 512 colours."""
    inputs = torch.cat([torch.full((len(tokens), 1), 512), tokens[:, :-1]], 1)
    out = model(inputs, output_hidden_states=True)
    return list(out.hidden_states[:2]), out.logits[..., :512]


def bits_per_dim(logits, tokens) -> float:
    return F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).item() / math.log(2)


def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert cli.main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_the_import_has_the_official_shape_and_gives_transformers_outputs(standin, theirs, capsys):
    _, imported = standin
    info = run_json(capsys, "info", "--model", str(imported))
    assert info["config"]["n_layer"] == 24 and info["config"]["n_head"] == 8 and info["config"]["n_embd"] == 512
    assert (info["config"]["height"], info["config"]["width"], info["config"]["n_colors"]) == (32, 32, 512)
    assert 76e6 < info["parameters"] < 77e6
    ck = load_checkpoint(imported)
    ids = torch.randint(0, 512, (1, 96), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = 512  # the start token
    with torch.inference_mode():
        expected = theirs[0](ids).logits[..., :512]
        ours = ck.model(ids)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)


def test_complete_keeps_the_top_rows_and_samples_the_last_one(standin, capsys):
    _, imported = standin
    out = run_json(capsys, "complete", "--model", str(imported), *PHOTOS, "--index", "3", "--rows", "31",
                   "--samples", "2", "--device", "auto")
    ck = load_checkpoint(imported)
    image = data.load_dataset("photos", "test", resolution=32).images[3]
    kept = ck.palette.encode(image[None])[0, : 31 * 32]
    tokens = torch.tensor(out["tokens"])
    assert tokens.shape == (1, 2, 1024)
    assert torch.equal(tokens[0, :, : 31 * 32], kept.expand(2, -1))
    assert ((tokens >= 0) & (tokens < 512)).all()


def test_sample_draws_a_whole_image_pixel_by_pixel_from_transformers_distributions(standin, theirs, capsys,
                                                                                  tmp_path):
    _, imported = standin
    png = tmp_path / "sample.png"
    out = run_json(capsys, "sample", "--model", str(imported), "--n", "1", "--seed", "3", "--out", str(png))
    tokens = torch.tensor(out["tokens"])
    assert tokens.shape == (1, 1024) and ((tokens >= 0) & (tokens < 512)).all()
    assert Image.open(png).mode == "RGB" and out["png"] == str(png)
    # the first pixels again, each drawn from transformers' next-pixel distribution with the seed's generator
    generator, drawn = torch.Generator().manual_seed(3), torch.full((1, 1), 512)
    with torch.inference_mode():
        for _ in range(4):
            probs = theirs[0](drawn).logits[:, -1, :512].float().softmax(-1)
            drawn = torch.cat([drawn, torch.multinomial(probs, 1, generator=generator)], 1)
    assert torch.equal(tokens[:, :4], drawn[:, 1:])


def test_lens_scores_every_layer_as_transformers_does(standin, theirs, capsys):
    hf, imported = standin
    out = run_json(capsys, "lens", "--model", str(imported), *PHOTOS, "--limit", "1")
    assert [r["layer"] for r in out["rows"]] == ["embed", *(f"blocks.{i}" for i in range(24)), "ln_f"]
    assert (out["dataset"], out["split"], out["n_images"], out["n_train"]) == ("photos", "test", 1, 1)
    rows = {r["layer"]: r for r in out["rows"]}
    tokens = official_tokens(hf, data.load_dataset("photos", "test", resolution=32, limit=1).images)
    (embed, block0), logits = first_blocks(theirs[1], tokens)
    with torch.inference_mode():  # a layer's read-out: transformers' final norm and head on its stream
        read_out = (lambda h: theirs[1].lm_head(theirs[1].transformer.ln_f(h))[..., :512])
        assert rows["embed"]["bits_per_dim"] == pytest.approx(bits_per_dim(read_out(embed), tokens), abs=1e-4)
        assert rows["blocks.0"]["bits_per_dim"] == pytest.approx(bits_per_dim(read_out(block0), tokens), abs=1e-4)
        assert rows["blocks.1"]["bits_per_dim"] == pytest.approx(bits_per_dim(logits, tokens), abs=1e-4)
        inputs = torch.cat([torch.full((1, 1), 512), tokens[:, :-1]], 1)
        own = bits_per_dim(theirs[0](inputs).logits[..., :512], tokens)
    for layer in ("blocks.23", "ln_f"):  # the last block's read-out is the model itself, tuned or not
        assert rows[layer]["bits_per_dim"] == pytest.approx(own, abs=1e-4)
        assert rows[layer]["tuned_bits_per_dim"] == pytest.approx(own, abs=1e-4)
    assert all(math.isfinite(r["tuned_bits_per_dim"]) for r in out["rows"])


def test_bias_on_four_small_folders_gives_transformers_effect_sizes(standin, theirs, capsys, tmp_path):
    """The fewest images the verb takes: 4 targets a set (fewer could never give p < 0.05), 2 attributes;
    the two layers transformers' first block gives (the forward pass stops after block 0)."""
    hf, imported = standin
    sets = load_script("official").make_bias_sets(tmp_path, targets=4, attributes=2)
    folders = [a for k in "XYAB" for a in (f"--{k.lower()}", str(tmp_path / k))]
    out = run_json(capsys, "bias", "--model", str(imported), *folders, "--compose", "none", "--no-baseline",
                   "--layers", "embed", "0")
    assert list(out) == ["model", "extraction", "sets", "notes", "seed", "seconds", "html", "likelihood", "ieat",
                         "table", "baseline_table"]
    assert {k: s["images"] for k, s in out["sets"].items()} == {"x": 4, "y": 4, "a": 2, "b": 2}
    assert out["likelihood"] == {"skipped": "not asked (--compose none)"} and out["baseline_table"] == []
    table = {r["layer"]: r for r in out["table"]}
    assert list(table) == ["embed", "blocks.0"]
    assert all(r["exact"] and r["n_permutations"] == math.comb(8, 4) and r["p_holm"] >= r["p_value"]
               for r in table.values())
    # iEAT by hand on transformers' features: each layer's stream, layer-normed, mean over positions;
    # s(w) = mean cosine with A - mean cosine with B; d = (mean s over X - over Y) / std over X and Y
    tokens = official_tokens(hf, np.concatenate([sets[k] for k in "XYAB"]))
    for layer, h in zip(["embed", "blocks.0"], first_blocks(theirs[1], tokens)[0]):
        f = F.normalize(F.layer_norm(h, (512,)).mean(1), dim=1).double()
        x, y, a, b = f.split([4, 4, 2, 2])
        s = torch.cat([(w @ a.T).mean(1) - (w @ b.T).mean(1) for w in (x, y)])
        assert table[layer]["effect_size"] == pytest.approx(((s[:4].mean() - s[4:].mean()) / s.std()).item(), abs=1e-3)


def test_attention_maps_every_layer_and_head_from_one_pixel(standin, capsys):
    _, imported = standin
    out = run_json(capsys, "attention", "--model", str(imported), *PHOTOS, "--pixel", "16", "16")
    maps, start = np.array(out["maps"]), np.array(out["start"])
    assert maps.shape == (24, 8, 32, 32)
    np.testing.assert_allclose(maps.sum((2, 3)) + start, 1.0, atol=1e-4)  # each head's weights sum to one


def test_probe_of_one_layer_on_a_few_images(standin, capsys):
    """Block 1: the forward passes (the model's and its random-weight copy's) stop after two blocks."""
    _, imported = standin
    out = run_json(capsys, "probe", "--model", str(imported), *PHOTOS, "--limit", "4", "--layers", "1",
                   "--C", "1.0")
    layers = {(r["kind"], r["layer"], r["depth"]) for r in out["table"]}
    assert ("trained", "blocks.1", 2) in layers and ("random", "blocks.1", 2) in layers


def test_the_attention_notebook_runs_in_fast_mode(standin):
    run_fast(ROOT / "notebooks" / "04_attention.ipynb", IGPT_MODEL=str(standin[1]))


def page(imported: Path, name: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=600).run()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    at.sidebar.text_input(key="model_path").set_value(str(imported)).run()
    at.sidebar.selectbox(key="dataset").set_value("photos").run()
    if name:
        at.switch_page(str(APP / "views" / f"{name}.py")).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_complete_page_defaults_to_one_completion_and_says_how_long_before_the_click(standin):
    at = page(standin[1])
    assert at.slider(key="complete_n").value == 1
    assert any(c.value.startswith("Expected: ") and "1 completion of 512 pixels" in c.value for c in at.caption)
    at.slider(key="complete_keep_rows").set_value(31).run()
    at.button(key="complete_run").click().run()
    assert not at.exception, at.exception
    assert at.session_state["complete_result"]["result"].images.shape == (1, 1, 32, 32, 3)


def test_attention_page_draws_chosen_layers_and_heads_not_all_192(standin):
    at = page(standin[1], "attention")
    assert at.multiselect(key="attention_layers").value == [0, 5, 9, 14, 18, 23]
    assert at.multiselect(key="attention_heads").value == list(range(8))
    grid = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("-attention_grid"))
    heatmaps = [t for t in json.loads(grid.proto.spec)["data"] if t["type"] == "heatmap"]
    assert len({(t["xaxis"], t["yaxis"]) for t in heatmaps}) == 6 * (8 + 1)  # 6 layers × (8 heads + the mean)
    at.multiselect(key="attention_layers").set_value([23]).run()
    at.multiselect(key="attention_heads").set_value([2, 5]).run()
    assert not at.exception, at.exception
    grid = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("-attention_grid"))
    titles = [a["text"] for a in json.loads(grid.proto.spec)["layout"]["annotations"]]
    assert [t.split("<br>")[0] for t in titles if t.startswith("L")] == ["L23 H2", "L23 H5", "L23 mean"]


def test_bias_page_fits_its_defaults_to_the_size_and_says_how_long(standin):
    at = page(standin[1], "bias")
    at.radio(key=f"bias_source:{standin[1]}").set_value("Generated figures scenes").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="bias_n").value == 10
    expected = [c.value for c in at.caption if c.value.startswith("Expected: ")]
    # 4 sets of 10 images and 8 counterfactual quads of 4 scenes, each for the model and for random-weight
    # copies
    assert len(expected) == 1 and "(144 image forwards" in expected[0]


@pytest.mark.parametrize("name", ["depth", "palette"])
def test_the_other_pages_open(standin, name):
    at = page(standin[1], name)
    assert at.title[0].value in ("Feature quality versus depth", "Palette")
