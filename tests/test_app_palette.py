"""The app's "Palette" page, driven headless (AppTest): the model's swatches, one image before and
after quantisation with its error, and a refit whose palette.json download reads back equal."""
import io

import numpy as np
import plotly.io
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from igpt_lite import data
from igpt_lite.checkpoint import BUNDLED_DIR, load_checkpoint
from igpt_lite.palette import Palette, palette_sweep
from test_app_bias import open_page
from test_images import _bomb_png
pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / "mnist-small").exists(), reason="bundled models missing")


def palette_page(model: str | None = None) -> AppTest:
    return open_page("palette.py", "Palette", model)


def model_key(at: AppTest, name: str) -> str:
    """The key of a refit widget: it names the model, so another model starts from its own defaults."""
    return f"{name}:{at.session_state['checkpoint_path']}"


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def swatches(at: AppTest):
    return plotly.io.from_json(at.get("plotly_chart")[0].proto.spec).data[0]


@pytest.mark.parametrize("model", [None, "shapes"])  # the default mnist-small (grey), shapes (RGB)
def test_swatches_and_the_error_shown_are_the_palettes(model):
    at = palette_page(model)
    ck = load_checkpoint(model or "mnist-small")
    pal, res = ck.palette, ck.config.height
    test = data.load_dataset(ck.dataset_name(), "test", resolution=res, channels=pal.channels).images
    report = pal.report(test)
    shown = swatches(at)
    assert len(shown.x) == pal.n_colors
    expected_rgb = pal.colors.repeat(3, 1) if pal.channels == 1 else pal.colors
    assert list(shown.marker.color) == [f"rgb({r},{g},{b})" for r, g, b in expected_rgb]
    assert metric(at, "Colours") == str(pal.n_colors)
    assert metric(at, "Round-trip error (test split)") == f"{report.round_trip_error:.2f} / 255"
    assert metric(at, "Token entropy") == f"{report.token_entropy_bits:.3f} bits"
    for index in (0, 7):
        at.number_input(key="palette_index").set_value(index).run()
        assert metric(at, "Round-trip error of this image") == f"{pal.round_trip_error(test[index:index + 1]):.2f} / 255"


def test_an_uploaded_image_is_quantised_and_a_bad_one_is_refused():
    at = palette_page()
    at.radio(key="palette_source").set_value("Upload").run()
    assert at.info[0].value.startswith("Upload an image")
    rgba = np.zeros((30, 50, 4), dtype=np.uint8)
    rgba[5:25, 10:40] = (200, 30, 30, 255)  # a red box on a transparent background: composited on white
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    at.file_uploader(key="palette_upload").set_value(("box.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    image = data.load_image(io.BytesIO(buf.getvalue()), 28, 1)
    pal = load_checkpoint("mnist-small").palette
    assert metric(at, "Round-trip error of this image") == f"{pal.round_trip_error(image[None]):.2f} / 255"
    at.file_uploader(key="palette_upload").set_value(("box.png", buf.getvalue()[:100], "image/png")).run()
    assert not at.exception
    assert at.error[0].value.startswith("box.png: the image data is truncated or corrupt")
    at.file_uploader(key="palette_upload").set_value(("huge.png", _bomb_png(30_000, 30_000), "image/png")).run()
    assert not at.exception
    assert at.error[0].value.startswith("huge.png: ") and "downscale it first" in at.error[0].value
    assert not [m for m in at.metric if m.label == "Round-trip error of this image"]


@pytest.mark.slow  # fits k-means palettes on MNIST's training split
def test_refit_shows_the_sweep_and_downloads_a_palette_that_loads_back_equal(monkeypatch, tmp_path):
    downloads = {}
    keep = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):  # what the browser would receive
        downloads[filename] = path_or_data
        return keep(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    at = palette_page()
    assert not at.get("download_button")  # nothing is fitted before the click
    assert at.selectbox(key=model_key(at, "palette_dataset")).value == "mnist"
    at.multiselect(key=model_key(at, "palette_ks")).set_value([4, 8])
    at.button(key="palette_fit").click().run()
    assert not at.exception, at.exception

    train = data.load_dataset("mnist", "train", resolution=28, channels=1).images
    val = data.load_dataset("mnist", "val", resolution=28, channels=1).images
    expected = palette_sweep(train, val, (4, 8))
    table = at.dataframe[0].value
    assert list(table["colours k"]) == [4, 8]
    assert list(table["round-trip error (0-255)"]) == [round(r.round_trip_error, 3) for r in expected]
    assert list(table["token entropy (bits)"]) == [round(r.token_entropy_bits, 3) for r in expected]
    button = at.get("download_button")[0]
    assert button.label == "Download palette.json (8 colours)"
    (tmp_path / "palette.json").write_bytes(downloads["palette.json"])
    assert Palette.load(tmp_path / "palette.json") == expected[1].palette

    at.selectbox(key="palette_k").set_value(4).run()  # another size: no refit, another file
    assert at.get("download_button")[0].label == "Download palette.json (4 colours)"
    assert Palette.from_json(downloads["palette.json"].decode()) == expected[0].palette


def test_a_refit_that_cannot_work_says_why():
    at = palette_page()
    at.selectbox(key=model_key(at, "palette_dataset")).set_value("digits")  # 17 grey levels, resized to 28×28
    at.multiselect(key=model_key(at, "palette_ks")).set_value([512])
    at.button(key="palette_fit").click().run()
    assert not at.exception
    assert "fewer than n_colors=512: choose a smaller palette" in at.error[0].value
