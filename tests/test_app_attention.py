"""The app's Attention page, driven headless (streamlit.testing AppTest) on the bundled models:
the charts it draws for the chosen pixel, the start token's share, and that choosing pixel after
pixel neither reloads the model nor recomputes the per-head summary."""
import base64
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from igpt_lite import attention, checkpoint
from igpt_lite.data import load_dataset
from test_app import weights_digest

APP = Path(__file__).resolve().parent.parent / "app"
pytestmark = pytest.mark.skipif(not (checkpoint.BUNDLED_DIR / "mnist-small").exists(), reason="bundled models missing")


def attention_page() -> AppTest:
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=120).run()
    at.switch_page(str(APP / "views" / "attention.py")).run()
    assert not at.exception, at.exception
    return at


def chart(at, key: str) -> dict:
    """The plotly figure (as JSON) the page drew under `key`."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"no chart {key}"
    return json.loads(found[0].proto.spec)


def title(at, key: str) -> str:
    return chart(at, key)["layout"]["title"]["text"]


def ys(traces: list[dict]) -> np.ndarray:
    """The y values of plotly traces as JSON gives them (a list, or base64 "bdata"), as heads × layers."""
    def values(y):
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"]) if isinstance(y, dict) else np.array(y)

    return np.array([values(t["y"]) for t in traces])


def choose(at, row: int, col: int) -> AppTest:
    at.number_input(key="attention_row").set_value(row)
    at.number_input(key="attention_col").set_value(col).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="module")
def reference():
    ck = checkpoint.load_checkpoint("mnist-small")
    return ck, load_dataset("mnist", "test", resolution=28, channels=1).images


def test_the_page_draws_every_chart_for_the_typed_pixel(reference):
    ck, images = reference
    at = choose(attention_page(), 5, 7)
    assert at.title[0].value == "Attention"
    assert at.caption[0].value.startswith("mnist-small: 4 layers × 4 heads over 28×28 pixels.")
    assert at.sidebar.selectbox(key="model_label").value == "mnist-small (bundled)"  # the sidebar is there
    assert title(at, "attention_click") == "mnist test image #0: click a pixel"
    assert title(at, "attention_grid").startswith("Attention from pixel (row 5, col 7), layer × head")
    assert title(at, "attention_layer_grid").startswith("Attention from pixel (row 5, col 7), layer 3, each head")
    ref = attention.attend(ck, images[0], (5, 7))
    assert title(at, "attention_rollout").startswith(
        f"Attention rollout to pixel (row 5, col 7); start token {ref.rollout_start:.2g}")
    assert [(m.label, m.value) for m in at.metric] == [("Rollout", f"{ref.rollout_start:.1%}"),
                                                       ("Last layer", f"{ref.head_mean_start[-1]:.1%}")]
    n_panels = 4 * (4 + 1)  # layers × (heads + mean)
    assert len([a for a in chart(at, "attention_grid")["layout"]["annotations"] if a["text"].startswith("L")]) == n_panels


def test_one_layer_enlarged_follows_the_slider():
    at = attention_page()
    at.select_slider(key="attention_layer").set_value(1).run()
    assert title(at, "attention_layer_grid").startswith("Attention from pixel (row 14, col 14), layer 1, each head")
    panels = [a["text"] for a in chart(at, "attention_layer_grid")["layout"]["annotations"] if a["text"].startswith("L")]
    assert [p.split("<br>")[0] for p in panels] == ["L1 H0", "L1 H1", "L1 H2", "L1 H3", "L1 mean"]


@pytest.mark.slow
def test_the_per_head_summary_equals_the_library_over_one_or_eight_images(reference):
    ck, images = reference
    at = attention_page()
    assert title(at, "attention_distance") == "Mean attention distance per head (this image)"
    one = attention.attention_summary(ck.model, ck.palette.encode(images[:1]))
    heads = [t for t in chart(at, "attention_distance")["data"] if t["name"].startswith("head ")]
    np.testing.assert_allclose(ys(heads).T, one.mean_distance, rtol=1e-6)
    at.radio(key="attention_summary_over").set_value("8 test images").run()
    eight = attention.attention_summary(ck.model, ck.palette.encode(images[:8]))
    assert title(at, "attention_start_share") == "Start token's share per head (8 test images)"
    heads = [t for t in chart(at, "attention_start_share")["data"] if t["name"].startswith("head ")]
    np.testing.assert_allclose(ys(heads).T, eight.start_share, rtol=1e-6)
    assert f"{np.mean(eight.start_share):.1%} of each pixel's attention" in at.caption[-1].value


@pytest.mark.slow  # ~2 s (clicks pixel after pixel on mnist-small)
def test_pixel_after_pixel_loads_the_model_once_and_attends_once_a_click(monkeypatch):
    loads, attends, summaries = [], [], []
    load, attend, summary = checkpoint.load_checkpoint, attention.attend, attention.attention_summary
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda *a, **k: loads.append(a) or load(*a, **k))
    monkeypatch.setattr(attention, "attend", lambda *a, **k: attends.append(a[2]) or attend(*a, **k))
    monkeypatch.setattr(attention, "attention_summary", lambda *a, **k: summaries.append(1) or summary(*a, **k))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = attention_page()
    for row, col in [(3, 4), (10, 20), (27, 27)]:
        choose(at, row, col)
        assert title(at, "attention_grid").startswith(f"Attention from pixel (row {row}, col {col})")
    assert len(loads) == 1  # the cached model, loaded by the first run only
    assert attends[-3:] == [(3, 4), (10, 20), (27, 27)]
    assert len(summaries) == 1  # the per-head summary is cached per model and image


@pytest.mark.slow
def test_two_sessions_see_their_own_pixel_and_leave_the_model_unchanged():
    import common

    a, b = attention_page(), attention_page()
    model = common.load_model(str(checkpoint.BUNDLED_DIR / "mnist-small")).model
    before = weights_digest(model)
    choose(a, 2, 3)
    choose(b, 20, 9)
    a.run()
    assert title(a, "attention_grid").startswith("Attention from pixel (row 2, col 3)")
    assert title(b, "attention_grid").startswith("Attention from pixel (row 20, col 9)")
    assert weights_digest(model) == before


@pytest.mark.slow
def test_rgb_models_and_another_test_image():
    at = attention_page()
    at.sidebar.selectbox(key="model_label").set_value("figures-p90 (bundled)").run()
    assert not at.exception, at.exception
    assert at.number_input(key="attention_row").max == 31  # the pixel inputs follow the model's size
    at.number_input(key="attention_index").set_value(999).run()
    assert title(at, "attention_click") == "figures-p90 test image #999: click a pixel"
    choose(at, 31, 0)
    assert title(at, "attention_grid").startswith("Attention from pixel (row 31, col 0)")
    at.sidebar.selectbox(key="model_label").set_value("shapes (bundled)").run()  # 16×16, 400 test images
    assert not at.exception, at.exception
    assert title(at, "attention_click") == "shapes test image #0: click a pixel"
    assert title(at, "attention_grid").startswith("Attention from pixel (row 8, col 0)")


# ---- the clickable image (attention.pixel_picker) and reading its selection ----

def test_pixel_picker_draws_one_square_per_pixel_and_is_the_same_every_time():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    fig = attention.pixel_picker(image, size_px=90)
    points = fig.data[0]
    assert list(points.x) == [0, 1, 2, 0, 1, 2] and list(points.y) == [0, 0, 0, 1, 1, 1]
    assert points.marker.color[4] == "rgb({},{},{})".format(*image[1, 1]) and points.marker.symbol == "square"
    assert list(fig.layout.yaxis.range) == [1.5, -0.5]  # row 0 at the top
    assert fig.to_json() == attention.pixel_picker(image.copy(), size_px=90).to_json()  # Streamlit keeps the selection
    grey = attention.pixel_picker(np.full((4, 4, 1), 7, dtype=np.uint8))
    assert set(grey.data[0].marker.color) == {"rgb(7,7,7)"}


def test_picked_pixel_reads_the_last_clicked_point():
    assert attention.picked_pixel({"points": [{"x": 2, "y": 5}, {"x": 7.0, "y": 1.0}]}) == (1, 7)
    assert attention.picked_pixel({"points": []}) is None
    assert attention.picked_pixel(None) is None
