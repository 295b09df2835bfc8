"""The app's pages run headless (streamlit.testing AppTest) on the bundled models."""
import pytest
from streamlit.testing.v1 import AppTest

from igpt_lite.checkpoint import BUNDLED_DIR

pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / "mnist").exists(), reason="bundled mnist model missing")


def test_complete_page_completes_a_held_out_digit():
    at = AppTest.from_file("../app/main.py", default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Complete an image"
    assert at.sidebar.selectbox[0].value == "mnist"
    assert "trained on mnist" in at.caption[0].value
    assert len(at.image) == 1
    at.slider[0].set_value(20).run()  # keep more rows
    assert not at.exception
    at.sidebar.selectbox[0].set_value("shapes").run()
    assert not at.exception and "trained on shapes" in at.caption[0].value
