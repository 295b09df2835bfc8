"""The app's "Bias probes" page, driven headless (AppTest): the generated figures sets on
figures-p90, and the user's uploads (files for each set, or one zip), good and bad."""
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from igpt_lite import bias, data
from igpt_lite.data import scenes
from igpt_lite.checkpoint import BUNDLED_DIR, load_checkpoint
from test_images import _bomb_png

APP = Path(__file__).resolve().parent.parent / "app"
pytestmark = pytest.mark.skipif(not (BUNDLED_DIR / "figures-p90").exists(), reason="bundled models missing")


def open_page(page: str, title: str, model: str | None = None) -> AppTest:
    """The app opened as a browser does (main.py), `model` chosen in the sidebar, then app/views/`page`."""
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=300).run()
    if model:
        at.sidebar.selectbox(key="model_label").set_value(f"{model} (bundled)").run()
    at.switch_page(str(APP / "views" / page)).run()
    assert not at.exception, at.exception
    assert at.title[0].value == title
    return at


def bias_page(model: str | None = None) -> AppTest:
    return open_page("bias.py", "Bias probes", model)


def png(value: int, size=(20, 14)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value, 255 - value, (3 * value) % 256)).save(buf, "PNG")
    return buf.getvalue()


def files(n: int, start: int) -> list[tuple[str, bytes, str]]:
    return [(f"img{i}.png", png(start + 9 * i), "image/png") for i in range(n)]


def zipped(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buf.getvalue()


FOUR = {f"{k}/img{i}.png": png(60 * s + 9 * i) for s, k in enumerate("XYAB") for i in range(4)}


def upload_zip(at: AppTest, content: bytes) -> AppTest:
    at.radio(key="bias_upload_how").set_value("One zip with folders X/, Y/, A/, B/").run()
    at.file_uploader(key="bias_zip").set_value(("sets.zip", content, "application/zip")).run()
    assert not at.exception, at.exception
    return at


def thumbnail_captions(at: AppTest) -> list[str]:
    return [c for img in at.image for c in img.captions if c[:2] in ("X:", "Y:", "A:", "B:")]


def table_equals(shown, rows: list[bias.BiasRow]) -> None:
    assert list(shown["layer"]) == [r.layer for r in rows]
    for key in ("effect_size", "p_value", "p_holm"):
        np.testing.assert_array_equal(shown[key].to_numpy(), [getattr(r, key) for r in rows])


@pytest.mark.slow
def test_figures_p90_table_is_bias_test_on_the_same_generated_sets(monkeypatch):
    monkeypatch.setitem(bias.DESIGN, "quads", 24)  # the page reads the library's design; fewer quads: CI time
    at = bias_page("figures-p90")
    assert at.radio[0].value == "Generated figures scenes"  # the default for a figures model, after mnist-small's
    assert at.selectbox(key="bias_n").value == 50
    at.selectbox(key="bias_n").set_value(10).run()
    assert any("`scenes.make_test_sets(10, seed=0)`: 10 images a set" in c.value for c in at.caption)
    assert thumbnail_captions(at) == [f"{k}: {scenes.TEST_SETS[k]}, 10 images" for k in "XYAB"]
    assert "Press the button" in at.info[0].value and not at.dataframe  # nothing heavy before the click
    meaning = next(m.value for m in at.markdown if m.value.startswith("**What the numbers mean.**"))
    assert "one-sided" in meaning and "Holm-adjusted" in meaning and "not proof of fairness" in meaning
    assert "±0.45 with 10 and 10 targets" in meaning  # sqrt(1/10 + 1/10)
    at.button(key="bias_run").click().run()
    assert not at.exception, at.exception

    expected = bias.bias_test(load_checkpoint("figures-p90"), scenes.make_test_sets(10, seed=0),
                              n_permutations=100_000, seed=0)
    table_equals(at.dataframe[0].value, expected.table)
    best = expected.smallest_holm()
    assert [h.value for h in at.subheader[:3]] == ["Likelihood association test", "Over several draws of the test "
                                                   "scenes", "iEAT on every layer"]
    assert at.subheader[3].value.startswith(f"figures-p90: smallest Holm-adjusted p at {best.layer}: "
                                            f"d = {best.effect_size:.3f}")
    # the likelihood test leads: 24 counterfactual quads of seed 0
    composed = scenes.TestSets(seed=0, resolution=32).quads(24)
    lik = bias.likelihood_test(load_checkpoint("figures-p90"), composed, n_permutations=100_000, seed=0)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["d (95% CI)"] == f"{lik.row.effect_size:.2f}"
    assert metrics["p (one-sided)"] == f"{lik.row.p_value:.2g}" == f"{lik.test.p_value:.2g}"
    assert any("Composed scenes: 24 counterfactual quads (`scenes.TestSets(seed=0).quads`)" in c.value for c in at.caption)
    assert metrics["random-weight copies (one a quad): d, p"] == \
        f"{lik.baseline.effect_size:.2f}, {lik.baseline.p_value:.2g}"
    assert any("p from the quads test, which counts" in c.value for c in at.caption)
    if getattr(expected, "baseline_table", None):
        table_equals(at.dataframe[1].value, expected.baseline_table)
    assert len(at.get("plotly_chart")) == 1
    assert at.get("download_button")[0].label == "Download the result (JSON)"
    at.run()  # a rerun redraws the kept result without the button
    table_equals(at.dataframe[0].value, expected.table)


@pytest.mark.slow
def test_the_draws_section_is_likelihood_draws_beside_the_twin(monkeypatch):
    monkeypatch.setitem(bias.DESIGN, "quads", 8)  # small draws: the page reads the library's design
    at = bias_page("figures-p90")
    at.selectbox(key="bias_n").set_value(10).run()
    at.number_input(key="bias_seed").set_value(40).run()
    at.button(key="bias_run").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="bias_control").value == "figures-p50 (bundled)"  # p90's twin: balanced data
    study = bias.DrawsStudy.read(BUNDLED_DIR / "figures-p90")  # measured over many draws, shipped with the model
    assert study is not None and len(study.seeds) >= 50
    assert any(i.value.startswith(study.markdown()) for i in at.info), [i.value[:80] for i in at.info]
    at.number_input(key="bias_draws").set_value(2).run()
    assert any("Each draw: 8 new counterfactual quads (32 scenes), scored by figures-p90, random-weight copies (a "
               "new one every quad) and the control. Expected: " in c.value for c in at.caption)
    assert not at.get("plotly_chart") or len(at.get("plotly_chart")) == 1  # the draws' chart only after the click
    at.button(key="bias_draws_run").click().run()
    assert not at.exception, at.exception
    expected = bias.likelihood_draws(load_checkpoint("figures-p90"), [40, 41], control=load_checkpoint("figures-p50"),
                                     n_quads=8)
    s, diff, paired = expected.spread(), expected.difference(), expected.spread("paired")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["d over 2 draws"] == f"{s.mean:.2f}" and metrics["d minus the control's"] == f"{diff.mean:.2f}"
    assert metrics["combined p"] == f"{s.p_combined:.2g}"
    assert metrics["paired test against the control: combined p"] == f"{paired.p_combined:.2g}"
    assert len(at.get("plotly_chart")) == 2  # iEAT's per-layer chart and the draws' chart
    at.selectbox(key="bias_control").set_value("none").run()  # no control: no difference shown
    at.button(key="bias_draws_run").click().run()
    labels = {m.label for m in at.metric}
    assert "d minus the control's" not in labels and "paired test against the control: combined p" not in labels


@pytest.mark.slow
def test_uploaded_files_for_each_set_are_tested_as_the_library_reads_them():
    at = bias_page()  # mnist-small: 28×28 grey, the uploads are converted
    assert at.radio[0].value == "Your images (upload)"  # the default for a model not trained on the scenes
    assert "Add images to X, Y, A, B" in at.info[0].value
    sets = {k: files(4 + (k == "A"), 30 * s) for s, k in enumerate("XYAB")}
    for k, f in sets.items():
        at.file_uploader(key=f"bias_files_{k}").set_value(f)
    at.run()
    assert not at.exception and not at.error, at.error
    assert thumbnail_captions(at) == ["X: targets (e.g. men), 4 images", "Y: targets (e.g. women), 4 images",
                                      "A: attributes (e.g. career), 5 images", "B: attributes (e.g. family), 4 images"]
    assert any("converted to L" in c.value for c in at.caption)  # RGB uploads, a grey model: said so
    at.button(key="bias_run").click().run()
    assert not at.exception, at.exception

    ck = load_checkpoint("mnist-small")
    images = {k: data.load_image_files([io.BytesIO(b) for _, b, _ in f], 28, 1).images for k, f in sets.items()}
    expected = bias.bias_test(ck, images, n_permutations=100_000, seed=0)
    table_equals(at.dataframe[0].value, expected.table)
    assert all(r.exact for r in expected.table)  # 4 + 4 targets: all 70 partitions enumerated


def test_a_zip_with_four_folders_shows_its_sets():
    at = upload_zip(bias_page(), zipped({**{f"mine/{k}": v for k, v in FOUR.items()}, "mine/notes.md": b"hi",
                                         "__MACOSX/mine/X/._img0.png": b"junk"}))
    assert not at.error, at.error
    assert thumbnail_captions(at)[0] == "X: targets (e.g. men), 4 images"
    assert any(c.value == "Left out (not inside X/, Y/, A/ or B/): mine/notes.md" for c in at.caption)
    assert "Press the button" in at.info[0].value


@pytest.mark.parametrize("members,message", [  # each message: the start of the error the page shows
    ({k: v for k, v in FOUR.items() if not k.startswith("Y/")},
     r"sets\.zip: no folder Y/ with images in the zip \(found A/, B/, X/\); it needs the folders X/, Y/, A/, B/"),
    ({**FOUR, "../evil.png": png(1)}, r"sets\.zip: refused: the member '\.\./evil\.png' has an absolute path or '\.\.'"),
    ({**FOUR, "B/notes.txt": b"not an image"}, r"B/notes\.txt: not an image file PIL can read"),
    ({**FOUR, "A/huge.png": _bomb_png(30_000, 30_000)}, r"A/huge\.png: .*bomb.*downscale it first"),
    ({k: v for k, v in FOUR.items() if k[0] in "AB" or k[-5] in "01"},  # X and Y: 2 images each
     r"X and Y hold 2 and 2 images: they split only 6 ways, so the smallest possible p-value is 0\.167"),
])
def test_bad_zips_say_what_is_wrong_and_run_nothing(members, message):
    at = upload_zip(bias_page(), zipped(members))
    assert len(at.error) == 1 and re.match(message, at.error[0].value), at.error
    assert not [b for b in at.button if b.label.startswith("Run iEAT")] and not thumbnail_captions(at)


def test_a_non_image_among_a_sets_files_is_named():
    at = bias_page()
    for k in "XYAB":
        at.file_uploader(key=f"bias_files_{k}").set_value(files(4, 10))
    at.file_uploader(key="bias_files_Y").upload("holiday.png", b"%PDF-1.4 a document renamed", "image/png")
    at.run()
    assert at.error[0].value.startswith("holiday.png: not an image file PIL can read")
    assert at.error[0].value.endswith("remove it from the set.")
    assert not thumbnail_captions(at)


# ---- hostile uploads: names shown as text, capped in bytes and in decoded pixels, parsed once ----

def test_file_names_in_a_zip_are_shown_as_text_not_markdown():
    bad = {"![t](http://HOST/x.png)": b"an image the browser would fetch", "[link](https://example.com)": b"a link"}
    at = upload_zip(bias_page(), zipped({**FOUR, **bad}))
    assert not at.error, at.error
    left_out = next(c.value for c in at.caption if c.value.startswith("Left out"))
    assert "\\!\\[t\\](http:\\/\\/HOST/x.png)" in left_out and "\\[link\\](https:\\/\\/example.com)" in left_out
    assert "](http://" not in left_out and "](https://" not in left_out  # no image, no link, no bare URL


def test_a_zip_whose_images_hold_too_many_pixels_in_all_is_refused():
    big = Image.new("L", (3000, 3000))  # 9 MP each, a few KB: under the per-image cap, not in all
    buf = io.BytesIO()
    big.save(buf, "PNG")
    members = {f"{k}/img{i}.png": buf.getvalue() for k in "XYAB" for i in range(3)}  # the 12th: 108 MP > 100 MP
    at = upload_zip(bias_page(), zipped(members))
    assert [e.value for e in at.error] == [
        "B/img2.png: the images hold more than 100,000,000 pixels in all (the cap on one upload); the model sees "
        "each at a few dozen pixels a side: downscale them or send fewer."]
    assert not thumbnail_captions(at)


def test_a_set_of_files_over_the_total_cap_is_refused_and_not_kept():
    at = bias_page()
    blob = np.random.default_rng(0).bytes(14_000_000)  # each under the 20 MB per-file cap
    for k in "XYAB":
        at.file_uploader(key=f"bias_files_{k}").set_value([(f"{k}.png", blob, "image/png")])
    at.run()
    assert [e.value for e in at.error] == [
        "these 4 files hold 56.0 MB in all, more than the 40 MB accepted at once: the model sees each image at a few "
        "dozen pixels a side, so downscale them or upload fewer."]
    assert "upload:bias_files" not in at.session_state  # nothing parsed or kept of it


def test_an_upload_is_parsed_once_not_on_every_widget_change(monkeypatch):
    calls = []
    real = data.read_image_sets_zip
    monkeypatch.setattr(data, "read_image_sets_zip", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = upload_zip(bias_page(), zipped(FOUR))
    assert thumbnail_captions(at) and len(calls) == 1
    at.number_input(key="bias_seed").set_value(7).run()  # a widget change: redrawn from the parsed sets
    assert not at.exception and thumbnail_captions(at) and len(calls) == 1
