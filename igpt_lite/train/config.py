"""How a run trains: `TrainConfig` (schedule, batches, checkpoints, devices) and the device it runs on."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import validate


@dataclass
class TrainConfig:
    """How to train: steps, batch size and accumulation, AdamW's learning rate (warm-up then cosine to
    `min_lr`), evaluation and checkpoint intervals, seed, device, and the distributed and memory options.

    Example::

        model, palette, history = pretrain("digits", "runs/digits", model_cfg=preset("small"),
                                           train_cfg=TrainConfig(steps=500))
    """

    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_images: int = 256
    save_every: int | None = None  # None: scaled to the run (`checkpoint_every`)
    keep_checkpoints: int = 2  # 0 keeps every saved step (for probes over training)
    seed: int = 0
    device: str = "auto"
    compile: bool = False  # torch.compile the loss (measured: no gain on CPU; for GPUs)
    fsdp: bool = False  # under torchrun: shard weights, gradients and Adam moments (FSDP2) instead of DDP
    activation_checkpointing: bool = False  # recompute each block in backward: less memory, ~1/3 more compute

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_images"):
            validate.integer(name, getattr(self, name), 1)
        for name in ("warmup_steps", "keep_checkpoints"):
            validate.integer(name, getattr(self, name), 0)
        if self.save_every is not None:
            validate.integer("save_every", self.save_every, 1)
        validate.positive("lr", self.lr)
        for name in ("min_lr", "weight_decay", "grad_clip"):
            validate.non_negative(name, getattr(self, name))
        validate.seed("seed", self.seed)
        if (not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2
                or not all(validate.non_negative("betas", b) < 1 for b in self.betas)):
            raise ValueError(f"betas must be two numbers ≥ 0 and below 1 (AdamW's decay rates), got {self.betas!r}")

    @property
    def checkpoint_every(self) -> int:
        """save_every, or by default a fifth of the run (at most 500 steps): a run killed part way
        always has a checkpoint to resume from, whatever its length."""
        return self.save_every or max(1, min(500, self.steps // 5))

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))


def pick_device(name: str = "auto") -> torch.device:
    validate.device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)

