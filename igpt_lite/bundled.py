"""Recipes of the bundled models (data/models/<name>/) and their export from a training run."""
from __future__ import annotations

from pathlib import Path

from .checkpoint import BUNDLED_DIR, load_checkpoint, save_checkpoint
from .model import GPTConfig
from .train import TrainConfig

RECIPES = {
    # 28×28 MNIST sample, 8 grey levels, 6 layers × 128 (1.3M parameters)
    "mnist": dict(
        dataset="mnist",
        model=GPTConfig(n_colors=8, height=28, width=28, n_layer=6, n_head=4, n_embd=128),
        train=TrainConfig(steps=1500, batch_size=16, lr=2e-3, min_lr=1e-4, warmup_steps=200,
                          eval_every=100, eval_images=256, save_every=100, keep_checkpoints=0),
    ),
    # the same data and schedule with 4 layers instead of 6 (0.9M parameters), for the < 1 s completion
    # target of issue 3: 8 completions in 0.87 s vs 1.47 s for mnist (2 threads, benchmarks/sampling.py)
    "mnist-small": dict(
        dataset="mnist",
        model=GPTConfig(n_colors=8, height=28, width=28, n_layer=4, n_head=4, n_embd=128),
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
    # parameters): the probe experiments' setting where raw pixels are weak (issue 4)
    "mnist-canvas": dict(
        dataset="mnist-canvas",
        model=GPTConfig(n_colors=8, height=32, width=32, n_layer=4, n_head=4, n_embd=128),
        train=TrainConfig(steps=1000, batch_size=16, lr=2e-3, min_lr=1e-4, warmup_steps=100,
                          eval_every=100, eval_images=256, save_every=100, keep_checkpoints=0),
    ),
}


def export_bundled(name: str, run_dir: str | Path, models_dir: Path = BUNDLED_DIR) -> Path:
    """Write a run's latest checkpoint (weights, config, palette; no optimizer state) as a named model."""
    ckpt = load_checkpoint(run_dir)
    meta = dict(ckpt.meta)
    meta.pop("format", None)
    meta["name"] = name
    meta["source_step"] = ckpt.path.name
    return save_checkpoint(Path(models_dir) / name, ckpt.model, ckpt.palette, meta, overwrite=True)
