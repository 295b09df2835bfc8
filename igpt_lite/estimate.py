"""How long a heavy call will take on this machine, said before it starts (the app shows it beside
its buttons). Measured, not guessed from a table: one short forward and two decode steps of the
model itself, a fraction of a second, then scaled.

  whole images (features, scores):  tokens / the tokens per second of a 64-token forward
  sampling:                         the prompt's tokens as above, plus each new pixel's decode step,
                                    which reads every weight and the key/value cache so far: the
                                    measured step × (1 + cache bytes at the mean length / weight bytes)

Short forwards run less efficiently than long batched ones, so whole-image figures err long.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .model import GPT
from .threads import cpu_threads

LARGE_PARAMETERS = 20e6  # from here on (the official iGPT-S has 76M) the app's defaults shrink to fit a CPU


@dataclass
class Speed:
    """A model's measured speed on this machine: whole-sequence tokens/s and one decode step's seconds
    at a batch size."""
    tokens_per_s: float
    step_s: float
    batch: int


@torch.inference_mode()
def measure(model: GPT, batch: int = 1) -> Speed:
    """Time a 64-token forward and a decode step of `batch` sequences (the second of two)."""
    cfg = model.config
    n = min(64, cfg.block_size)
    ids = torch.full((1, n), cfg.special_id, dtype=torch.long, device=model.device)
    with cpu_threads():
        model(ids[:, :8])  # warm-up: first calls pay one-off costs
        t0 = time.perf_counter()
        model(ids)
        tokens_per_s = n / (time.perf_counter() - t0)
        kv = model.new_kv_cache(batch)
        step = torch.full((batch, 1), cfg.special_id, dtype=torch.long, device=model.device)
        model(step, kv)
        t0 = time.perf_counter()
        model(step, kv)
        step_s = time.perf_counter() - t0
    return Speed(tokens_per_s, step_s, batch)


def forward_seconds(speed: Speed, n_images: int, image_tokens: int) -> float:
    """Whole-image forwards (features, likelihoods) of `n_images`."""
    return n_images * image_tokens / speed.tokens_per_s


def sampling_seconds(model: GPT, speed: Speed, prompt_tokens: int) -> float:
    """Completing `speed.batch` sequences from a prompt of `prompt_tokens` to the whole image."""
    cfg = model.config
    steps = cfg.block_size - prompt_tokens
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    mean_length = (prompt_tokens + cfg.block_size) / 2
    cache_bytes = 2 * cfg.n_layer * speed.batch * mean_length * cfg.n_embd * model.wte.weight.element_size()
    prefill = speed.batch * (prompt_tokens + 1) / speed.tokens_per_s
    return prefill + steps * speed.step_s * (1 + cache_bytes / weight_bytes)


def say_seconds(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1.5 h': what a person reads before pressing a button."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
