"""Every page of the app on a model imported from a Hugging Face ImageGPT folder (official-style
weights: rms norm, quick_gelu, no dataset recorded), chosen in the sidebar by its folder."""
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from igpt_lite import checkpoint, interop
from igpt_lite.palette import Palette
from conftest import tiny_model

APP = Path(__file__).resolve().parent.parent / "app"
PAGES = {"complete.py": "Complete an image", "attention.py": "Attention", "depth.py": "Feature quality versus depth",
         "bias.py": "Bias probes", "palette.py": "Palette"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """An 8×8 grey model exported as a Hugging Face folder, then imported as `import-hf` does."""
    root = tmp_path_factory.mktemp("hf")
    model = tiny_model(seed=1, height=8, width=8, norm="rms", activation="quick_gelu")
    palette = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    hf = interop.export_hf(checkpoint.Checkpoint(model=model, palette=palette), root / "imagegpt-tiny")
    ck = interop.load_hf(hf)
    return checkpoint.save_checkpoint(root / "imported", ck.model, ck.palette, ck.meta)


@pytest.mark.slow
def test_every_page_runs_on_an_imported_model_with_a_chosen_dataset(imported):
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=300).run()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    at.sidebar.text_input(key="model_path").set_value(str(imported)).run()
    assert not at.exception, at.exception
    card = at.sidebar.expander[0].markdown[0].value
    assert "(imported)" in card and "choose a dataset" in card
    # it names no dataset: the sidebar offers one, and the pages use it (digits: 8×8 grey, like the model)
    assert at.sidebar.selectbox(key="dataset").value == "digits"
    at.button(key="complete_run").click().run()
    assert not at.exception, at.exception
    assert at.session_state["complete_result"]["result"].images.shape[:4] == (1, 4, 8, 8)  # 4 completions (RGB: HF clusters)
    assert any("4 completions" in c for img in at.image for c in img.captions)
    for page, title in list(PAGES.items())[1:]:
        at.switch_page(str(APP / "views" / page)).run()
        assert not at.exception, (page, at.exception)
        assert at.title[0].value == title
        assert not at.error, (page, [e.value for e in at.error])
        assert at.sidebar.text_input(key="model_path").value == str(imported)  # still the imported model
    assert [m.value for m in at.metric][0] == "8"  # the palette page: the imported palette's 8 colours
