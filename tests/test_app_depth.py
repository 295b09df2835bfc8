"""The "Feature quality versus depth" page and the library call behind it (probe.probe_report):
shipped tables equal what probe_model computes, stale ones are refused, computed ones are kept on
disk; the page shows the shipped numbers of bundled models and computes for a user's model."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from igpt_lite import estimate, probe
from igpt_lite.checkpoint import BUNDLED_DIR, load_checkpoint, save_checkpoint
from igpt_lite.probe import REPORT_FILE, probe_model, probe_report
from conftest import tiny_model
from test_app import seen

APP = Path(__file__).resolve().parent.parent / "app"
TINY = dict(limit=30, Cs=[0.1, 1.0])  # a tiny limit and C grid: seconds, not minutes
TIMING = ("seconds", "knn_seconds")  # measured times: the only columns that differ between two runs


def untimed(table):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in table.to_records()]


@pytest.fixture
def digits_model(tmp_path, grey_palette):
    return save_checkpoint(tmp_path / "m", tiny_model(seed=1, height=8, width=8), grey_palette, {"dataset": "digits"})


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """probe.cache_root() in tmp: nothing is written to the user's ~/.cache."""
    monkeypatch.setenv("IGPT_LITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- the library call ----

def test_a_shipped_table_is_read_back_equal_to_probe_model(digits_model, cache):
    made = probe_report(digits_model, reuse=False, **TINY)
    assert made.source == "computed" and made.dataset == "digits" and made.settings["limit"] == 30
    made.save(digits_model / REPORT_FILE)
    load_checkpoint(digits_model)  # the loader ignores the table beside the weights

    shipped = probe_report(digits_model, compute=False, cache_dir=cache / "elsewhere", **TINY)
    direct = probe_model(digits_model, **TINY)
    assert shipped.source == "shipped" and shipped.path == str(digits_model / REPORT_FILE)
    assert untimed(shipped.table) == untimed(direct)
    assert shipped.summary.to_dict() == json.loads(json.dumps(direct.summary().to_dict()))
    assert {r.kind for r in shipped.table} == {"trained", "random", "pixels", "palette"}


def test_a_stale_table_is_refused(digits_model, tmp_path, grey_palette, cache):
    probe_report(digits_model, reuse=False, **TINY).save(digits_model / REPORT_FILE)
    other = save_checkpoint(tmp_path / "retrained", tiny_model(seed=2, height=8, width=8), grey_palette,
                            {"dataset": "digits"})
    (other / REPORT_FILE).write_text((digits_model / REPORT_FILE).read_text())  # a table from other weights
    with pytest.raises(LookupError, match="other weights"):
        probe_report(other, compute=False, **TINY)
    with pytest.raises(LookupError, match="other settings.*'limit': 31"):
        probe_report(digits_model, compute=False, limit=31, Cs=TINY["Cs"])
    with pytest.raises(LookupError, match="another dataset: digits instead of mnist"):
        probe_report(digits_model, "mnist", compute=False, **TINY)
    (other / REPORT_FILE).write_text('{"format": ')
    with pytest.raises(LookupError, match="not a readable probe report"):
        probe_report(other, compute=False, **TINY)
    (other / REPORT_FILE).unlink()
    with pytest.raises(LookupError, match="no probe table is stored"):
        probe_report(tmp_path / "retrained", compute=False, cache_dir=tmp_path / "empty", limit=29)


def test_a_computed_report_is_kept_on_disk(digits_model, cache, monkeypatch):
    steps = []
    made = probe_report(digits_model, on_step=lambda done, total: steps.append((done, total)), **TINY)
    assert steps == [(i, 9) for i in range(1, 10)]  # 3 splits' features + probes, twice; then the pixels
    assert made.source == "computed" and Path(made.path).parent == cache / "probes"
    assert list((cache / "features").glob("features-*.npz"))  # the features too

    monkeypatch.setattr(probe.report, "probe_model", lambda *a, **k: pytest.fail("recomputed a cached report"))
    again = probe_report(load_checkpoint(digits_model), compute=False, **TINY)
    assert again.source == "cached" and again.path == made.path
    assert again.table.to_records() == json.loads(json.dumps(made.table.to_records()))
    assert again.summary.to_dict() == json.loads(json.dumps(made.summary.to_dict()))


def test_a_report_over_a_runs_checkpoints(tmp_path, grey_palette, cache):
    for step, seed in ((100, 3), (200, 4)):
        save_checkpoint(tmp_path / "run" / f"step-{step:06d}", tiny_model(seed=seed, height=8, width=8), grey_palette,
                        {"dataset": "digits"})
    last = load_checkpoint(tmp_path / "run")  # a run folder loads its latest step
    assert [d.name for d in probe.run_steps(last)] == ["step-000100", "step-000200"]
    made = probe_report(last, over_training=True, limit=20, Cs=[1.0])
    assert made.steps == [100, 200] and {r.step for r in made.table if r.kind == "trained"} == {100, 200}
    assert probe_report(last, over_training=True, limit=20, Cs=[1.0], compute=False).source == "cached"
    with pytest.raises(ValueError, match="not a checkpoint of a training run"):
        probe_report(save_checkpoint(tmp_path / "alone", tiny_model(height=8, width=8), grey_palette,
                                     {"dataset": "digits"}), over_training=True, limit=20)


@pytest.mark.slow
def test_layer_umap_of_held_out_images(digits_model, cache):
    lm = probe.layer_umap(digits_model, "1", n=60)
    assert lm.layer == "blocks.1" and lm.split == "test" and lm.embedding.shape == (60, 2)
    assert len(lm.labels) == 60 and lm.class_names[:2] == ["0", "1"]


# ---- the page ----

def depth_page(**model) -> AppTest:
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=120).run()
    at.switch_page(str(APP / "views" / "depth.py")).run()
    if "label" in model:
        at.sidebar.selectbox(key="model_label").set_value(model["label"]).run()
    if "path" in model:
        at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
        at.sidebar.text_input(key="model_path").input(str(model["path"])).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Feature quality versus depth"
    return at


def shown(at) -> dict:
    return {m.label: (m.value, m.delta) for m in at.metric}


def expected(summary) -> dict:
    names = {"random": "random weights", "pixels": "raw pixels", "palette": "palette pixels"}
    t = summary["trained"]
    out = {"Best layer": (t["layer"], ""),
           "Its test accuracy": (f"{100 * t['test_acc']:.1f}% ± {100 * t['test_stderr']:.1f}", "")}
    for kind, m in summary["margins"].items():
        label = f"vs {names[kind]} {100 * summary[kind]['test_acc']:.1f}%"
        out[label] = (f"{m['points']:+.1f} pts", f"{m['z']:+.1f} s.e.")
    return out


SHIPPED = [p.parent.name for p in sorted(BUNDLED_DIR.glob(f"*/{REPORT_FILE}"))]


@pytest.mark.skipif(not SHIPPED, reason="no probe tables shipped in data/models (scripts/probe_tables.py)")
@pytest.mark.parametrize("name", [n for n in ("mnist-small", "shapes") if n in SHIPPED] or SHIPPED[:1])
def test_a_bundled_model_shows_its_shipped_table(name):
    at = depth_page(label=f"{name} (bundled)")
    summary = json.loads((BUNDLED_DIR / name / REPORT_FILE).read_text())["summary"]
    assert shown(at) == expected(summary)
    assert "depth_compute" not in [b.key for b in at.button]
    captions = " ".join(c.value for c in at.caption)
    assert "From the table shipped with the model" in captions and "scripts/probe_tables.py" in captions
    assert f"up to {probe.REPORT_LIMIT} test images" in captions
    assert any("no training run beside it" in i.value for i in at.info)  # bundled: no run folder
    assert at.selectbox(key="depth_layer").value == summary["trained"]["layer"]  # UMAP of the best layer
    assert len(at.get("plotly_chart")) == 1
    at.switch_page(str(APP / "views" / "attention.py")).run()
    at.switch_page(str(APP / "views" / "depth.py")).run()  # back again: still the best layer first
    assert at.selectbox(key="depth_layer").value == summary["trained"]["layer"] and shown(at) == expected(summary)


@pytest.mark.slow
def test_a_users_run_is_probed_on_a_button_and_kept(tmp_path, grey_palette, cache, monkeypatch):
    monkeypatch.setattr(probe, "REPORT_LIMIT", 40)
    for step, seed in ((100, 3), (200, 4)):
        save_checkpoint(tmp_path / "run" / f"step-{step:06d}", tiny_model(seed=seed, height=8, width=8), grey_palette,
                        {"dataset": "digits"})
    at = depth_page(path=tmp_path / "run")
    assert not at.metric and any("no probe table is stored" in i.value for i in at.info)
    at.button(key="depth_compute").click().run()
    assert not at.exception, at.exception
    stored = probe_report(tmp_path / "run", limit=40, compute=False)
    assert stored.source == "cached" and stored.settings["limit"] == 40
    assert shown(at) == expected(stored.summary.to_dict())

    at.button(key="depth_over_training").click().run()  # the run kept two checkpoints
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 2
    assert probe_report(tmp_path / "run", limit=40, over_training=True, compute=False).steps == [100, 200]

    at = depth_page(path=tmp_path / "run")  # a new session: read from disk, no button
    assert shown(at) == expected(stored.summary.to_dict()) and len(at.get("plotly_chart")) == 2
    assert "Computed for this model" in " ".join(c.value for c in at.caption)


@pytest.mark.slow
def test_the_umap_is_computed_on_a_button(digits_model, cache, monkeypatch):
    monkeypatch.setattr(probe, "UMAP_POINTS", 60)
    at = depth_page(path=digits_model)
    at.selectbox(key="depth_layer").set_value("blocks.0").run()
    at.button(key="depth_umap").click().run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1  # no probe table yet: the UMAP is the only chart
    at.selectbox(key="depth_layer").set_value("blocks.1").run()  # another layer: the button again
    assert len(at.get("plotly_chart")) == 0 and at.button(key="depth_umap")


def test_bad_models_get_a_message_not_a_traceback(tmp_path, grey_palette, cache):
    unknown = save_checkpoint(tmp_path / "unknown", tiny_model(height=8, width=8), grey_palette,
                              {"dataset": "no-such-set"})
    at = depth_page(path=unknown)  # a dataset this process lacks: the sidebar offers the others
    assert "'no-such-set' is not available here" in at.sidebar.selectbox(key="dataset").label
    assert any(f"{unknown} on digits" in seen(i.value) for i in at.info) and at.button(key="depth_compute")

    oblong = save_checkpoint(tmp_path / "oblong", tiny_model(), grey_palette, {"dataset": "digits"})  # 6×5 pixels
    at = depth_page(path=oblong)
    at.button(key="depth_compute").click().run()
    assert not at.exception, at.exception
    assert "Cannot probe this model: datasets are loaded square" in at.error[0].value
    at.button(key="depth_umap").click().run()
    assert not at.exception, at.exception
    assert "Cannot map this layer: datasets are loaded square" in at.error[0].value

    (oblong / REPORT_FILE).write_text("not json")
    at = depth_page(path=oblong)
    assert any("not a readable probe report" in i.value for i in at.info) and at.button(key="depth_compute")


# ---- the logit lens on the same page ----

def chart_traces(at) -> list[str]:
    """The names of the depth chart's curves."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return [t.get("name") for t in spec["data"]]


def test_the_logit_lens_is_computed_on_a_button_kept_and_drawn(digits_model, cache):
    at = depth_page(path=digits_model)
    assert not at.get("plotly_chart") and "depth_lens" in [b.key for b in at.button]
    assert any(f"up to {probe.LENS_LIMIT} test images" in c.value for c in at.caption)
    at.button(key="depth_lens").click().run()
    assert not at.exception, at.exception
    assert chart_traces(at) == ["logit lens, bits/dim (right axis)", "tuned lens, bits/dim (right axis)"]
    stored = probe.logit_lens(digits_model, compute=False)
    assert stored.source == "cached" and stored.n_images == 179  # digits has 179 test images, under LENS_LIMIT
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["y"] == pytest.approx([r.bits_per_dim for r in stored.rows])
    at = depth_page(path=digits_model)  # a new session: read from disk, no button
    assert "depth_lens" not in [b.key for b in at.button] and len(at.get("plotly_chart")) == 1
    assert any("Kept on disk" in c.value for c in at.caption)


LENS_SHIPPED = [n for n in SHIPPED if (BUNDLED_DIR / n / probe.LENS_FILE).exists()]


@pytest.mark.skipif(not LENS_SHIPPED, reason="no logit lens shipped in data/models (scripts/depth_phases.py --ship)")
def test_a_bundled_model_shows_its_shipped_lens_beside_the_probes():
    name = "mnist-small" if "mnist-small" in LENS_SHIPPED else LENS_SHIPPED[0]
    at = depth_page(label=f"{name} (bundled)")
    assert "depth_lens" not in [b.key for b in at.button]
    traces = chart_traces(at)
    assert "trained" in traces and "logit lens, bits/dim (right axis)" in traces
    shipped = json.loads((BUNDLED_DIR / name / probe.LENS_FILE).read_text())
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    lens = next(t for t in spec["data"] if t["name"] == "logit lens, bits/dim (right axis)")
    assert lens["y"] == pytest.approx([r["bits_per_dim"] for r in shipped["rows"]])
    assert any("Shipped with the model" in c.value for c in at.caption)


def test_a_large_model_gets_fewer_images_and_the_expected_time_first(digits_model, cache, monkeypatch):
    monkeypatch.setattr(estimate, "forward_seconds", lambda speed, n, tokens: 0.25 * n)  # a quarter second an image
    at = depth_page(path=digits_model)
    # 6 passes over n images per split and 4 s a layer's probes must fit 180 s: 100 images (150 s + 16 s)
    assert at.select_slider(key="depth_limit").value == 100
    captions = " ".join(c.value for c in at.caption)
    assert "up to 300 images of digits, then fits the probes: about 3 min here" in captions
    assert "up to 100 test images" in captions and "about 50 s here" in captions  # the lens: 2 × 100 images


def test_a_probe_table_with_rows_of_the_wrong_type_is_named_not_drawn(digits_model, cache):
    probe_report(digits_model, reuse=False, **TINY).save(digits_model / REPORT_FILE)
    stored = json.loads((digits_model / REPORT_FILE).read_text())
    stored["summary"] = {}
    stored["table"][0]["test_acc"] = "high"  # was a traceback in the page
    (digits_model / REPORT_FILE).write_text(json.dumps(stored))
    at = depth_page(path=digits_model)
    assert any(f"{digits_model / REPORT_FILE}: not a readable probe report (row 0: column 'test_acc' must be a finite "
               "number, got 'high')" in seen(i.value) for i in at.info), [i.value for i in at.info]
    assert not at.metric and at.button(key="depth_compute")


@pytest.mark.slow
def test_an_unwritable_cache_computes_the_probes_and_says_they_are_not_kept(digits_model, tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("a file where the cache folder would go")  # read-only for root too
    monkeypatch.setenv("IGPT_LITE_CACHE", str(blocked))
    monkeypatch.setattr(probe, "REPORT_LIMIT", 40)
    at = depth_page(path=digits_model)
    at.button(key="depth_compute").click().run()
    assert not at.exception, at.exception
    assert shown(at)  # the probes were computed and drawn
    note = seen(" ".join(c.value for c in at.caption))
    assert f"but not kept on disk: {blocked}/probes cannot be written" in note and "computed again next time" in note
    assert blocked.read_text() == "a file where the cache folder would go"
