"""torchrun: two processes (gloo on CPU) train to the same weights as one process on the same
global batches."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from igpt_lite.checkpoint import load_checkpoint

RUN = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    from igpt_lite.data import load_dataset
    from igpt_lite.model import GPT, GPTConfig
    from igpt_lite.palette import Palette
    from igpt_lite.train import TrainConfig, train

    palette = Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])
    tokens = palette.encode(load_dataset("digits", "train", limit=256).images)
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=2, n_head=2, n_embd=32))
    cfg = TrainConfig(steps=4, batch_size=8, grad_accum=2, warmup_steps=1, eval_every=4, save_every=4,
                      eval_images=16)
    train(model, palette, tokens, tokens[:16], sys.argv[1], cfg, progress=False)
""")


@pytest.mark.slow
def test_two_processes_under_torchrun_match_one_process(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for args in ([], ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]):
        out = tmp_path / ("ddp" if args else "single")
        done = subprocess.run([sys.executable, *args, str(script), str(out)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = load_checkpoint(tmp_path / "single").model, load_checkpoint(tmp_path / "ddp").model
    # Half-batch means summed in another order differ in the last bits, and Adam turns a tiny gradient
    # whose sign flips into a full-size step, so a few elements may differ; without the gradient
    # all-reduce nearly all of them do.
    diff = torch.cat([(a - b).abs().flatten() for a, b in zip(one.state_dict().values(), two.state_dict().values())])
    assert (diff > 1e-5).float().mean() < 0.01, f"{(diff > 1e-5).float().mean():.3f} of the weights differ"
