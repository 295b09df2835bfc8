import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from igpt_lite.checkpoint import load_checkpoint, save_checkpoint
from igpt_lite.cli import build_parser, main
from igpt_lite.attention import AttentionMaps, AttentionSummary
from igpt_lite.palette import Palette, PaletteReport
from igpt_lite.probe import DEFAULT_CS
from igpt_lite.sample import Completions
from igpt_lite.sample.cli import CompletionRun, SampleRun
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


# ---- each flag's help shows the default actually used ----

def each_option():
    """(verb, action) for every option of every verb, sub-commands included (`data check`)."""
    def walk(parser, verb):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{verb} {name}".strip())
            elif not isinstance(action, argparse._HelpAction):
                yield verb, parser, action
    return list(walk(build_parser(), ""))


def shown_help(parser, action) -> str:
    """The help text as `--help` prints it (%(default)s and the like filled in)."""
    return parser._get_formatter()._expand_help(action) if action.help else ""


def test_every_help_page_renders():
    for verb, parser, _ in each_option():
        assert parser.format_help(), verb


def test_each_flag_with_a_default_shows_the_value_used():
    for verb, parser, action in each_option():
        if action.default in (None, False, argparse.SUPPRESS):
            continue
        text = shown_help(parser, action)
        assert re.search(rf"default:? {re.escape(str(action.default))}\b", text), \
            f"igpt-lite {verb} {'/'.join(action.option_strings) or action.dest}: help {text!r} does not show " \
            f"the default {action.default!r}"


def test_each_flag_left_out_says_what_happens():
    """An optional flag whose default is None means something computed or nothing written: its help says which."""
    for verb, parser, action in each_option():
        if action.default is None and not action.required and action.nargs != 0:
            assert "default" in shown_help(parser, action), \
                f"igpt-lite {verb} {'/'.join(action.option_strings) or action.dest}: help does not say its default"


def test_the_probe_C_help_names_the_grid_the_probe_uses():
    parser = build_parser()._subparsers._group_actions[0].choices["probe"]
    action = next(a for a in parser._actions if "--C" in a.option_strings)
    numbers = [float(x) for x in re.findall(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", shown_help(parser, action))]
    for value in (min(DEFAULT_CS), max(DEFAULT_CS), len(DEFAULT_CS)):  # the grid's ends and its size
        assert any(n == pytest.approx(value) for n in numbers), (value, numbers)
    assert build_parser().parse_args(["probe", "--model", "m"]).C is None  # cmd_probe then uses DEFAULT_CS


# ---- typed results: to_dict() is the --json object, text() the human summary ----

def run_verb(*argv):
    args = build_parser().parse_args(list(argv))
    return args.func(args)


def test_sample_complete_attention_and_info_return_typed_results(digits_model, capsys):
    run = run_verb("sample", "--model", str(digits_model), "--n", "2")
    assert isinstance(run, SampleRun) and run.tokens.shape == (2, 64)
    assert list(run.to_dict()) == ["model", "n", "seconds", "png", "tokens"]
    assert run.text().splitlines() == [f"model: {digits_model}", "n: 2", f"seconds: {run.seconds:.4g}", "png: None"]

    run = run_verb("complete", "--model", str(digits_model), "--index", "3", "--samples", "2", "--rows", "5")
    assert isinstance(run, CompletionRun) and isinstance(run.completions, Completions)
    assert run.to_dict()["samples"] == 2 and run.to_dict()["keep_rows"] == 5 == run.completions.keep_rows
    assert "tokens" not in run.text() and "source: digits/test[3]" in run.text().splitlines()

    run = run_verb("attention", "--model", str(digits_model), "--pixel", "3", "4")
    assert isinstance(run.maps, AttentionMaps) and isinstance(run.summary, AttentionSummary)
    peak = np.unravel_index(np.argmax(run.maps.rollout), run.maps.rollout.shape)
    assert run.maps.rollout_peak == tuple(int(i) for i in peak) and run.to_dict()["rollout_peak"] == list(peak)
    keys = [line.split(":")[0] for line in run.text().splitlines()]
    assert "rollout_peak" in keys and not {"maps", "head_mean", "rollout", "visible", "start"} & set(keys)

    run = run_verb("info", "--model", str(digits_model))
    assert run.to_dict() == load_checkpoint(digits_model).summary().to_dict()
    assert run.text().splitlines() == [f"{label}: {value}" for label, value in run.summary.card()]
    assert main(["info", "--model", str(digits_model)]) == 0 and capsys.readouterr().out == run.text() + "\n"
    assert set(run_verb("info").to_dict()) == {"models", "presets", "datasets"}


def test_palette_export_and_import_return_typed_results(tmp_path):
    run = run_verb("palette", "--colors", "4", "--out", str(tmp_path / "p.json"))
    assert isinstance(run.report, PaletteReport) and run.report.n_colors == 4
    assert run.to_dict() == {"out": str(tmp_path / "p.json"), "dataset": "digits", "resolution": [8, 8],
                             **run.report.to_dict()}
    assert f"round_trip_error: {run.report.round_trip_error:.4g}" in run.text().splitlines()

    rms = save_checkpoint(tmp_path / "rms", tiny_model(height=8, width=8, norm="rms"),
                          Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None]))
    out = run_verb("export-hf", "--model", str(rms), str(tmp_path / "hf"))
    assert out.to_dict() == {"model": str(rms), "out": str(tmp_path / "hf"), "files": out.files}
    back = run_verb("import-hf", str(tmp_path / "hf"), str(tmp_path / "back"))
    assert back.to_dict()["name"] == "back" and back.to_dict()["parameters"] == back.imported.model.num_params()
    assert back.text().splitlines()[:3] == [f"out: {tmp_path / 'back'}", "name: back", f"source: {tmp_path / 'hf'}"]
