import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from igpt_lite.checkpoint import load_checkpoint, save_checkpoint
from igpt_lite.cli import main
from conftest import tiny_model


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def digits_model(tmp_path, grey_palette):
    model = tiny_model(height=8, width=8)
    return save_checkpoint(tmp_path / "m", model, grey_palette, {"dataset": "digits"})


def test_palette_and_train_then_sample_and_complete(tmp_path, capsys):
    pal = run_json(capsys, "palette", "--data", "digits", "--colors", "4", "--out", str(tmp_path / "p.json"))
    assert pal["n_colors"] == 4 and 0 < pal["token_entropy_bits"] <= 2 and pal["round_trip_error"] > 0
    tr = run_json(capsys, "train", "--data", "digits", "--palette", str(tmp_path / "p.json"), "--colors", "4",
                  "--preset", "tiny", "--steps", "4", "--batch-size", "8", "--eval-every", "2", "--save-every", "2",
                  "--out", str(tmp_path / "run"))
    assert tr["out"].endswith("step-000004") and len(tr["history"]) == 2 and tr["baseline_bpd"] > 0
    s = run_json(capsys, "sample", "--model", str(tmp_path / "run"), "--n", "3", "--out", str(tmp_path / "s.png"))
    assert np.array(s["tokens"]).shape == (3, 64) and Image.open(tmp_path / "s.png").size[0] > 8
    c = run_json(capsys, "complete", "--model", str(tmp_path / "run"), "--index", "0", "1", "--samples", "2")
    tokens = np.array(c["tokens"])
    assert tokens.shape == (2, 2, 64) and c["keep_rows"] == 4 and tokens.max() < 4
    info = run_json(capsys, "info", "--model", str(tmp_path / "run"))
    assert info["step"] == 4 and info["n_colors"] == 4 and info["dataset"] == "digits"
    assert info["parameters"] == sum(p.numel() for p in load_checkpoint(tmp_path / "run").model.parameters())


def test_complete_an_image_file(digits_model, tmp_path, capsys):
    Image.fromarray(np.full((20, 20), 255, dtype=np.uint8)).save(tmp_path / "white.png")
    c = run_json(capsys, "complete", "--model", str(digits_model), "--image", str(tmp_path / "white.png"),
                 "--rows", "6", "--samples", "1")
    assert np.array(c["tokens"])[0, 0, :48].tolist() == [7] * 48  # the kept rows: the palette's white


def test_errors_exit_2_with_a_message_and_no_traceback(digits_model, tmp_path, capsys):
    (tmp_path / "x.txt").write_text("not an image")
    assert main(["complete", "--model", str(digits_model), "--image", str(tmp_path / "x.txt")]) == 2
    assert "x.txt: not an image file" in capsys.readouterr().err
    assert main(["sample", "--model", "no-such-model"]) == 2
    assert "no model named 'no-such-model'" in capsys.readouterr().err
    assert main(["complete", "--model", str(digits_model), "--index", "5000"]) == 2
    assert "out of range" in capsys.readouterr().err


def test_module_entry_point_prints_one_json_object():
    out = subprocess.run([sys.executable, "-m", "igpt_lite", "info", "--json"], capture_output=True, text=True,
                         check=True).stdout
    info = json.loads(out)
    assert "igpt-s" in info["presets"] and "mnist" in info["datasets"]


def test_train_flags_reach_the_training_config_and_no_token_cache_writes_none(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IGPT_LITE_CACHE", str(tmp_path / "cache"))
    common = ["train", "--data", "digits", "--colors", "4", "--preset", "tiny", "--steps", "2", "--batch-size", "8",
              "--eval-every", "2"]
    run_json(capsys, *common, "--out", str(tmp_path / "a"), "--activation-checkpointing", "--fsdp",
             "--no-token-cache")
    cfg = load_checkpoint(tmp_path / "a").meta["training"]["config"]
    assert (cfg["activation_checkpointing"], cfg["fsdp"], cfg["compile"]) == (True, True, False)
    assert not (tmp_path / "cache").exists()
    run_json(capsys, *common, "--out", str(tmp_path / "b"))
    assert len(list((tmp_path / "cache" / "tokens" / "digits").glob("train-8px-1ch-4c-*.npy"))) == 1
    a, b = (load_checkpoint(tmp_path / r).model.state_dict() for r in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)  # recomputation and the cache change nothing
