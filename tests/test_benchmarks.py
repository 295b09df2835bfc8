"""The benchmark scripts run, and report the library's own numbers (timings are never asserted)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from igpt_lite.checkpoint import save_checkpoint
from igpt_lite.features import extract_features, feature_layers
from igpt_lite.probe import load_split, probe_layers
from conftest import tiny_model

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_probe_benchmark_reports_the_probes_of_the_extracted_features(tmp_path, grey_palette, capsys):
    model = tiny_model(height=8, width=8)
    path = save_checkpoint(tmp_path / "m", model, grey_palette, {"dataset": "digits"})
    load_script("probe").main(["--model", str(path), "--limit", "60", "--json"])
    result = json.loads(capsys.readouterr().out)

    layers = feature_layers(model, final_norm=True)
    assert result["layers"] == layers and result["n"] == {"train": 60, "val": 60, "test": 60}
    assert result["fit_s"] > 0 and result["extract_over_forward"] > 0
    splits = {s: load_split("digits", s, grey_palette, 8, 60) for s in ("train", "val", "test")}
    feats = {s: extract_features(model, splits[s][1], layers) for s in splits}
    ref = probe_layers(feats, {s: splits[s][2] for s in splits})
    assert len(result["table"]) == len(ref) == len(layers)
    for got, want in zip(result["table"], ref):
        assert (got["layer"], got["C"], got["test_acc"], got["val_acc"]) == \
            (want["layer"], want["C"], want["test_acc"], want["val_acc"])


@pytest.mark.slow
def test_sampling_benchmark_times_all_three_samplers_on_one_config():
    model = tiny_model(height=4, width=4)
    prompt = torch.randint(0, 8, (2, 6))
    row = load_script("sampling").bench("tiny", model, prompt, repeats=1, nocache=True)
    assert (row["config"], row["batch"], row["steps"]) == ("tiny", 2, 16 - 6)
    assert row["speedup_vs_hf"] == pytest.approx(row["hf_generate_s"] / row["ours_s"])
    assert row["speedup_vs_nocache"] == pytest.approx(row["nocache_s"] / row["ours_s"])
