"""The official model's size, as a user meets it: a stand-in of openai/imagegpt-small (transformers'
ImageGPTForCausalImageModeling with its config: 24 layers × 8 heads × 512 wide, 32×32 pixels, 512
colours; random weights) written with save_pretrained, imported with `igpt-lite import-hf`, then
the CLI verbs and the app's pages on it. Fast enough for CI by their limits (a few pixels sampled,
a few images probed), never by a smaller model."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from streamlit.testing.v1 import AppTest  # noqa: E402
from transformers import ImageGPTForCausalImageModeling  # noqa: E402

from igpt_lite import cli, data  # noqa: E402
from igpt_lite.checkpoint import load_checkpoint  # noqa: E402
from test_benchmarks import load_script  # noqa: E402

APP = Path(__file__).resolve().parent.parent / "app"
PHOTOS = ["--data", "photos"]  # an imported model names no dataset: 32×32 RGB crops
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """(the transformers folder, the imported checkpoint folder): imported through the CLI."""
    root = tmp_path_factory.mktemp("official")
    hf = load_script("official").make_standin(root / "imagegpt-small")
    assert cli.main(["import-hf", str(hf), str(root / "imported")]) == 0
    return hf, root / "imported"


def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert cli.main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_the_import_has_the_official_shape_and_gives_transformers_outputs(standin, capsys):
    hf, imported = standin
    info = run_json(capsys, "info", "--model", str(imported))
    assert info["config"]["n_layer"] == 24 and info["config"]["n_head"] == 8 and info["config"]["n_embd"] == 512
    assert (info["config"]["height"], info["config"]["width"], info["config"]["n_colors"]) == (32, 32, 512)
    assert 76e6 < info["parameters"] < 77e6
    ck = load_checkpoint(imported)
    ids = torch.randint(0, 512, (1, 96), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = 512  # the start token
    with torch.inference_mode():
        theirs = ImageGPTForCausalImageModeling.from_pretrained(hf).eval()(ids).logits[..., :512]
        ours = ck.model(ids)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


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


def test_attention_maps_every_layer_and_head_from_one_pixel(standin, capsys):
    _, imported = standin
    out = run_json(capsys, "attention", "--model", str(imported), *PHOTOS, "--pixel", "16", "16")
    maps, start = np.array(out["maps"]), np.array(out["start"])
    assert maps.shape == (24, 8, 32, 32)
    np.testing.assert_allclose(maps.sum((2, 3)) + start, 1.0, atol=1e-4)  # each head's weights sum to one


def test_probe_of_one_layer_on_a_few_images(standin, capsys):
    _, imported = standin
    out = run_json(capsys, "probe", "--model", str(imported), *PHOTOS, "--limit", "4", "--layers", "12",
                   "--C", "1.0")
    layers = {(r["kind"], r["layer"]) for r in out["table"]}
    assert ("trained", "blocks.12") in layers and ("random", "blocks.12") in layers


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
    # 4 sets of 10 images and 4 × (4 targets × 2 attributes) composed scenes, each for the model and its
    # random-weight copy
    assert len(expected) == 1 and "(144 image forwards" in expected[0]


@pytest.mark.parametrize("name", ["depth", "palette"])
def test_the_other_pages_open(standin, name):
    at = page(standin[1], name)
    assert at.title[0].value in ("Feature quality versus depth", "Palette")
