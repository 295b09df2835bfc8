"""The app in a real browser: `streamlit run app/main.py` driven by Debian's headless Chromium
(Playwright, never `playwright install`). Loads every page, completes an image, uploads an image and
a corrupt file, clicks a pixel on the attention page, and runs two sessions at once. Screenshots go
to tmp_path (or to $IGPT_SCREENSHOTS when set); docs/app/ is made by scripts/screenshot_app.py.
"""
import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test installs it)")]


def _harness():
    spec = importlib.util.spec_from_file_location("screenshot_app", ROOT / "scripts" / "screenshot_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


H = _harness()
TITLES = H.TITLES


@pytest.fixture(scope="module")
def app():
    with H.app_server(env={"OMP_NUM_THREADS": "1"}) as (url, _):
        yield url


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("IGPT_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(page, url, name):
    page.goto(f"{url}/{H.PAGES[name]}", timeout=120_000)
    H.settle(page)
    page.get_by_role("heading", name=TITLES[name]).first.wait_for(timeout=120_000)


def _no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0, \
        page.locator("[data-testid='stException']").all_inner_texts()


def _complete(page, seed: int | None = None):
    if seed is not None:
        seed_box = page.get_by_label("Seed", exact=True)
        seed_box.fill(str(seed))
        seed_box.press("Enter")
        H.settle(page)
    page.get_by_role("button", name="Complete (same seed)").click()
    H.settle(page)
    caption = page.get_by_text(re.compile(r"sampled in [0-9.]+ s")).first
    caption.wait_for(timeout=120_000)
    return caption.inner_text()


def test_every_page_loads_without_an_error(app, shots):
    with H.chromium() as page:
        for name in H.PAGES:
            _open(page, app, name)
            _no_exception(page)
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_complete_an_image_then_upload_an_image_and_a_corrupt_file(app, shots, tmp_path):
    with H.chromium() as page:
        _open(page, app, "complete")
        text = _complete(page)
        assert "seed 0" in text and "completions" in text
        assert page.locator("[data-testid='stImage']").count() >= 2  # the cut preview and the completions
        page.get_by_text("Upload", exact=True).click()
        H.settle(page)
        digit = np.zeros((40, 60), dtype=np.uint8)
        digit[10:30, 25:35] = 255
        Image.fromarray(digit).save(tmp_path / "bar.png")
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(tmp_path / "bar.png"))
        H.settle(page)
        page.get_by_text("what the model sees").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "complete_upload.png"), full_page=True)
        (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(tmp_path / "broken.png"))
        H.settle(page)
        error = page.locator("[data-testid='stAlertContentError']").first
        error.wait_for(timeout=60_000)
        assert "broken.png" in error.inner_text()
        _no_exception(page)


def test_clicking_a_pixel_redraws_the_attention_from_it(app, shots):
    with H.chromium() as page:
        _open(page, app, "attention")
        points = page.locator(".st-key-attention_click path.point")
        points.first.wait_for(state="attached", timeout=60_000)  # plotly draws after the script run ends
        assert points.count() == 28 * 28  # one square marker per pixel
        target = points.nth(3 * 28 + 5)  # raster order: row 3, column 5 of a 28-wide image
        box = target.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.up()
        H.settle(page)
        page.get_by_text(re.compile(r"rollout to pixel \(row 3, col 5\)")).first.wait_for(timeout=60_000)
        assert page.get_by_label(re.compile(r"^Row")).input_value() == "3"
        assert page.get_by_label(re.compile(r"^Column")).input_value() == "5"
        _no_exception(page)
        page.screenshot(path=str(shots / "attention_clicked.png"), full_page=True)


def test_two_sessions_at_once_keep_their_own_results(app):
    with H.chromium(n_pages=2) as (first, second):
        _open(first, app, "complete")
        _open(second, app, "complete")
        a = _complete(first, seed=11)
        b = _complete(second, seed=22)
        assert "seed 11" in a and "seed 22" in b
        # a rerun of the first session (another seed typed, not sampled) still shows its own result
        box = first.get_by_label("Seed", exact=True)
        box.fill("12")
        box.press("Enter")
        H.settle(first)
        assert "seed 11" in first.get_by_text(re.compile(r"sampled in [0-9.]+ s")).first.inner_text()
