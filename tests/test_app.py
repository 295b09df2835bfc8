"""The app's shared sidebar and its "Complete an image" page, driven headless (streamlit.testing
AppTest) on the bundled models: what the page shows, not just that it runs."""
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from igpt_lite import sample
from igpt_lite.checkpoint import BUNDLED_DIR, load_checkpoint
from igpt_lite.sample import complete_images

APP = Path(__file__).resolve().parent.parent / "app"


def seen(markdown: str) -> str:
    """What a reader sees of Markdown whose outside text the app escaped (`\\_` shows `_`)."""
    return re.sub(r"\\(.)", r"\1", markdown)


pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / "mnist-small").exists(), reason="bundled models missing")


def app() -> AppTest:
    """The app as a browser opens it: main.py (navigation + sidebar), first page "Complete an image"."""
    return AppTest.from_file(str(APP / "main.py"), default_timeout=120)


def complete_page() -> AppTest:
    at = app().run()
    assert not at.exception, at.exception
    return at


def result(at):
    return at.session_state["complete_result"]["result"]


def result_caption(at) -> str:
    return [c for img in at.image for c in img.captions if "completion" in c][0]


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


# ---- the shared sidebar ----

def test_sidebar_shows_the_default_models_card():
    at = complete_page()
    assert at.sidebar.selectbox(key="model_label").value == "mnist-small (bundled)"
    card = at.sidebar.expander[0].markdown[0].value
    assert "**model**: mnist-small (bundled)" in card
    assert "4 layers × 128 wide" in card and "28×28, grey, 8-colour palette" in card and "**data**: mnist" in card


def test_a_typed_path_that_is_no_checkpoint_says_so_and_the_page_asks_for_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    at = complete_page()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    assert [i.value for i in at.main.info] == ["Choose a model in the sidebar."]
    at.sidebar.text_input(key="model_path").set_value(str(tmp_path)).run()
    assert not at.exception
    assert "Cannot load this model" in at.sidebar.error[0].value
    assert f"{tmp_path} is neither a checkpoint nor a training run folder" in seen(at.sidebar.error[0].value)
    assert [i.value for i in at.main.info] == ["Choose a model in the sidebar."]
    assert not at.button  # nothing to complete


def test_a_checkpoint_with_a_foreign_palette_shows_the_loaders_message(tmp_path):
    ck = tmp_path / "mixed"
    shutil.copytree(BUNDLED_DIR / "mnist-small", ck)
    shutil.copy(BUNDLED_DIR / "shapes" / "palette.json", ck / "palette.json")
    at = complete_page()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    at.sidebar.text_input(key="model_path").set_value(str(ck)).run()
    assert not at.exception
    msg = at.sidebar.error[0].value
    assert "palette.json: this palette" in msg and "restore the checkpoint's own palette.json" in msg
    assert [i.value for i in at.main.info] == ["Choose a model in the sidebar."]


def test_a_model_that_names_no_dataset_gets_a_dataset_choice(tmp_path):
    ck = tmp_path / "imported-style"
    shutil.copytree(BUNDLED_DIR / "mnist-small", ck)
    config = json.loads((ck / "config.json").read_text())
    config.pop("dataset")
    (ck / "config.json").write_text(json.dumps(config))
    at = complete_page()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    at.sidebar.text_input(key="model_path").set_value(f"  {ck}  ").run()  # pasted with spaces around
    assert not at.exception, at.exception
    choice = at.sidebar.selectbox(key="dataset")
    assert choice.label == "Images from (this model names no dataset)" and "mnist" in choice.options
    card = at.sidebar.expander[0].markdown[0].value
    assert "none recorded (imported)" in card
    choice.set_value("mnist").run()
    assert not at.exception and "trained on unknown data (imported)" in at.caption[0].value
    assert at.number_input(key="complete_index").max == 499  # mnist's 500 test images


def test_a_model_trained_on_a_dataset_missing_here_gets_a_dataset_choice(tmp_path):
    ck = tmp_path / "elsewhere"
    shutil.copytree(BUNDLED_DIR / "mnist-small", ck)
    config = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**config, "dataset": "my-scans"}))
    at = complete_page()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    at.sidebar.text_input(key="model_path").set_value(str(ck)).run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="dataset").label == "Images from ('my-scans' is not available here)"
    assert "digits test image #0: rows 0–13 kept" in [c for img in at.image for c in img.captions]  # the first choice


# ---- complete a held-out image ----

def test_first_load_shows_the_strip_and_samples_nothing():
    at = complete_page()
    assert at.title[0].value == "Complete an image"
    assert at.caption[0].value.startswith("mnist-small: 0.90M parameters, 28×28, 8 colours, trained on mnist.")
    assert [b.label for b in at.button][:10] == [f"#{i}" for i in range(10)]
    assert [i.value for i in at.main.info] == ["Press **Complete** to sample completions of this image."]
    assert "complete_result" not in at.session_state
    assert [c for img in at.image for c in img.captions if c] == ["mnist test image #0: rows 0–13 kept"]


@pytest.mark.slow  # ~2 s (samples three completions on mnist-small)
def test_complete_shows_n_completions_equal_to_the_library_call():
    at = complete_page()
    at.slider(key="complete_n").set_value(3)
    at.slider(key="complete_keep_rows").set_value(10)
    at.button(key="complete_run").click().run()
    assert not at.exception, at.exception
    r = result(at)
    assert r.images.shape == (1, 3, 28, 28, 1) and r.keep_rows == 10 and r.seed == 0
    caption = result_caption(at)
    assert caption.startswith("3 completions · 10 of 28 rows kept · seed 0 · temperature 1 · top-k off · sampled in ")
    ck = load_checkpoint("mnist-small")
    from igpt_lite.data import load_dataset

    image = load_dataset("mnist", "test", resolution=28, channels=1).images[:1]
    ref = complete_images(ck.model, ck.palette, image, 10, n_samples=3, seed=0)
    np.testing.assert_array_equal(r.images, ref.images)
    np.testing.assert_array_equal(r.images[0, :, :10], np.repeat(ref.quantised[:, :10], 3, 0))  # kept rows kept


def test_a_thumbnail_click_picks_the_test_image():
    at = complete_page()
    at.button(key="complete_pick_3").click().run()
    assert at.number_input(key="complete_index").value == 3
    assert "mnist test image #3: rows 0–13 kept" in [c for img in at.image for c in img.captions]
    at.number_input(key="complete_index").set_value(27).run()  # another page of the strip
    assert [b.label for b in at.button][:10] == [f"#{i}" for i in range(20, 30)]
    assert at.button(key="complete_pick_7").proto.type == "primary"  # #27 is highlighted


def quick(at) -> AppTest:
    """Fewer pixels to sample (the last 8 rows, twice) where the count does not matter."""
    at.slider(key="complete_keep_rows").set_value(20)
    at.slider(key="complete_n").set_value(2)
    return at


@pytest.mark.slow
def test_same_seed_gives_the_same_images_and_new_seed_others():
    at = quick(complete_page())
    at.button(key="complete_run").click().run()
    first, first_url = result(at).images, at.image[-1].value
    at.button(key="complete_run").click().run()
    np.testing.assert_array_equal(result(at).images, first)
    assert at.image[-1].value == first_url  # the same picture is served
    at.button(key="complete_new_seed").click().run()
    seed = at.number_input(key="complete_seed").value
    assert seed == result(at).seed and f"seed {seed} ·" in result_caption(at)
    assert not np.array_equal(result(at).images, first) and at.image[-1].value != first_url


def test_reruns_redraw_the_last_result_without_sampling():
    at = quick(complete_page())
    at.button(key="complete_run").click().run()
    caption, r = result_caption(at), result(at)
    at.slider(key="complete_temperature").set_value(1.5).run()  # a rerun, no click
    assert result_caption(at) == caption and result(at) is r  # "sampled in … s" unchanged: not resampled
    at.button(key="complete_pick_1").click().run()  # another image: the old completions are not shown
    assert [i.value for i in at.main.info] == ["Press **Complete** to sample completions of this image."]


def test_top_k_and_temperature_reach_the_sampler():
    at = complete_page()
    at.number_input(key="complete_top_k").set_value(1)
    at.slider(key="complete_n").set_value(2)
    at.button(key="complete_run").click().run()
    r = result(at)
    np.testing.assert_array_equal(r.images[0, 0], r.images[0, 1])  # top-1 is greedy: both the same
    assert "top-k 1" in result_caption(at)


@pytest.mark.slow
def test_an_rgb_model_completes_in_colour():
    at = complete_page()
    at.sidebar.selectbox(key="model_label").set_value("shapes (bundled)").run()
    assert not at.exception and "16×16, 16 colours, trained on shapes" in at.caption[0].value
    at.button(key="complete_run").click().run()
    assert result(at).images.shape == (1, 4, 16, 16, 3)


# ---- uploads ----

def upload(at, name: str, content: bytes, mime: str = "image/png") -> AppTest:
    at.radio(key="complete_source").set_value("Upload").run()
    at.file_uploader(key="complete_upload").set_value((name, content, mime)).run()
    assert not at.exception, at.exception
    return at


def test_an_uploaded_png_is_cropped_quantised_and_completed(rng):
    picture = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    at = upload(complete_page(), "wide.png", png(picture))
    assert not at.error
    captions = [c for img in at.image for c in img.captions]
    assert "wide.png: 50×30" in captions and "what the model sees: 28×28, 8 colours" in captions
    how = [c.value for c in at.caption if c.value.startswith("Prepared as")][0]
    assert "centre 30×30 square cut from 50×30" in how and "resized to 28×28 (area average)" in how
    at.button(key="complete_run").click().run()
    assert result(at).images.shape == (1, 4, 28, 28, 1)
    assert "wide.png: rows 0–13 kept" in [c for img in at.image for c in img.captions]


@pytest.mark.parametrize("kind", ["rgba", "16-bit"])
def test_rgba_and_16_bit_uploads_are_read(kind):
    if kind == "rgba":
        a = np.zeros((20, 20, 4), dtype=np.uint8)  # transparent except a black square: white around it
        a[5:15, 5:15, 3] = 255
        content = png(a, "RGBA")
    else:
        content = png((np.arange(400, dtype=np.uint16).reshape(20, 20) * 160).astype(np.uint16))  # mode I;16
    at = upload(complete_page(), f"{kind}.png", content)
    assert not at.error
    assert f"{kind}.png: 20×20" in [c for img in at.image for c in img.captions]
    assert "no crop (square)" in [c.value for c in at.caption if c.value.startswith("Prepared as")][0]
    at.button(key="complete_run").click().run()
    assert not at.exception and result(at).images.shape == (1, 4, 28, 28, 1)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(buf, "PNG")  # 900 million pixels in about 100 KB
    return buf.getvalue()


@pytest.mark.parametrize("name,content,message", [
    ("notes.png", b"just some text, not an image", "notes.png: not an image file PIL can read"),
    ("empty.png", b"", "empty.png: not an image file PIL can read"),
    ("cut.png", png(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))[:6000],
     "cut.png: the image data is truncated or corrupt"),
    ("bomb.png", None, "bomb.png: .*(decompression bomb|more than this reader accepts)"),
])
def test_bad_uploads_show_the_readers_message(name, content, message, bomb):
    at = upload(complete_page(), name, bomb if content is None else content)
    assert len(at.error) == 1 and re.match(message, at.error[0].value), at.error[0].value
    assert at.error[0].value.endswith("Try another file.")
    assert "complete_run" not in [b.key for b in at.button]  # nothing to complete
    at.radio(key="complete_source").set_value("Held-out test image").run()  # nothing else was lost
    assert not at.error and at.button(key="complete_run")


# ---- sessions ----

def weights_digest(model) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode() + t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.slow
def test_two_sessions_get_their_own_results_and_leave_the_model_unchanged():
    import common  # app/common.py, imported by the first AppTest run

    a, b = quick(complete_page()), quick(complete_page())
    model = common.load_model(str(BUNDLED_DIR / "mnist-small")).model
    before = weights_digest(model)
    a.number_input(key="complete_seed").set_value(1)
    b.number_input(key="complete_seed").set_value(2)
    a.button(key="complete_run").click().run()
    b.button(key="complete_run").click().run()
    assert result(a).seed == 1 and result(b).seed == 2
    assert not np.array_equal(result(a).images, result(b).images)
    a.run()
    assert result(a).seed == 1 and "seed 1 ·" in result_caption(a)  # b's click did not replace a's result
    assert weights_digest(model) == before


# ---- the figure the page draws the cut with ----

def test_cut_preview_dims_below_the_cut_and_draws_the_line():
    image = np.full((4, 5, 1), 200, dtype=np.uint8)
    out = np.asarray(sample.cut_preview(image, keep_rows=2, scale=10))
    assert out.shape == (40, 50, 3)
    assert (out[:19] == 200).all()  # kept rows as they are
    assert (out[19:21] == sample.CUT_COLOR).all()  # the line, across the cut
    assert (out[21:] == int(200 * 0.35)).all()  # hidden rows dimmed
    assert (np.asarray(sample.cut_preview(image, 0, scale=10))[:2] == sample.CUT_COLOR).all()
    with pytest.raises(ValueError, match="keep_rows must lie in 0..4"):
        sample.cut_preview(image, 5)


def test_a_drawing_is_read_white_on_black_as_the_draw_tab_reads_it():
    """The canvas sends a PNG that may be transparent where nothing is drawn: the page reads it with
    data.read_image(..., background=black) and data.prepare_image, as here."""
    from igpt_lite import data

    canvas = np.zeros((280, 280, 4), dtype=np.uint8)  # transparent
    canvas[40:240, 130:150] = 255  # an opaque white stroke
    image = data.prepare_image(data.read_image(io.BytesIO(png(canvas, "RGBA")), 1, background=(0, 0, 0)), 28)
    assert image.shape == (28, 28, 1)
    assert (image[4:24, 13:15] == 255).all() and image[:, :12].max() == 0 and image[:, 16:].max() == 0


def test_a_typed_folder_with_a_huge_config_is_refused_at_once(tmp_path, grey_palette):
    from conftest import tiny_model
    from igpt_lite.checkpoint import save_checkpoint

    folder = save_checkpoint(tmp_path / "huge", tiny_model(height=8, width=8), grey_palette, {"dataset": "digits"})
    config = json.loads((folder / "config.json").read_text())
    config["model"]["n_layer"] = 10**8  # was built layer by layer while memory grew, holding up the server
    (folder / "config.json").write_text(json.dumps(config))
    at = complete_page()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    at.sidebar.text_input(key="model_path").set_value(str(folder)).run(timeout=20)
    assert not at.exception
    shown = seen(at.sidebar.error[0].value)
    assert shown.startswith(f"Cannot load this model: {folder}/config.json: the model needs about 5,081.6 GB to load "
                            "(1,270,400,002,656 parameters), but this machine has ")
    assert [i.value for i in at.main.info] == ["Choose a model in the sidebar."]


def test_a_model_card_shows_a_checkpoints_name_as_text(tmp_path, grey_palette):
    from conftest import tiny_model
    from igpt_lite.checkpoint import save_checkpoint

    folder = save_checkpoint(tmp_path / "named", tiny_model(height=8, width=8), grey_palette,
                             {"dataset": "digits", "name": "![t](http://HOST/x.png)"})
    at = complete_page()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    at.sidebar.text_input(key="model_path").set_value(str(folder)).run()
    card = at.sidebar.expander[0].markdown[0].value
    assert "**model**: \\!\\[t\\](http:\\/\\/HOST/x.png) (path)" in card
