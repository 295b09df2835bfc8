"""Recipes of the bundled models (data/models/<name>/) and their export from a training run."""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import BUNDLED_DIR, load_checkpoint, save_checkpoint
from ..model import GPTConfig
from .config import TrainConfig


def _canvas(n_layer: int, n_embd: int, steps: int) -> dict:
    """A recipe on mnist-canvas (32×32, 8 grey levels, 4 heads, batch 16, lr 2e-3 with 100 warm-up
    steps and a cosine to 1e-4, every 100th step evaluated and kept)."""
    return dict(
        dataset="mnist-canvas",
        model=GPTConfig(n_colors=8, height=32, width=32, n_layer=n_layer, n_head=4, n_embd=n_embd),
        train=TrainConfig(steps=steps, batch_size=16, lr=2e-3, min_lr=1e-4, warmup_steps=100,
                          eval_every=100, eval_images=256, save_every=100, keep_checkpoints=0),
    )


RECIPES = {
    # 28×28 MNIST sample, 8 grey levels, 6 layers × 128 (1.3M parameters)
    "mnist": dict(
        dataset="mnist",
        model=GPTConfig(n_colors=8, height=28, width=28, n_layer=6, n_head=4, n_embd=128),
        train=TrainConfig(steps=1500, batch_size=16, lr=2e-3, min_lr=1e-4, warmup_steps=200,
                          eval_every=100, eval_images=256, save_every=100, keep_checkpoints=0),
    ),
    # the same data and schedule with 4 layers instead of 6 (0.9M parameters), for the < 1 s completion
    # target: 8 completions in 0.87 s vs 1.47 s for mnist (2 threads, benchmarks/sampling.py)
    "mnist-small": dict(
        dataset="mnist",
        model=GPTConfig(n_colors=8, height=28, width=28, n_layer=4, n_head=4, n_embd=128),
        train=TrainConfig(steps=1500, batch_size=16, lr=2e-3, min_lr=1e-4, warmup_steps=200,
                          eval_every=100, eval_images=256, save_every=100, keep_checkpoints=0),
    ),
    # the BERT twin of mnist-small: the same data, size and schedule with the masked-pixel objective
    # (15% of pixels masked) and mnist-small's own palette, for the paper's AR-versus-BERT comparison
    "mnist-small-bert": dict(
        dataset="mnist", palette_of="mnist-small",
        model=GPTConfig(n_colors=8, height=28, width=28, n_layer=4, n_head=4, n_embd=128, objective="bert"),
        train=TrainConfig(steps=1500, batch_size=16, lr=2e-3, min_lr=1e-4, warmup_steps=200,
                          eval_every=100, eval_images=256, save_every=100, keep_checkpoints=0),
    ),
    # 16×16 coloured shapes, 16 colours, 4 layers × 128 (0.8M parameters)
    "shapes": dict(
        dataset="shapes",
        model=GPTConfig(n_colors=16, height=16, width=16, n_layer=4, n_head=4, n_embd=128),
        train=TrainConfig(steps=1500, batch_size=32, lr=2e-3, min_lr=1e-4, warmup_steps=100,
                          eval_every=100, eval_images=256, save_every=100, keep_checkpoints=0),
    ),
    # MNIST digits (16×16) at random places on a 32×32 canvas, 8 grey levels, 4 layers × 128 (0.93M
    # parameters): the probe experiments' setting where raw pixels are weak
    "mnist-canvas": _canvas(n_layer=4, n_embd=128, steps=1000),
    # The depth experiments (docs/experiments/depth.md), not shipped: a search for a probe curve that peaks in the middle layers
    # and falls at the last ones, as iGPT-S's does (docs/probes/depth.md). None did.
    # The mnist-canvas data with a deeper, narrower model, 8 layers × 64 (0.47M parameters), one
    # thread: 2.0 s a step alone, up to 7 s beside the other jobs on this 2-core machine. The run of
    # record (runs/bundled/mnist-canvas-deep, val 0.2201 bits/dim) was started as steps=2200, resumed
    # at step 200 as 900 and at step 300 as 700 to end in time; so its learning rate followed those
    # cosines until then (at step 300: 1.72e-3 instead of this recipe's 1.53e-3), then this one.
    "mnist-canvas-deep": _canvas(n_layer=8, n_embd=64, steps=700),
    # the same with 12 layers (0.67M parameters), 3.1-6.8 s a step on one thread: stopped at step 259
    # of 900 (val 0.2526 bits/dim at step 200) when it could not end by the deadline; not probed
    "mnist-canvas-deep12": _canvas(n_layer=12, n_embd=64, steps=900),
}


def export_bundled(name: str, run_dir: str | Path, models_dir: Path = BUNDLED_DIR) -> Path:
    """Write a run's latest checkpoint (weights, config, palette; no optimizer state) as a named model."""
    ckpt = load_checkpoint(run_dir)
    meta = dict(ckpt.meta)
    meta.pop("format", None)
    meta["name"] = name
    meta["source_step"] = ckpt.path.name
    return save_checkpoint(Path(models_dir) / name, ckpt.model, ckpt.palette, meta, overwrite=True)
