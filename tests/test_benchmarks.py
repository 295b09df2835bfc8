"""The benchmark scripts run, and report the library's own numbers (timings are never asserted)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from igpt_lite.checkpoint import save_checkpoint
from igpt_lite.features import extract_features, feature_layers
from igpt_lite.model import GPT, preset
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
            (want.layer, want.C, want.test_acc, want.val_acc)


@pytest.mark.slow
def test_sampling_benchmark_times_all_three_samplers_on_one_config():
    model = tiny_model(height=4, width=4)
    prompt = torch.randint(0, 8, (2, 6))
    row = load_script("sampling").bench("tiny", model, prompt, repeats=1, nocache=True)
    assert (row["config"], row["batch"], row["steps"]) == ("tiny", 2, 16 - 6)
    assert row["speedup_vs_hf"] == pytest.approx(row["hf_generate_s"] / row["ours_s"])
    assert row["speedup_vs_nocache"] == pytest.approx(row["nocache_s"] / row["ours_s"])


def test_train_benchmark_counts_flops_the_nanogpt_way():
    bench = load_script("train")
    cfg = preset("igpt-s")  # 24 layers, width 512, 8 heads, 512 colours, 1,024 positions
    with torch.device("meta"):
        model = GPT(cfg)
    d, L, T = 512, 24, 1024
    # by hand: per block qkv (d×3d + 3d), attention out (d×d + d), MLP (d×4d + 4d, 4d×d + d), two
    # RMS norms (d); then the final norm (d) and the head (d × 512); embeddings are lookups, not counted
    n = L * (12 * d * d + 9 * d + 2 * d) + d + d * 512
    assert bench.flops_per_token(model) == 6 * n + 12 * L * d * T
    assert bench.peak_flops_for("NVIDIA H200") == bench.peak_flops_for("NVIDIA H100 80GB HBM3") == 989e12
    assert bench.peak_flops_for("NVIDIA A100-SXM4-80GB") == 312e12 and bench.peak_flops_for("cpu") is None


@pytest.mark.slow
def test_train_benchmark_reports_pipeline_and_model_rows(capsys):
    bench = load_script("train")
    result = bench.main(["--device", "cpu", "--preset", "tiny", "--resolution", "8", "--batch-size", "4",
                         "--steps", "1", "--threads", "1", "--peak-flops", "1e12", "--json"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    assert [(r["data"], r["resolution"], r["channels"], r["colors"]) for r in result["pipeline"]] == \
        [("mnist", 28, 1, 8), ("photos", 32, 3, 512)]
    assert all(r["memmap_tokens_per_s"] > 0 and r["encode_tokens_per_s"] > 0 for r in result["pipeline"])
    (row,) = result["models"]
    model = GPT(preset("tiny", n_colors=8, height=8, width=8))
    assert (row["preset"], row["parameters"], row["batch"], row["tokens"]) == ("tiny", model.num_params(), 4, 64)
    assert row["tokens_per_s"] == pytest.approx(4 * 64 / (row["step_ms"] / 1000))
    assert row["mfu"] == pytest.approx(row["tokens_per_s"] * row["flops_per_token"] / 1e12)
    assert row["peak_memory_mb"] > 0 and row["memory_kind"] == "process peak RSS"


def test_readers_benchmark_reads_every_split_of_files_it_writes(capsys):
    result = load_script("readers").main(["--scale", "0.001", "--stl-unlabeled", "--json"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result))
    assert result["check"] == {"cifar10": "ok", "cifar100": "ok", "cifar100-coarse": "ok", "stl10": "ok",
                               "mnist-idx": "ok", "fashion-mnist": "ok"}
    got = {(r["dataset"], r["split"]): (r["images"], tuple(r["shape"])) for r in result["rows"]}
    # 0.001 of the official sizes; val is 10% of the official training files, train the rest
    assert got[("cifar10", "train")] == (45, (32, 32, 3)) and got[("cifar10", "val")] == (5, (32, 32, 3))
    assert got[("cifar100", "test")] == (10, (32, 32, 3))
    assert got[("stl10", "train")] == (5, (96, 96, 3))  # 10% of 5 rounds to no val image and got[("stl10", "test")] == (8, (96, 96, 3))
    assert got[("mnist-idx", "val")] == (6, (28, 28, 1)) and got[("fashion-mnist", "test")] == (10, (28, 28, 1))
    assert got[("stl10", "unlabeled, 1,000 chosen rows")] == (100, (96, 96, 3))  # all 100 at this scale
    assert all(r["seconds"] > 0 for r in result["rows"])
