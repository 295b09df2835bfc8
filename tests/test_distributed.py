"""torchrun: two processes (gloo on CPU) train to the same weights as one process on the same
global batches, with DDP and with FSDP2 (sharded weights and optimizer, activation checkpointing);
an FSDP run killed and resumed ends exactly where an uninterrupted one does."""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from igpt_lite.checkpoint import load_checkpoint, load_training_state, step_dirs

REPO = Path(__file__).resolve().parent.parent
RUN = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from igpt_lite.data import load_dataset
    from igpt_lite.model import GPT, GPTConfig
    from igpt_lite.palette import Palette
    from igpt_lite.train import TrainConfig, train

    out, steps, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    palette = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    tokens = palette.encode(load_dataset("digits", "train", limit=256).images)
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=2, n_head=2, n_embd=32))
    cfg = TrainConfig(steps=steps, batch_size=8, grad_accum=2, warmup_steps=1, eval_every=2, save_every=2,
                      eval_images=16, fsdp=mode.startswith("fsdp"), activation_checkpointing=mode.startswith("fsdp"))
    train(model, palette, tokens, tokens[:16], out, cfg, progress=False, resume=mode.endswith("resume"))
    # one line per process, each written whole (two processes' prints interleaved mid-line)
    sys.stdout.write(f"parameters: {type(model.wte.weight).__name__}\\n")
    sys.stdout.flush()
""")


def _run(tmp_path, name, steps, mode, processes):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    # the worktree's igpt_lite, not an installed copy: the script's own folder comes first on sys.path
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else []
    done = subprocess.run([sys.executable, *launch, str(script), str(tmp_path / name), str(steps), mode], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("parameters: DTensor" in done.stdout) == (mode.startswith("fsdp") and processes > 1), done.stdout
    return tmp_path / name


def _weights(run):
    return load_checkpoint(run).model.state_dict()


def _share_differing(one, two):
    # Half-batch means summed in another order differ in the last bits, and Adam turns a tiny gradient
    # whose sign flips into a full-size step, so a few elements may differ; without the gradient
    # reduction nearly all of them do.
    diff = torch.cat([(a - b).abs().flatten() for a, b in zip(one.values(), two.values())])
    return (diff > 1e-5).float().mean().item()


@pytest.mark.slow
def test_two_processes_under_torchrun_match_one_process(tmp_path):
    one = _weights(_run(tmp_path, "single", 4, "plain", 1))
    two = _weights(_run(tmp_path, "ddp", 4, "plain", 2))
    assert _share_differing(one, two) < 0.01, f"{_share_differing(one, two):.3f} of the weights differ"


@pytest.mark.slow
def test_fsdp_matches_one_process_and_resumes_exactly(tmp_path):
    single = _run(tmp_path, "single", 4, "plain", 1)
    fsdp = _run(tmp_path, "fsdp", 4, "fsdp", 2)
    one, two = _weights(single), _weights(fsdp)
    assert list(one) == list(two)  # the same checkpoint format: whole tensors under the plain names
    assert _share_differing(one, two) < 0.01, f"{_share_differing(one, two):.3f} of the weights differ"
    # the optimizer state is saved whole, in the unsharded layout, with the same Adam moments
    (osd1, state1), (osd2, state2) = (load_training_state(step_dirs(r)[-1] / "training") for r in (single, fsdp))
    assert osd1["param_groups"] == osd2["param_groups"] and state1["step"] == state2["step"] == 4
    for i, moments in osd1["state"].items():
        for k, v in moments.items():
            assert v.shape == osd2["state"][i][k].shape and torch.allclose(v, osd2["state"][i][k], atol=1e-5), (i, k)

    # the kill: everything after the step-2 checkpoint is lost; resumed, the run ends with the same
    # weights as the uninterrupted sharded one, bit for bit
    shutil.copytree(fsdp, tmp_path / "resumed")
    shutil.rmtree(step_dirs(tmp_path / "resumed")[-1])
    assert [p.name for p in step_dirs(tmp_path / "resumed")] == ["step-000002"]
    _run(tmp_path, "resumed", 4, "fsdp-resume", 2)
    for (name, a), b in zip(two.items(), _weights(tmp_path / "resumed").values()):
        assert torch.equal(a, b), name
