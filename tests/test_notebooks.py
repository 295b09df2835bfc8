"""The teaching notebooks (notebooks/*.ipynb): committed without outputs, executed top to bottom in
fast mode (IGPT_FAST=1), and the library functions their cells and widgets call. Where JupyterLab can
be driven in a browser, test_notebooks_lab.py runs each notebook (Run All, fast mode) and nbmake does
not run it a second time; elsewhere nbmake runs it here."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from igpt_lite import attention, figures, probe
from igpt_lite.palette import raster_sequence_figure
from igpt_lite.probe import ProbeTable, layer_projections
from igpt_lite.scoring import evaluate_bits_per_dim
from igpt_lite.studies.references import IGPT_S_CIFAR10
from igpt_lite.train import History, TrainConfig, train, training_curve

from conftest import tiny_model
from test_notebooks_lab import lab_missing

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts; clear them "
                       f"(jupyter nbconvert --clear-output --inplace {path.name})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_answers_are_closed_in_a_details_element(path):
    """A <details> element stays closed through Run All and a save; a collapsed markdown cell does not."""
    cells = [c for c in json.loads(path.read_text())["cells"] if "answers" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, f"{path.name}: one markdown cell tagged 'answers', found {len(cells)}"
    text = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown", path.name
    assert text.startswith("<details><summary><b>Answers</b> (click to open)</summary>\n\n"), text[:80]
    assert text.endswith("\n\n</details>") and "<details open" not in text, text[-80:]


def run_fast(path: Path, **env) -> None:
    """nbmake executes every cell (the notebooks' own asserts check their key numbers) and fails on
    any error; IGPT_FAST=1 selects each notebook's fast mode; `env`: more variables (IGPT_MODEL)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "--nbmake-timeout=600", "-q",
                             "-p", "no:cacheprovider", str(path)], env={**os.environ, "IGPT_FAST": "1", **env},
                            capture_output=True, text=True, cwd=path.parent)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(lab_missing() is None, reason="test_notebooks_lab.py runs the same notebook (Run All in "
                    "JupyterLab, fast mode); nbmake runs it only where that test cannot")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_fast_mode(path):
    run_fast(path)


# ---- the library functions the notebooks call ----

def test_quantise_is_decode_of_encode_and_gives_the_round_trip_error(grey_palette, rng):
    images = rng.integers(0, 256, size=(3, 4, 5, 1), dtype=np.uint8)
    q = grey_palette.quantise(images)
    assert q.shape == images.shape and q.dtype == np.uint8
    assert np.array_equal(q, grey_palette.decode(grey_palette.encode(images), 4, 5))
    assert np.array_equal(grey_palette.quantise(q), q)  # the palette's own colours come back unchanged
    assert grey_palette.round_trip_error(images) == pytest.approx(np.abs(q.astype(float) - images).mean())


def test_training_curve_draws_history_and_baseline():
    history = History.from_records([{"step": 10, "train_bpd": 2.0, "val_bpd": 1.9},
                                     {"step": 20, "train_bpd": 1.5, "val_bpd": 1.4}])
    fig = training_curve(history, baseline_bpd=1.7)
    train_line, val_line = fig.data
    assert list(val_line.x) == [10, 20] and list(val_line.y) == [1.9, 1.4] and list(train_line.y) == [2.0, 1.5]
    assert fig.layout.shapes[0].y0 == 1.7 and "1.700" in fig.layout.annotations[0].text
    assert "1.400 bits/dim at step 20" in fig.layout.title.text
    assert len(training_curve([]).data[0].x) == 0  # the live plot's first frame


def test_on_eval_sees_each_evaluation_and_an_eval_mode_model(tmp_path, grey_palette):
    model = tiny_model()
    tokens = torch.randint(0, 8, (32, 30), generator=torch.Generator().manual_seed(0))
    calls = []

    def on_eval(history, m):
        calls.append((history, m.training, evaluate_bits_per_dim(m, tokens[:8])))

    cfg = TrainConfig(steps=6, batch_size=8, warmup_steps=1, eval_every=2, eval_images=8, save_every=100)
    history = train(model, grey_palette, tokens[:24], tokens[24:], tmp_path / "run", cfg, progress=False,
                    on_eval=on_eval)
    assert [c[0] for c in calls] == [history[:1], history[:2], history[:3]]  # the history so far, each time
    assert [c[1] for c in calls] == [False] * 3  # called in eval mode ...
    assert calls[-1][2] == pytest.approx(evaluate_bits_per_dim(model, tokens[:8]))  # ... on the live model


def test_attention_mask_chart_shows_the_models_masks():
    masks = {}
    for objective in ("ar", "bert"):
        model = tiny_model(objective=objective, height=2, width=3)
        with torch.no_grad():
            _, cache = model.run_with_cache(model.image_inputs(torch.zeros(1, 6, dtype=torch.long)),
                                            names=["blocks.0.attn.pattern"])
        masks[objective] = cache["blocks.0.attn.pattern"][0, 0].numpy() > 0
    fig = attention.attention_mask_chart(masks)
    assert np.array_equal(fig.data[0].z, np.tril(np.ones((6, 6), int)))  # ar: causal
    assert np.array_equal(fig.data[1].z, np.ones((6, 6), int))  # bert: everything
    assert [a.text for a in fig.layout.annotations] == ["ar: 21 of 36 pairs allowed", "bert: 36 of 36 pairs allowed"]


def test_raster_sequence_figure_writes_each_token_in_raster_order(grey_palette):
    tokens = np.arange(6).reshape(2, 3)
    fig = raster_sequence_figure(tokens, grey_palette.colors)
    assert [a.text for a in fig.layout.annotations] == [str(i) for i in range(6)]
    assert [(a.y, a.x) for a in fig.layout.annotations][:4] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert np.array_equal(np.asarray(fig.data[0].z)[1, 2], grey_palette.colors[5].repeat(3))
    assert "6 tokens" in fig.layout.title.text


def _table():
    rows = []
    for kind, accs in (("trained", [0.5, 0.8, 0.7]), ("random", [0.4, 0.45, 0.42])):
        for depth, (layer, acc) in enumerate(zip(["embed", "blocks.0", "ln_f"], accs)):
            rows.append({"kind": kind, "layer": layer, "depth": depth, "test_acc": acc, "test_stderr": 0.02,
                         "val_acc": acc, "train_acc": acc, "C": 1.0, "knn_test_acc": acc - 0.1})
    return ProbeTable.from_records(rows)


def test_layer_view_titles_the_layers_accuracies(rng):
    table = _table()
    embedding, labels = rng.normal(size=(9, 2)), np.repeat([0, 1, 2], 3)
    fig = probe.layer_view(table, "blocks.0", embedding, labels, ["a", "b", "c"])
    assert fig.layout.title.text == "blocks.0: linear probe 80.0 ± 2.0%, kNN 70.0%, random weights 45.0%"
    assert [t.name for t in fig.data] == ["a", "b", "c"] and sum(len(t.x) for t in fig.data) == 9
    with pytest.raises(ValueError, match="layer 'blocks.7' is not in the table: it has embed, blocks.0, ln_f"):
        probe.layer_view(table, "blocks.7", embedding, labels)


def test_layer_projections_give_each_layer_two_columns(rng):
    feats = {"embed": rng.normal(size=(30, 5)), "blocks.0": rng.normal(size=(30, 8))}
    out = layer_projections(feats, method="pca")
    assert list(out) == ["embed", "blocks.0"] and all(v.shape == (30, 2) for v in out.values())
    centred = feats["embed"] - feats["embed"].mean(0)  # PCA: the first two principal directions
    var = np.var(out["embed"], axis=0, ddof=1)
    top = np.sort(np.linalg.eigvalsh(np.cov(centred.T)))[::-1][:2]
    assert np.allclose(var, top, rtol=1e-4)
    with pytest.raises(ValueError, match="method must be 'umap' or 'pca'"):
        layer_projections(feats, method="tsne")


def test_probe_reference_chart_puts_both_curves_on_relative_depth():
    fig = probe.probe_reference_chart(_table(), IGPT_S_CIFAR10)
    ref, ours = fig.data
    assert list(ours.x) == [0, 0.5, 1] and list(ours.y) == [50, 80, 70]
    assert ref.x[0] == 0 and ref.x[-1] == 1 and max(ref.y) == pytest.approx(78.6)
    assert "NielsRogge/Transformers-Tutorials" in fig.layout.title.text


def test_igpt_s_reference_is_the_published_curve():
    assert IGPT_S_CIFAR10["accuracy"] == {0: 0.333, 4: 0.495, 8: 0.653, 12: 0.778, 16: 0.786, 20: 0.758,
                                          23: 0.724, 24: 0.678}


def test_live_figure_redraws_one_display_in_place(monkeypatch):
    import IPython.display
    import plotly.io

    calls = []

    class Handle:
        def update(self, obj, raw=False):
            calls.append(("update", obj, raw))

    def fake_display(obj, raw=False, display_id=None):
        calls.append(("display", obj, raw, display_id))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", fake_display)
    monkeypatch.setattr(plotly.io.renderers, "default", "plotly_mimetype")  # JupyterLab's: a JSON bundle
    first = training_curve([])
    later = training_curve(History.from_records([{"step": 5, "train_bpd": 1.0, "val_bpd": 0.9}]))
    live = figures.LiveFigure(first)
    live.update(later)
    (kind0, bundle0, raw0, display_id), blank, (kind2, bundle2, raw2) = calls
    assert (kind0, raw0, display_id, kind2, raw2) == ("display", True, True, "update", True)
    assert bundle0["application/vnd.plotly.v1+json"]["data"][0]["x"] == []  # the figures' own bundles
    assert bundle2 == later._repr_mimebundle_()
    # JupyterLab redraws a plotly output only when its type changes: a blank of the chart's height first
    assert blank == ("update", {"text/html": '<div style="height:420px"></div>', "text/plain": ""}, True)


def test_scratch_dir_removes_the_folders_of_processes_that_ended(tmp_path, monkeypatch):
    from igpt_lite.storage import scratch_dir

    monkeypatch.setenv("IGPT_LITE_CACHE", str(tmp_path))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "scratch" / f"igpt-notebook-03-pid{int(ended.stdout)}-abc"  # a kernel killed mid-run
    (stale / "features").mkdir(parents=True)
    (stale / "features" / ".lock").write_text("")
    alive = tmp_path / "scratch" / f"igpt-notebook-02-pid{os.getppid()}-def"  # a process still running
    alive.mkdir()
    work = scratch_dir("igpt-notebook-03")
    assert not stale.exists() and alive.is_dir()
    assert Path(work.name).parent == tmp_path / "scratch" and Path(work.name).is_dir()
    assert Path(work.name).name.startswith(f"igpt-notebook-03-pid{os.getpid()}-")
    work.cleanup()
    assert not Path(work.name).exists()


def test_progress_bar_follows_on_step_and_closes_at_the_end(monkeypatch):
    import tqdm.auto

    bars = []

    class Bar:
        def __init__(self, total, desc):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    on_step = figures.progress_bar("probes")
    on_step(1, 4)
    on_step(3, 4)
    assert len(bars) == 1 and (bars[0].n, bars[0].total, bars[0].desc, bars[0].closed) == (3, 4, "probes", False)
    on_step(4, 4)
    assert bars[0].n == 4 and bars[0].closed
