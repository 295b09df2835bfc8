"""Nothing lost, no tracebacks.

The tables below are what a user types and the line igpt-lite answers: each row is the command
(or library call), the exit code (2: refused, nothing done; 0: it works) and a fragment of the
message on stderr (or, for a command that works, of its JSON on stdout). Paths in braces are files
the `world` fixture makes: {model} a tiny digits model, {run} a finished 2-step training run, {tmp}
a scratch folder, {hf} a Hugging Face ImageGPT export, and the image files named below.

After the tables, the fault tests: two trains on one folder, kill -9 at random points then
--resume (the same weights as a run never interrupted), overwrites with an unrelated file present.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import fill_disk, tiny_model
from igpt_lite import bias, checkpoint, data, interop, validate
from igpt_lite.checkpoint import load_checkpoint, save_checkpoint, step_dirs
from igpt_lite.cli import main
from igpt_lite.palette import Palette
from igpt_lite.sample import complete, generate, sample
from igpt_lite.train import TrainConfig, pick_device, pretrain, run_lock

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
TRAIN = ["train", "--data", "digits", "--preset", "tiny", "--batch-size", "8", "--eval-every", "2"]
SAMPLE = ["sample", "--model", "{model}", "--n", "1"]

CLI_CASES = [
    # --- arguments are checked where they are parsed: exit 2, the flag named, nothing run ---
    ("sample --n 0", [*SAMPLE[:-1], "0"], 2, "argument --n: must be ≥ 1, got 0"),
    ("sample --top-k 0", [*SAMPLE, "--top-k", "0"], 2, "argument --top-k: must be ≥ 1, got 0"),
    ("sample --top-p 0", [*SAMPLE, "--top-p", "0"], 2, "argument --top-p: must be > 0 and ≤ 1, got 0.0"),
    ("sample --top-p 1.5 (was ignored)", [*SAMPLE, "--top-p", "1.5"], 2, "argument --top-p: must be > 0 and ≤ 1"),
    ("sample --temperature nan", [*SAMPLE, "--temperature", "nan"], 2, "argument --temperature: must be > 0 and finite"),
    ("sample --temperature 0", [*SAMPLE, "--temperature", "0"], 2, "argument --temperature: must be > 0"),
    ("a huge --seed is named", [*SAMPLE, "--seed", "99999999999999999999"], 2,
     "argument --seed: must be between 0 and 4294967295"),
    ("--seed that is not a number", [*SAMPLE, "--seed", "abc"], 2, "argument --seed: must be a whole number, got 'abc'"),
    ("complete --samples -2", ["complete", "--model", "{model}", "--samples", "-2"], 2,
     "argument --samples: must be ≥ 1, got -2"),
    ("train --steps 0", [*TRAIN, "--out", "{tmp}/r", "--steps", "0"], 2, "argument --steps: must be ≥ 1, got 0"),
    ("train --batch-size 0", [*TRAIN, "--out", "{tmp}/r", "--batch-size", "0"], 2, "argument --batch-size: must be ≥ 1"),
    ("train --grad-accum 0 (trained nothing)", [*TRAIN, "--out", "{tmp}/r", "--grad-accum", "0"], 2,
     "argument --grad-accum: must be ≥ 1, got 0"),
    ("train --save-every 0", [*TRAIN, "--out", "{tmp}/r", "--save-every", "0"], 2, "argument --save-every: must be ≥ 1"),
    ("train --heads 0 (was ignored)", [*TRAIN, "--out", "{tmp}/r", "--heads", "0"], 2, "argument --heads: must be ≥ 1"),
    ("train --resolution 0 (was ignored)", [*TRAIN, "--out", "{tmp}/r", "--resolution", "0"], 2,
     "argument --resolution: must be ≥ 1"),
    ("train --lr inf", [*TRAIN, "--out", "{tmp}/r", "--lr", "inf"], 2, "argument --lr: must be > 0 and finite"),
    pytest.param("train --device cuda without CUDA", [*TRAIN, "--out", "{tmp}/r", "--device", "cuda"], 2,
                 "argument --device: 'cuda': CUDA is not available", marks=NO_CUDA,
                 id="train --device cuda without CUDA"),
    ("train --device gpu", [*TRAIN, "--out", "{tmp}/r", "--device", "gpu"], 2,
     "argument --device: must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("probe --limit 0", ["probe", "--model", "{model}", "--limit", "0"], 2, "argument --limit: must be ≥ 1"),
    ("complete --image that is not there", ["complete", "--model", "{model}", "--image", "{tmp}/none.png"], 2,
     "argument --image: {tmp}/none.png: no such file"),
    ("train --palette that is not there", [*TRAIN, "--out", "{tmp}/r", "--palette", "{tmp}/none.json"], 2,
     "argument --palette: {tmp}/none.json: no such file"),
    ("train --batch-size above the data", [*TRAIN, "--out", "{tmp}/big", "--batch-size", "2000"], 2,
     "batch size 2000 is larger than the training set (1438 images)"),
    ("complete --rows above the image height (was named keep_rows)", ["complete", "--model", "{model}", "--rows", "99"],
     2, "argument --rows: must be between 0 and 8 (the model's image height), got 99"),
    ("sample --out without an image suffix", [*SAMPLE, "--out", "{tmp}/grid"], 2, "must end in one of .png"),
    # --- training runs: checked before any work ---
    ("train --resume with no checkpoint (was a silent restart)", [*TRAIN, "--out", "{tmp}/new", "--resume"], 2,
     "holds no checkpoint to resume from; leave out --resume"),
    ("train --resume of a finished run", [*TRAIN, "--out", "{run}", "--steps", "2", "--resume"], 2,
     "is already at step 2; give --steps above 2"),
    ("train --resume with another dataset", [*TRAIN, "--out", "{run}", "--steps", "4", "--resume", "--data", "mnist",
                                             "--resolution", "8"], 2,
     "dataset: the run has 'digits', this has 'mnist'"),
    ("train --resume with another preset (was a traceback)", [*TRAIN, "--out", "{run}", "--steps", "4", "--resume",
                                                              "--preset", "small"], 2,
     "model n_layer: the run has 2, this has 4"),
    ("train --resume with another objective", [*TRAIN, "--out", "{run}", "--steps", "4", "--resume",
                                               "--objective", "bert"], 2, "objective: the run is 'ar', this is 'bert'"),
    ("train --resume with another palette", [*TRAIN, "--out", "{run}", "--steps", "4", "--resume",
                                             "--palette", "{tmp}/other-palette.json"], 2,
     "palette: the run's is"),
    ("train into a run folder without --resume", [*TRAIN, "--out", "{run}", "--steps", "4"], 2,
     "already holds checkpoints (step-000002); resume it (--resume)"),
    ("train --out that cannot be written (was found only at the first save)", [*TRAIN, "--out", "{tmp}/a-file/run"], 2,
     "cannot write the run folder"),
    # --- outputs that exist are refused unless --overwrite; nothing computed first ---
    ("sample --out over an existing file", [*SAMPLE, "--out", "{tmp}/exists.png"], 2,
     "--out {tmp}/exists.png already exists; choose another path or pass --overwrite"),
    ("complete --out over an existing file", ["complete", "--model", "{model}", "--out", "{tmp}/exists.png"], 2,
     "already exists"),
    ("attention --html over an existing file", ["attention", "--model", "{model}", "--pixel", "1", "1", "--html",
                                                "{tmp}/exists.html"], 2, "--html {tmp}/exists.html already exists"),
    ("sample --out into a missing folder", [*SAMPLE, "--out", "{tmp}/no/such/grid.png"], 2,
     "the folder {tmp}/no/such does not exist"),
    ("export-hf over a folder", ["export-hf", "--model", "{tmp}/rms", "{hf}"], 2, "already exists; choose another folder"),
    ("import-hf under a bundled model's name", ["import-hf", "{tmp}/mnist-small"], 2,
     "'mnist-small' is the name of a bundled model"),
    # --- damaged models: a message naming the file ---
    ("a config with n_head 0", ["sample", "--model", "{tmp}/heads0"], 2, "n_head must be ≥ 1, got 0"),
    ("a config that is a JSON list", ["sample", "--model", "{tmp}/listcfg"], 2, "expected a JSON object"),
    ("NaN weights", ["sample", "--model", "{tmp}/nan"], 2, "hold NaN or infinite values"),
    ("an HF index without weight_map", ["import-hf", "{tmp}/hf-noindex", "{tmp}/imported"], 2,
     'model.safetensors.index.json: no "weight_map"'),
    ("--model that is a file", ["sample", "--model", "{tmp}/exists.png"], 2, "is a file; a checkpoint is a folder"),
    # --- images: one reader (data.read_image) for every --image ---
    ("a truncated --image (was a traceback)", ["complete", "--model", "{model}", "--image", "{tmp}/cut.png"], 2,
     "{tmp}/cut.png: the image data is truncated or corrupt"),  # the whole path (was the base name only)
    ("a decompression bomb --image (was a traceback)", ["complete", "--model", "{model}", "--image", "{tmp}/bomb.png"],
     2, "{tmp}/bomb.png: 8000×8000 pixels is more than this reader accepts"),
    ("a 16-bit grey PNG is scaled (was clipped to white)",
     ["complete", "--model", "{model}", "--image", "{tmp}/deep.png", "--rows", "8", "--samples", "1", "--json"], 0,
     '"tokens": [[[4, 4, 4, 4, 4, 4, 4, 4, 4'),  # mid grey: the grey palette's middle colour, not white (7)
    ("an EXIF-rotated JPEG is turned upright (was ignored)",
     ["complete", "--model", "{model}", "--image", "{tmp}/phone.jpg", "--rows", "8", "--samples", "1", "--json"], 0,
     '"tokens": [[[7, 7, 7, 7, 7, 7, 7, 7, 7'),  # the stored left half is white: upright, the top rows
]

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("world")
    grey = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    paths = {"tmp": tmp, "model": save_checkpoint(tmp / "model", tiny_model(height=8, width=8), grey,
                                                  {"dataset": "digits"})}
    assert main([*TRAIN, "--out", str(tmp / "run"), "--steps", "2", "--json"]) == 0
    paths["run"] = tmp / "run"
    Palette(np.linspace(-1, 0.9, 8, dtype=np.float32)[:, None]).save(tmp / "other-palette.json")
    (tmp / "a-file").write_text("a file where a folder would go")
    Image.new("L", (8, 8)).save(tmp / "exists.png")
    (tmp / "exists.html").write_text("<p>keep me</p>")
    # damaged checkpoints
    for name, edit in (("heads0", lambda c: {**c, "model": {**c["model"], "n_head": 0}}), ("listcfg", lambda c: [c])):
        folder = save_checkpoint(tmp / name, tiny_model(height=8, width=8), grey)
        (folder / "config.json").write_text(json.dumps(edit(json.loads((folder / "config.json").read_text()))))
    nan = tiny_model(height=8, width=8)
    with torch.no_grad():
        nan.blocks[0].attn.qkv.weight[0, 0] = float("nan")
    save_checkpoint(tmp / "nan", nan, grey)
    # Hugging Face folders: one to overwrite, one with a damaged shard index, one named like a bundled model
    rms = checkpoint.Checkpoint(model=tiny_model(height=8, width=8, norm="rms"), palette=grey)
    paths["hf"] = interop.export_hf(rms, tmp / "hf")
    save_checkpoint(tmp / "rms", rms.model, grey)
    noindex = interop.export_hf(rms, tmp / "hf-noindex")
    (noindex / "model.safetensors").rename(noindex / "model-00001-of-00001.safetensors")
    (noindex / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    interop.export_hf(rms, tmp / "mnist-small")
    # images
    noise = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(noise).save(tmp / "whole.png")
    whole = (tmp / "whole.png").read_bytes()
    (tmp / "cut.png").write_bytes(whole[: len(whole) // 2])
    Image.new("1", (8000, 8000)).save(tmp / "bomb.png")  # 64M pixels in a few KB
    Image.fromarray(np.full((16, 16), 32768, dtype=np.uint16)).save(tmp / "deep.png")  # 16-bit mid grey
    stored = np.zeros((64, 64), dtype=np.uint8)
    stored[:, :32] = 255  # white left half as stored; EXIF 6 turns it 90° clockwise: white on top
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp / "phone.jpg", exif=exif, quality=95)
    return paths


def _fill(argv, world):
    return [a.format(**{k: str(v) for k, v in world.items()}) for a in argv]


def _rows(cases):
    """Table rows as pytest parameters, each named by its first column."""
    return [pytest.param(*c, id=c[0]) if type(c) is tuple else c for c in cases]


@pytest.mark.parametrize("what,argv,code,fragment", _rows(CLI_CASES))
def test_cli(world, monkeypatch, capsys, what, argv, code, fragment):
    monkeypatch.setattr(checkpoint, "USER_DIR", world["tmp"] / "user-models")
    assert main(_fill(argv, world)) == code, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert fragment.format(**world) in (out if code == 0 else err)
    assert not (world["tmp"] / "r").exists() and not (world["tmp"] / "big").exists()  # a refused run leaves no folder
    if code:
        assert "Traceback" not in err and len(err.strip().splitlines()[-1]) < 400


LIBRARY_CASES = [
    # the library's public functions apply the same rules (validate.py), naming the parameter
    ("sample(model, 0)", lambda m: sample(m, 0), "n must be ≥ 1, got 0"),
    ("generate(top_k=0)", lambda m: generate(m, torch.zeros(1, 0, dtype=torch.long), top_k=0), "top_k must be ≥ 1"),
    ("generate(top_p=1.5)", lambda m: sample(m, 1, top_p=1.5), "top_p must be > 0 and ≤ 1, got 1.5"),
    ("generate(temperature=nan)", lambda m: sample(m, 1, temperature=float("nan")), "temperature must be > 0 and finite"),
    ("generate(seed=2**70)", lambda m: sample(m, 1, seed=2**70), "seed must be between 0 and 4294967295"),
    ("complete(n_samples=-2)", lambda m: complete(m, torch.zeros(1, 64, dtype=torch.long), 2, n_samples=-2),
     "n_samples must be ≥ 1, got -2"),
    ("TrainConfig(grad_accum=0)", lambda m: TrainConfig(grad_accum=0), "grad_accum must be ≥ 1, got 0"),
    ("TrainConfig(save_every=0)", lambda m: TrainConfig(save_every=0), "save_every must be ≥ 1, got 0"),
    ("TrainConfig(steps=0)", lambda m: TrainConfig(steps=0), "steps must be ≥ 1, got 0"),
    ("TrainConfig(batch_size=2.5)", lambda m: TrainConfig(batch_size=2.5), "batch_size must be a whole number"),
    ("TrainConfig(lr=nan)", lambda m: TrainConfig(lr=float("nan")), "lr must be > 0 and finite"),
    pytest.param("pick_device('cuda')", lambda m: pick_device("cuda"), "CUDA is not available", marks=NO_CUDA,
                 id="pick_device('cuda')"),
    ("a model config that is a list", lambda m: validate.model_config([1]), "must be a JSON object"),
    ("load_dataset(limit=0)", lambda m: data.load_dataset("digits", "test", limit=0), "limit must be ≥ 1, got 0"),
    ("ieat(n_permutations=2.5)", lambda m: bias.ieat(*np.eye(4)[None].repeat(4, 0), n_permutations=2.5),
     "n_permutations must be a whole number (≥ 1), got 2.5"),
    # checked before the model is touched (None would fail at once otherwise)
    ("bias_test(seed=-1)", lambda m: bias.bias_test(None, {}, seed=-1), "seed must be between 0 and 4294967295"),
    ("likelihood_test(n_bootstrap=-1)", lambda m: bias.likelihood_test(None, {}, n_bootstrap=-1),
     "n_bootstrap must be ≥ 0, got -1"),
]


@pytest.mark.parametrize("what,call,fragment", _rows(LIBRARY_CASES))
def test_library(what, call, fragment):
    with pytest.raises(ValueError) as info:
        call(tiny_model(height=8, width=8))
    assert fragment in str(info.value)


def test_a_diverging_run_stops_before_a_nan_reaches_a_checkpoint(tmp_path, capsys):
    from igpt_lite.train import train

    model = tiny_model(height=8, width=8)
    with torch.no_grad():
        model.ln_f.weight[0] = float("nan")
    grey = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    tokens = torch.randint(0, 8, (32, 64), generator=torch.Generator().manual_seed(0))
    with pytest.raises(FloatingPointError, match="training diverged at step 1 .*lower the learning rate"):
        train(model, grey, tokens, tokens, tmp_path / "run", TrainConfig(steps=4, batch_size=8), progress=False)
    assert step_dirs(tmp_path / "run") == []


def test_default_save_every_leaves_a_checkpoint_before_the_end():
    assert [TrainConfig(steps=s).checkpoint_every for s in (1, 4, 10, 500, 100_000)] == [1, 1, 2, 100, 500]
    assert TrainConfig(steps=10, save_every=3).checkpoint_every == 3


def test_user_models_never_silently_shadow_bundled_ones(world, monkeypatch, capsys):
    user = world["tmp"] / "user-models"
    monkeypatch.setattr(checkpoint, "USER_DIR", user)
    save_checkpoint(user / "mnist-small", tiny_model(height=8, width=8),
                    Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None]), overwrite=True)
    assert main(["info", "--model", "mnist-small"]) == 2
    err = capsys.readouterr().err
    assert "model name 'mnist-small' is ambiguous" in err and str(user / "mnist-small") in err
    assert main(["info", "--model", str(user / "mnist-small"), "--json"]) == 0  # its path always works


# ---------------- fault tests ----------------

def _train_cmd(out, *extra):
    return [sys.executable, "-m", "igpt_lite", *TRAIN, "--out", str(out), "--json", *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _wait_for_lock(out: Path, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lock = out / ".lock"
        if lock.exists() and lock.read_text().strip():
            return json.loads(lock.read_text())
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the first run never took the lock")


@pytest.mark.slow
def test_two_trains_on_one_folder_the_second_stops_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen(_train_cmd(out, "--steps", "400"), env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        owner = _wait_for_lock(out, first)
        assert owner["pid"] == first.pid
        assert main([*TRAIN, "--out", str(out), "--steps", "400"]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another training run (pid {first.pid} on " in err, err
        while not step_dirs(out):  # the same with --resume once it has a checkpoint
            assert first.poll() is None
            time.sleep(0.05)
        assert main([*TRAIN, "--out", str(out), "--steps", "400", "--resume"]) == 2
        assert "in use by another training run" in capsys.readouterr().err
    finally:
        first.kill()  # SIGKILL
        first.communicate()
    with run_lock(out):  # the kernel dropped the killed run's lock: the folder is free again
        assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_same_weights(tmp_path):
    args = ("--steps", "60", "--save-every", "4", "--seed", "1")
    whole = subprocess.run(_train_cmd(tmp_path / "whole", *args), env=ENV, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]

    out, rng, killed_at = tmp_path / "killed", random.Random(17), []

    def latest():
        return step_dirs(out)[-1].name if step_dirs(out) else ""

    for attempt in range(8):
        resume = ["--resume"] if step_dirs(out) else []
        proc = subprocess.Popen(_train_cmd(out, *args, *resume), env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if len(killed_at) < 3:
            before = latest()  # (old checkpoints are pruned: watch the latest one's name, not their count)
            while proc.poll() is None and latest() == before:  # it has made progress
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))  # then a random point: a step, an evaluation or a save
            if proc.poll() is None and latest() != "step-000060":  # a kill after the last save ends nothing
                proc.send_signal(signal.SIGKILL)
                killed_at.append(latest())
        stdout, stderr = proc.communicate()
        if proc.returncode == 0 or (proc.returncode == -signal.SIGKILL and latest() == "step-000060"):
            break
        assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    assert latest() == "step-000060" and len(killed_at) >= 2, killed_at
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(out)
    assert a.meta["training"]["step"] == b.meta["training"]["step"] == 60
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name
    assert b.meta["training"]["history"] == [{**h, "tokens_per_s": b.meta["training"]["history"][i]["tokens_per_s"]}
                                             for i, h in enumerate(a.meta["training"]["history"])]
    assert not list(out.glob(".tmp-*"))  # a checkpoint half-written at a kill is cleared on resume


def test_overwrites_leave_unrelated_files_alone(world, tmp_path, capsys):
    ck = load_checkpoint(world["model"])
    rms = checkpoint.Checkpoint(model=tiny_model(seed=3, height=8, width=8, norm="rms"), palette=ck.palette)
    hf = interop.export_hf(rms, tmp_path / "hf")
    (hf / "NOTES.md").write_text("my notes")
    save_checkpoint(tmp_path / "ours", ck.model, ck.palette)
    assert main(["export-hf", "--model", str(tmp_path / "ours"), str(hf)]) == 2  # refused without --overwrite
    capsys.readouterr()
    with pytest.raises(ValueError, match="cannot be written as a Hugging Face"):
        interop.export_hf(ck, hf, overwrite=True)  # a layernorm model: refused before a file is touched
    other = checkpoint.Checkpoint(model=tiny_model(seed=4, height=8, width=8, norm="rms"), palette=ck.palette)
    save_checkpoint(tmp_path / "other", other.model, other.palette)
    assert main(["export-hf", "--model", str(tmp_path / "other"), str(hf), "--overwrite"]) == 0
    assert (hf / "NOTES.md").read_text() == "my notes"  # was deleted with the whole folder
    back = interop.load_hf(hf)
    mine = other.model.state_dict()
    assert all(torch.equal(t, mine[name]) for name, t in back.model.state_dict().items())
    assert not list(hf.glob(".tmp-*"))

    imported = tmp_path / "imported"
    assert main(["import-hf", str(hf), str(imported)]) == 0
    (imported / "README.txt").write_text("mine")
    assert main(["import-hf", str(hf), str(imported), "--overwrite"]) == 0
    assert (imported / "README.txt").read_text() == "mine" and load_checkpoint(imported).config == back.config

    grid = tmp_path / "grid.png"
    grid.write_bytes(b"an older grid")
    assert main(["sample", "--model", str(world["model"]), "--n", "1", "--out", str(grid)]) == 2
    assert grid.read_bytes() == b"an older grid"
    assert main(["sample", "--model", str(world["model"]), "--n", "1", "--out", str(grid), "--overwrite"]) == 0
    assert Image.open(grid).size[0] >= 8 and [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_a_stale_lock_is_taken_over_and_the_run_folder_is_checked_first(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": 999_999, "host": "elsewhere"}))  # its owner is gone: no flock
    cfg = TrainConfig(steps=2, batch_size=16, warmup_steps=1, eval_every=2, eval_images=16)
    from conftest import tiny_config

    pretrain("digits", out, model_cfg=tiny_config(height=8, width=8), train_cfg=cfg, progress=False)
    assert [p.name for p in step_dirs(out)] == ["step-000001", "step-000002"]
    assert (out / ".lock").read_text() == ""  # released


# ---------------- hostile files, full disks, caches that lie ----------------
# Each case: the exact message (what to do) and nothing outside the run folder or the named output
# changed. The full-disk cases write to a small tmpfs the test mounts (root only; skipped elsewhere).

def _snapshot(folder: Path) -> dict:
    """Every file under `folder` (links not followed) and its bytes' hash."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


FULL = "no space left on the disk holding {path}: {what}; free space (or choose another place) and run again"


def test_a_full_disk_at_a_checkpoint_save_names_the_path_and_leaves_nothing_half_written(small_disk):
    disk = small_disk("1m")
    grey = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    model = tiny_model(height=8, width=8)
    old = save_checkpoint(disk / "ck", model, grey)
    fill_disk(disk, leave=4096)
    before = _snapshot(disk)
    with pytest.raises(OSError) as new:
        save_checkpoint(disk / "new", model, grey)
    assert str(new.value) == FULL.format(path=disk / "new", what="nothing was written")
    with pytest.raises(OSError) as over:
        save_checkpoint(old, tiny_model(seed=1, height=8, width=8), grey, overwrite=True)
    assert str(over.value) == FULL.format(path=old, what="nothing was changed there")
    assert _snapshot(disk) == before and not list(disk.rglob(".tmp-*"))  # the old checkpoint whole, no debris
    assert torch.equal(load_checkpoint(old).model.lm_head.weight, model.lm_head.weight)


def test_a_full_disk_mid_run_says_where_to_resume_from_and_resume_works(small_disk, capsys):
    from igpt_lite.train import train

    disk = small_disk("8m")
    grey = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    tokens = torch.randint(0, 8, (32, 64), generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(steps=4, batch_size=8, eval_every=2, save_every=2, eval_images=8)

    def fill_after_the_first_save(history, model):
        if history.last.step == 4:
            fill_disk(disk)

    with pytest.raises(OSError) as info:
        train(tiny_model(height=8, width=8), grey, tokens, tokens, disk / "run", cfg, progress=False,
              on_eval=fill_after_the_first_save)
    assert str(info.value) == (FULL.format(path=disk / "run" / "step-000004", what="nothing was written")
                                   + "; the checkpoint of step 4 was not saved, the last one is step-000002: "
                                     "continue with --resume")
    assert [p.name for p in step_dirs(disk / "run")] == ["step-000002"] and not list(disk.rglob(".tmp-*"))
    (disk / "filler").unlink()
    train(tiny_model(height=8, width=8), grey, tokens, tokens, disk / "run", cfg, resume=True, progress=False)
    assert load_checkpoint(disk / "run").meta["training"]["step"] == 4


def test_a_full_disk_in_import_hf_is_one_message_and_no_debris(world, small_disk, capsys):
    disk = small_disk("1m")
    fill_disk(disk, leave=8192)
    before = _snapshot(disk)
    assert main(["import-hf", str(world["hf"]), str(disk / "imported")]) == 2
    err = capsys.readouterr().err
    assert err == f"igpt-lite import-hf: error: {FULL.format(path=disk / 'imported', what='nothing was written')}\n"
    assert _snapshot(disk) == before and sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_full_disk_while_the_token_cache_is_written_costs_speed_not_the_run(small_disk):
    """Was a SIGBUS (the cache was written through a memmap) and a .tmp file left on the full disk."""
    from igpt_lite.data.tokens import encoded_split, token_cache_path

    disk = small_disk("1m")
    grey = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    (disk / "tokens").mkdir()
    fill_disk(disk, leave=8192)  # room for the folder, not the tokens
    path = token_cache_path("digits", "train", grey, 8, cache_dir=disk / "tokens")
    with pytest.warns(UserWarning) as caught:
        got = encoded_split("digits", "train", grey, 8, cache_dir=disk / "tokens")
    assert str(caught[0].message) == (
        f"cannot write the token cache {path} ({FULL.format(path=path, what='nothing was written')}); encoding in "
        "memory instead (set IGPT_LITE_CACHE to a writable folder)")
    assert np.array_equal(got, grey.encode(data.load_dataset("digits", "train", resolution=8).images).numpy())
    assert [p.name for p in disk.rglob("*") if p.is_file()] == ["filler"]  # no half-written cache, no .tmp


def test_a_zeroed_token_cache_is_rebuilt_not_trained_on(world, monkeypatch, tmp_path, capsys):
    """Was: zeroed tokens (header intact) trained silently to 0.29 bits/dim against 1.96."""
    from igpt_lite.data.tokens import token_cache_path

    monkeypatch.setenv("IGPT_LITE_CACHE", str(tmp_path / "cache"))
    argv = [*TRAIN, "--steps", "2", "--json", "--seed", "3"]
    assert main([*argv, "--out", str(tmp_path / "clean")]) == 0, capsys.readouterr().err
    clean = json.loads(capsys.readouterr().out)
    palette = load_checkpoint(tmp_path / "clean").palette
    for split in ("train", "val"):
        cache = np.lib.format.open_memmap(token_cache_path("digits", split, palette, 8), mode="r+")
        cache[:] = 0
        cache.flush()
        del cache
    with pytest.warns(UserWarning, match=r"does not match its checksum \(it changed after it was written\); "
                                         "rebuilding it"):
        assert main([*argv, "--out", str(tmp_path / "again")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["val_bpd"] == clean["val_bpd"] and again["baseline_bpd"] == clean["baseline_bpd"]


def test_a_token_cache_cut_short_under_a_run_is_an_error_naming_it(tmp_path):
    """Was a SIGBUS: the run read the cache through a memmap whose pages had gone."""
    from igpt_lite.data.tokens import encoded_split, token_batch

    grey = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    tokens = encoded_split("digits", "train", grey, 8, cache_dir=tmp_path)
    want = token_batch(tokens, torch.tensor([0, 1000]))
    assert torch.equal(want, torch.from_numpy(np.asarray(tokens[[0, 1000]], dtype=np.int64)))
    size = tokens.offset + tokens.nbytes
    os.truncate(tokens.filename, 4096)
    with pytest.raises(OSError, match=re.escape(
            f"token cache {tokens.filename} is 4096 bytes, shorter than when it was opened ({size}): it was changed "
            "while in use; delete it and run again (with --resume to continue a run)")):
        token_batch(tokens, torch.tensor([0, 1000]))


def test_stdout_on_a_full_disk_or_a_closed_pipe_ends_without_a_traceback(tmp_path):
    cmd = [sys.executable, "-m", "igpt_lite", "info", "--json"]
    with open("/dev/full", "w") as full:  # every write: no space left on device
        done = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, env=ENV)
    assert done.returncode == 2 and done.stderr == (
        "igpt-lite info: error: the result could not be written to stdout (No space left on device); the work "
        "itself is done\n")
    reader = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    reader.stdout.close()  # `| head` that has read enough
    assert reader.wait() == 0 and reader.stderr.read() == b""


def _grey_palette_file(path: Path, centers) -> str:
    path.write_text(json.dumps({"centers": centers}))
    return str(path)


HF_DAMAGE = [  # (what, file, edit of its JSON, message fragment)
    ("clusters that are a number", "preprocessor_config.json", lambda d: {**d, "clusters": 5},
     'preprocessor_config.json: "clusters" must be a list of [r, g, b] colour centres, got int 5'),
    ("a NaN cluster (imported, sampled black)", "preprocessor_config.json",
     lambda d: {**d, "clusters": [[float("nan")] * 3] + d["clusters"][1:]},
     "preprocessor_config.json: its clusters are not a colour palette (palette centre 0 is [nan, nan, nan]: "
     "centres must be finite numbers in [-1, 1]"),
    ("a cluster out of range", "preprocessor_config.json",
     lambda d: {**d, "clusters": d["clusters"][:-1] + [[3.0, 0.0, 0.0]]},
     "palette centre 7 is [3.0, 0.0, 0.0]: centres must be finite numbers in [-1, 1]"),
    ("resid_pdrop that is text", "config.json", lambda d: {**d, "resid_pdrop": "x"},
     "resid_pdrop must be ≥ 0 and finite, got 'x'"),
    ("a size with a null height", "preprocessor_config.json", lambda d: {**d, "size": {"height": None, "width": 8}},
     "preprocessor_config.json size height must be a whole number (≥ 1), got None"),
]


@pytest.mark.parametrize("what,file,edit,fragment", _rows(HF_DAMAGE))
def test_damaged_hugging_face_metadata_is_named_not_a_traceback(world, tmp_path, capsys, what, file, edit, fragment):
    import shutil

    hf = Path(shutil.copytree(world["hf"], tmp_path / "hf"))
    (hf / file).write_text(json.dumps(edit(json.loads((hf / file).read_text()))))
    before = _snapshot(tmp_path)
    assert main(["import-hf", str(hf), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(tmp_path) == before


def test_a_truncated_hugging_face_weights_file_is_named(world, tmp_path, capsys):
    import shutil

    hf = Path(shutil.copytree(world["hf"], tmp_path / "hf"))
    weights = hf / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    assert main(["import-hf", str(hf), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{weights}: cannot be read as safetensors" in err and "the file is truncated or corrupt: download or save " \
           "it again" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("centers,why", [([[0.0], [float("nan")], [1.0]], "palette centre 1 is [nan]"),
                                         ([[0.0], [float("inf")]], "palette centre 1 is [inf]"),
                                         ([[-1.0], [2.0]], "palette centre 1 is [2.0]")])
def test_a_nan_infinite_or_out_of_range_palette_is_refused_wherever_it_enters(world, tmp_path, capsys, centers, why):
    """Was: a NaN centre in --palette trained with baseline 0.0 bits/dim."""
    bad = _grey_palette_file(tmp_path / "bad.json", centers)
    assert main([*TRAIN, "--out", str(tmp_path / "r"), "--steps", "2", "--palette", bad]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not a valid palette file ({why}: centres must be finite numbers in [-1, 1]" in err, err
    assert not (tmp_path / "r").exists()
    import shutil

    ck = Path(shutil.copytree(world["model"], tmp_path / "ck"))
    _grey_palette_file(ck / "palette.json", centers)  # a checkpoint's own palette file
    assert main(["sample", "--model", str(ck), "--n", "1"]) == 2
    assert f"{ck / 'palette.json'}: not a valid palette file ({why}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=re.escape(why)):
        Palette(np.asarray(centers, dtype=np.float32))


def _resumable_run(tmp_path) -> Path:
    assert main([*TRAIN, "--out", str(tmp_path / "run"), "--steps", "2", "--json"]) == 0
    return step_dirs(tmp_path / "run")[-1]


@pytest.mark.parametrize("damage,fragment", [
    (lambda t: (t / "state.json").write_text("{not json"), "state.json: not a valid training state (Expecting"),
    (lambda t: (t / "state.json").write_text(json.dumps({"history": [], "running_loss": 1.0, "param_groups": []})),
     "state.json: not a valid training state (no step)"),
    (lambda t: (t / "optimizer.safetensors").write_bytes((t / "optimizer.safetensors").read_bytes()[:100]),
     "optimizer.safetensors: cannot be read as safetensors"),
], ids=["state.json not JSON", "state.json without step", "optimizer.safetensors truncated"])
def test_a_damaged_training_state_is_named_on_resume(tmp_path, capsys, damage, fragment):
    last = _resumable_run(tmp_path)
    damage(last / "training")
    capsys.readouterr()
    before = _snapshot(tmp_path / "run")
    assert main([*TRAIN, "--out", str(tmp_path / "run"), "--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{last / 'training'}/{fragment}" in err, err
    assert err.strip().endswith(f"{last} cannot be resumed from: move it out of the run folder to resume from the "
                                "checkpoint before it, or start a new run")
    assert _snapshot(tmp_path / "run") == {k: v for k, v in before.items() if k != ".lock"} | {
        ".lock": _snapshot(tmp_path / "run")[".lock"]}


def _idx_gz(path: Path, dims: tuple, body: bytes) -> None:
    import gzip
    import struct

    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(struct.pack(">I", 0x0800 + len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + body)


@pytest.mark.parametrize("dims,extra,fragment", [
    ((10, 28, 28), 200_000_000, "train-images-idx3-ubyte.gz: 7,857 bytes where its header (10×28×28) needs 7,856; "
                                "the file is longer than its header says"),
    ((4_000_000_000, 28, 28), 0, "train-images-idx3-ubyte.gz: its header promises 4000000000×28×28 = "
                                 "3,136,000,000,000 bytes, more than ten times the official files (470,400,000)"),
], ids=["a body that inflates far past its header", "a header promising terabytes"])
def test_a_gzip_bomb_in_an_idx_file_is_refused_before_it_is_inflated(tmp_path, dims, extra, fragment):
    """Was: a 3 MB file inflating to 3 GB made `data check` allocate 6.5 GB before any header check."""
    import tracemalloc

    folder = tmp_path / "mnist"
    folder.mkdir()
    _idx_gz(folder / "train-images-idx3-ubyte.gz", dims, bytes(7840 + extra))
    _idx_gz(folder / "train-labels-idx1-ubyte.gz", (10,), bytes(10))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=re.escape(fragment)):
            data.load_dataset("mnist-idx", "train", root=tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6  # bytes: what the header promised, not what the stream holds


def test_outputs_that_are_links_files_or_the_input_are_refused(world, tmp_path, monkeypatch, capsys):
    import shutil

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    grey = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    model = tiny_model(height=8, width=8)
    # a checkpoint folder planted as a link is not written through
    (tmp_path / "link").symlink_to(mine)
    with pytest.raises(FileExistsError, match=re.escape(f"{tmp_path / 'link'} is a symbolic link; it is not written "
                                                        "through: remove the link, or choose another path")):
        save_checkpoint(tmp_path / "link", model, grey, overwrite=True)
    # ... nor a run's next step folder
    run = tmp_path / "run"
    run.mkdir()
    (run / "step-000002").symlink_to(mine)
    assert main([*TRAIN, "--out", str(run), "--steps", "2"]) == 2
    assert f"{run / 'step-000002'} is a symbolic link; it is not written through" in capsys.readouterr().err
    assert _snapshot(mine) == {"notes.txt": _snapshot(mine)["notes.txt"]} and (mine / "notes.txt").read_text() == "my notes"
    # the models folder ($IGPT_LITE_MODELS) that is a file: was "[Errno 17] File exists"
    monkeypatch.setattr(checkpoint, "USER_DIR", tmp_path / "models-file")
    (tmp_path / "models-file").write_text("not a folder")
    assert main(["import-hf", str(world["hf"])]) == 2
    assert capsys.readouterr().err == (f"igpt-lite import-hf: error: {tmp_path / 'models-file'} is a file, not a folder, "
                                       f"so {tmp_path / 'models-file' / 'hf'} cannot be written there; choose another "
                                       "path\n")
    # an output that is the input
    hf = Path(shutil.copytree(world["hf"], tmp_path / "hf"))
    before = _snapshot(hf)
    assert main(["import-hf", str(hf), str(hf), "--overwrite"]) == 2
    assert f"OUT {hf} is the folder being imported; give the checkpoint another folder" in capsys.readouterr().err
    rms = Path(shutil.copytree(world["tmp"] / "rms", tmp_path / "rms"))
    ours = _snapshot(rms)
    assert main(["export-hf", "--model", str(rms), str(rms), "--overwrite"]) == 2
    assert f"{rms} holds the model being exported ({rms}); writing the Hugging Face files there would overwrite its " \
           "own" in capsys.readouterr().err
    assert _snapshot(hf) == before and _snapshot(rms) == ours
    # the data folder as the run folder
    folder = tmp_path / "pictures"
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(folder / c / f"{i}.png")
    pictures = _snapshot(folder)
    for out in (folder, folder / "run"):
        assert main(["train", "--data", f"folder:{folder}", "--preset", "tiny", "--resolution", "8", "--steps", "1",
                     "--out", str(out)]) == 2
        assert "the run would write its checkpoints among the images; choose an output folder outside it" in \
            capsys.readouterr().err
    assert _snapshot(folder) == pictures and not (folder / "run").exists()


def test_resume_after_a_folder_datasets_files_changed_is_refused(tmp_path, capsys):
    folder = tmp_path / "pictures"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / c / f"{i}.png")
    argv = ["train", "--data", f"folder:{folder}", "--preset", "tiny", "--resolution", "8", "--batch-size", "4",
            "--out", str(tmp_path / "run")]
    assert main([*argv, "--steps", "2", "--json"]) == 0, capsys.readouterr().err
    Image.new("RGB", (8, 8), (255, 255, 255)).save(folder / "a" / "new.png")
    capsys.readouterr()
    assert main([*argv, "--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {tmp_path / 'run'}: data: the files of folder:{folder} changed since the run started " \
           "(names, sizes or modification times:" in err, err


def test_ctrl_c_says_resume_only_when_there_is_a_checkpoint(tmp_path, monkeypatch, capsys):
    import igpt_lite.train.loop as loop

    evaluate = loop.evaluate_bits_per_dim
    calls = []

    def interrupt_at(n):
        def fake(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return evaluate(*args, **kwargs)
        return fake

    monkeypatch.setattr(loop, "evaluate_bits_per_dim", interrupt_at(1))  # the first evaluation: before any save
    assert main([*TRAIN, "--out", str(tmp_path / "a"), "--steps", "4", "--save-every", "2"]) == 130
    assert ("igpt-lite train: interrupted before the first checkpoint: nothing to resume; run the same command again "
            "to start over\n") in capsys.readouterr().err
    calls.clear()
    monkeypatch.setattr(loop, "evaluate_bits_per_dim", interrupt_at(2))  # after step 2 was saved
    assert main([*TRAIN, "--out", str(tmp_path / "b"), "--steps", "4", "--save-every", "2"]) == 130
    assert "igpt-lite train: interrupted (continue with --resume)\n" in capsys.readouterr().err


def test_a_folder_dataset_with_a_non_utf8_name_trains(tmp_path, capsys):
    """Was: a codec message naming no path."""
    raw = os.fsencode(tmp_path) + b"/pictures-\xff"
    for c in (b"a", b"b\xfe"):
        os.makedirs(raw + b"/" + c)
        for i in range(6):
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
                os.fsdecode(raw + b"/" + c + b"/%d.png" % i))
    assert main(["train", "--data", f"folder:{os.fsdecode(raw)}", "--preset", "tiny", "--resolution", "8",
                 "--batch-size", "4", "--steps", "1", "--out", str(tmp_path / "run"), "--json"]) == 0, \
        capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["steps"] == 1


def test_a_lock_planted_as_a_symlink_is_refused_and_its_target_left_alone(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's notes")
    out = tmp_path / "runs" / "shared"
    out.mkdir(parents=True)
    (out / ".lock").symlink_to(notes)
    assert main([*TRAIN, "--out", str(out), "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert ".lock is a symbolic link; a run folder's lock must be a plain file" in err, err
    assert notes.read_text() == "the user's notes" and not step_dirs(out)
    os.mkfifo(out / "fifo-lock")
    (out / ".lock").unlink()
    os.rename(out / "fifo-lock", out / ".lock")  # not a file at all: refused without blocking on it
    assert main([*TRAIN, "--out", str(out), "--steps", "5"]) == 2
    assert ".lock is not a plain file" in capsys.readouterr().err


# ---------------- damaged metadata, sizes at the edges, caches that lie ----------------
# A checkpoint's config.json, a run's, a probe table and the feature cache are read with every
# field typed (the file and the field named); a config or flag whose model cannot fit is refused
# from its memory estimate before anything is allocated (the estimate's machine is fixed at 16 GB
# free of 32 GB here, so the rows do not depend on the machine running them).

from igpt_lite import memory  # noqa: E402
from igpt_lite.features import extract_features  # noqa: E402
from igpt_lite.model import GPT, GPTConfig  # noqa: E402
from igpt_lite.probe import ProbeTable, load_probe_report, probe_report  # noqa: E402

DAMAGED = {  # folder name -> what is done to the checkpoint's config.json
    "training-oops": lambda c: {**c, "training": "oops"},
    "dataset-123": lambda c: {**c, "dataset": 123},
    "classes-5": lambda c: {**c, "class_names": 5},
    "history-rows": lambda c: {**c, "training": {"step": 2, "history": [{"step": "two"}]}},
    "layers-true": lambda c: {**c, "model": {**c["model"], "n_layer": True}},
    "dropout-2": lambda c: {**c, "model": {**c["model"], "dropout": 2.0}},
    "bias-no": lambda c: {**c, "model": {**c["model"], "bias": "no"}},
    "layers-1e8": lambda c: {**c, "model": {**c["model"], "n_layer": 10**8}},
    "side-30000": lambda c: {**c, "model": {**c["model"], "height": 30000, "width": 30000}},
    "mlp-1e8": lambda c: {**c, "model": {**c["model"], "mlp_ratio": 10**8}},
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    grey = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    for name, edit in {**DAMAGED, "run/step-000002": lambda c: [c]}.items():
        folder = save_checkpoint(tmp / name, tiny_model(height=8, width=8), grey,
                                 {"dataset": "digits", "training": {"step": 2}})
        (folder / "config.json").write_text(json.dumps(edit(json.loads((folder / "config.json").read_text()))))
    return tmp


@pytest.fixture
def sixteen_gb(monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda device="cpu": (16 * 10**9, 32 * 10**9))


def _bad_config(name, field_message):
    return f"{{h}}/{name}/config.json: not a valid igpt-lite config ({field_message}); the checkpoint is damaged"


MACHINE = "but this machine has 16.0 GB free of 32.0 GB"
HOSTILE_CASES = [
    # --- damaged metadata: the file and the field named, exit 2, no traceback (were tracebacks) ---
    ("'training': 'oops'", ["info", "--model", "{h}/training-oops"],
     _bad_config("training-oops", "training must be a JSON object (step, config, history), got 'oops'")),
    ("'dataset': 123", ["sample", "--model", "{h}/dataset-123", "--n", "1"],
     _bad_config("dataset-123", "dataset must be text, got 123")),
    ("'class_names': 5", ["info", "--model", "{h}/classes-5"],
     _bad_config("classes-5", "class_names must be a list of names, got 5")),
    ("a history row of the wrong type", ["info", "--model", "{h}/history-rows"],
     _bad_config("history-rows", "training.history[0].step must be a whole number (≥ 0), got 'two'")),
    ("a bool where a size is expected", ["info", "--model", "{h}/layers-true"],
     _bad_config("layers-true", "n_layer must be a whole number (≥ 1), got True")),
    ("dropout 2", ["sample", "--model", "{h}/dropout-2", "--n", "1"],
     _bad_config("dropout-2", "dropout must be ≥ 0 and below 1, got 2.0")),
    ("'bias': 'no'", ["info", "--model", "{h}/bias-no"], _bad_config("bias-no", "bias must be true or false, got 'no'")),
    ("a run's config.json that is a list", [*TRAIN, "--out", "{h}/run", "--steps", "4", "--resume"],
     "{h}/run/step-000002/config.json: not a valid igpt-lite config (expected a JSON object, got a list)"),
    # --- configs too big for the machine: refused from the estimate, before a weight is read (were hangs);
    # the parameter counts are the tiny model's extrapolated from real ones (1 and 2 layers, 8×8 and 8×9, ratio 1 and 2) ---
    ("a config with n_layer 1e8", ["info", "--model", "{h}/layers-1e8"],
     "{h}/layers-1e8/config.json: the model needs about 5,081.6 GB to load (1,270,400,002,656 parameters), "
     + MACHINE + ": the config (layers, width, image size, mlp_ratio) is not one this machine can hold"),
    ("a config with height = width = 30000", ["sample", "--model", "{h}/side-30000", "--n", "1"],
     "{h}/side-30000/config.json: the model needs about 115.2 GB to load (28,800,026,016 parameters)"),
    ("a config with mlp_ratio 1e8", ["sample", "--model", "{h}/mlp-1e8", "--n", "1"],
     "{h}/mlp-1e8/config.json: the model needs about 1,664.0 GB to load (416,000,011,424 parameters)"),
    # --- flags too big: refused before the data is loaded (were out-of-memory tracebacks or hangs) ---
    ("train --width 1000000", [*TRAIN, "--out", "{tmp}/r", "--width", "1000000"],
     "the model needs about 384,067.3 GB to train with batches of 8 (24,000,109,000,000 parameters: "
     "384,001.7 GB of weights with gradients and optimizer state, 65.5 GB of activations), " + MACHINE
     + ": choose fewer layers, a smaller width, image size or batch size (or turn on activation checkpointing)"),
    ("train --layers 100000", [*TRAIN, "--out", "{tmp}/r", "--layers", "100000"],
     "the model needs about 125.2 GB to train with batches of 8 (1,270,402,656 parameters"),
    ("train --resolution 256", ["train", "--data", "digits", "--resolution", "256", "--out", "{tmp}/r"],
     "the model needs about 34.6 GB to train with batches of 32 (4,395,456 parameters: 70 MB of weights"),
    ("sample --n 1000000000", ["sample", "--model", "{model}", "--n", "1000000000"],
     "to sample 1,000,000,000 images at once (28,064 parameters: 0 MB of weights, 34,304.0 GB of activations), "
     + MACHINE + ": sample fewer images at once"),
    ("complete --samples 100000000", ["complete", "--model", "{model}", "--samples", "100000000"],
     "to sample 800,000,000 images at once"),
]


@pytest.mark.parametrize("what,argv,fragment", _rows(HOSTILE_CASES))
def test_hostile_files_and_sizes(world, hostile, sixteen_gb, capsys, what, argv, fragment):
    before = {p: p.stat().st_mtime_ns for p in hostile.rglob("*")}
    t0 = time.perf_counter()
    fill = {k: str(v) for k, v in {**world, "h": hostile}.items()}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert fragment.format(**fill) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert time.perf_counter() - t0 < 20  # refused, not hung
    assert {p: p.stat().st_mtime_ns for p in hostile.rglob("*")} == before  # nothing touched
    assert not (world["tmp"] / "r").exists()


@pytest.mark.parametrize("call,message", [
    (lambda: TrainConfig(betas=(0.9, 1.0)), r"betas must be two numbers ≥ 0 and below 1 \(AdamW's decay rates\), "
                                            r"got \(0\.9, 1\.0\)"),
    (lambda: TrainConfig(betas=(float("nan"), 0.9)), "betas must be ≥ 0 and finite, got nan"),
    (lambda: GPTConfig(mask_rate=0), "mask_rate must be > 0 and ≤ 1, got 0"),
    (lambda: GPTConfig(n_layer=2.0), r"n_layer must be a whole number \(≥ 1\), got 2\.0"),
    (lambda: GPTConfig(norm_eps=float("inf")), "norm_eps must be ≥ 0 and finite, got inf"),
])
def test_settings_at_the_edges_of_their_ranges(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_parameter_count_is_the_models_own():
    for kw in (dict(), dict(norm="rms", bias=False), dict(mlp_ratio=3, height=5, width=7, n_colors=11),
               dict(bias=False, n_layer=3)):
        cfg = GPTConfig(**{**dict(n_layer=2, n_head=2, n_embd=16), **kw})
        assert memory.parameter_count(cfg) == GPT(cfg).num_params(), kw
        assert memory.estimate_memory(cfg).bytes == 4 * GPT(cfg).num_params()


def test_a_huge_config_is_refused_by_the_library_before_it_is_built(sixteen_gb):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"the model needs about .* GB to load .* " + MACHINE):
        GPT(GPTConfig(n_layer=10**8))
    with pytest.raises(ValueError, match=r"to sample 100,000,000 images at once"):
        sample(tiny_model(height=8, width=8), 10**8)
    with pytest.raises(ValueError, match=r"to train with batches of 32 "):
        pretrain("digits", Path("/nonexistent/never-made"), model_cfg=GPTConfig(n_layer=100_000, n_embd=32, n_head=2),
                 train_cfg=TrainConfig(steps=1))
    assert time.perf_counter() - t0 < 5 and not Path("/nonexistent/never-made").exists()


def test_config_and_weights_of_different_sizes_are_refused_before_building(hostile, tmp_path):
    folder = save_checkpoint(tmp_path / "m", tiny_model(height=8, width=8),
                             Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None]))
    config = json.loads((folder / "config.json").read_text())
    config["model"]["n_layer"] = 5000  # fits in memory, but not these weights: was built, then refused
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model\.safetensors: weights do not match .*config\.json \(it holds 28,064 "
                                         r"weights, the config describes 63,522,656\): config and weights come from"):
        load_checkpoint(folder)


def _probe_file(tmp_path, edit):
    rows = [{"kind": "trained", "layer": "embed", "depth": 0, "val_acc": 0.5, "test_acc": 0.5, "test_stderr": 0.05},
            {"kind": "pixels", "layer": "pixels", "val_acc": 0.3, "test_acc": 0.3, "test_stderr": 0.05}]
    stored = edit({"format": "f", "models": ["m"], "dataset": "digits", "settings": {}, "steps": None,
                   "model": None, "seconds": 1.0, "created": "2026-01-01", "summary": {}, "table": rows})
    (tmp_path / "probe.json").write_text(json.dumps(stored))
    return tmp_path / "probe.json"


WANTED = {"format": "f", "models": ["m"], "dataset": "digits", "settings": {}, "steps": None}


@pytest.mark.parametrize("edit,message", [
    (lambda s: {**s, "table": [{**s["table"][0], "test_acc": "x"}]}, "row 0: column 'test_acc' must be a finite number"),
    (lambda s: {**s, "table": [{**s["table"][0], "depth": 1.5}]}, "row 0: column 'depth' must be a whole number"),
    (lambda s: {**s, "table": [{**s["table"][0], "kind": "mine"}]}, "column 'kind' must be one of trained"),
    (lambda s: {**s, "table": [{**s["table"][0], "val_acc": None}]}, "row 0: a row without 'val_acc'"),
    (lambda s: {**s, "table": [s["table"][1]]}, "no 'trained' rows in the table"),
    (lambda s: {**s, "table": {"rows": 1}}, "a table must be a list of rows, got dict"),
    (lambda s: {**s, "created": 5}, "created must be text, got 5"),
    (lambda s: [s], "expected a JSON object, got a list"),
])
def test_a_damaged_probe_table_is_named_not_drawn(tmp_path, edit, message):
    path = _probe_file(tmp_path, edit)
    with pytest.raises(ValueError, match=f"{path}: not a readable probe report .*{message}"):
        load_probe_report(path, WANTED)


def test_a_probe_table_with_an_empty_summary_is_read_from_its_rows(tmp_path):
    report = load_probe_report(_probe_file(tmp_path, lambda s: s), WANTED)  # the stored summary is {}
    assert report.summary.trained.layer == "embed" and report.summary.margins["pixels"].points == pytest.approx(20)
    assert ProbeTable.from_records(report.table.to_records()).to_records() == report.table.to_records()


def test_a_feature_cache_that_lies_is_recomputed(tmp_path):
    model = tiny_model(height=8, width=8)
    tokens = torch.randint(0, 8, (6, 64), generator=torch.Generator().manual_seed(0))
    fresh = extract_features(model, tokens, ["embed", "blocks.1"])
    extract_features(model, tokens, ["embed", "blocks.1"], cache_dir=tmp_path)
    (cached,) = tmp_path.glob("features-*.npz")
    whole = cached.read_bytes()
    for damage in (whole[: len(whole) // 2],  # truncated: was BadZipFile
                   whole[:-40] + b"\0" * 40):  # its directory zeroed
        cached.write_bytes(damage)
        again = extract_features(model, tokens, ["embed", "blocks.1"], cache_dir=tmp_path)
        assert all(np.array_equal(again[k], fresh[k]) for k in fresh)
        assert cached.read_bytes() == whole  # rewritten whole
    np.savez(cached, embed=np.zeros((5, 16), np.float32), **{"blocks.1": np.zeros((6, 16), np.float32)})
    cached.rename(cached)  # savez wrote the same name: a cache of the wrong shape
    again = extract_features(model, tokens, ["embed", "blocks.1"], cache_dir=tmp_path)
    assert all(np.array_equal(again[k], fresh[k]) for k in fresh)


def test_an_unwritable_cache_costs_time_not_the_result(tmp_path, monkeypatch, grey_palette):
    blocked = tmp_path / "a-file"
    blocked.write_text("a file where the cache folder would go")  # (root ignores permissions: this fails for all)
    model = tiny_model(height=8, width=8)
    tokens = torch.randint(0, 8, (4, 64), generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="a-file/features: cannot keep features there .*computed without caching"):
        feats = extract_features(model, tokens, ["embed"], cache_dir=blocked / "features")
    assert np.array_equal(feats["embed"], extract_features(model, tokens, ["embed"])["embed"])
    folder = save_checkpoint(tmp_path / "m", model, grey_palette, {"dataset": "digits"})
    report = probe_report(folder, limit=20, Cs=[1.0], cache_dir=blocked)
    assert report.source == "computed" and report.path is None
    assert report.not_kept.startswith(f"{blocked}") and "cannot be written" in report.not_kept
    assert blocked.read_text() == "a file where the cache folder would go"
