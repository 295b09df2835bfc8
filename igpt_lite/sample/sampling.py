"""Sampling and completion: KV-cached incremental decoding, batched, temperature/top-k/top-p, seeded.

Autoregressive models decode pixel by pixel with a key/value cache. BERT models complete by
iterative unmasking in raster order (one full forward pass per pixel: no cache applies).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .. import validate
from ..memory import check_memory
from ..model import GPT
from ..palette import Palette
from ..threads import check_threads


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Logits after temperature, top-k and nucleus (top-p) filtering (dropped entries are -inf)."""
    validate.sampling(temperature, top_k, top_p)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cum - sorted_logits.softmax(-1) >= top_p  # keep the smallest set reaching top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _pick(logits, generator, temperature, top_k, top_p):
    probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate(model: GPT, prompt: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, seed: int = 0, use_cache: bool = True,
             on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Continue each row of `prompt` (long N×P tokens, P may be 0) to a whole image (N×T tokens).
    on_step(done, total): called after each generated pixel (e.g. a progress bar)."""
    validate.sampling(temperature, top_k, top_p)
    validate.seed("seed", seed)
    cfg = model.config
    T = cfg.block_size
    prompt = torch.as_tensor(prompt, dtype=torch.long, device=model.device)
    if prompt.ndim != 2 or prompt.shape[1] > T:
        raise ValueError(f"prompt must be N×P tokens with P <= {T}, got {tuple(prompt.shape)}")
    if prompt.numel() and (prompt.min() < 0 or prompt.max() >= cfg.n_colors):
        raise ValueError(f"prompt tokens must lie in [0, {cfg.n_colors})")
    n, p = prompt.shape
    check_memory(cfg, "sample", n, device=model.device)  # sample --n 10⁹: refused before the tokens are allocated
    gen = torch.Generator(device=model.device).manual_seed(seed)
    out = torch.empty(n, T, dtype=torch.long, device=model.device)
    out[:, :p] = prompt
    if p == T:
        return out
    if cfg.objective == "bert":
        return _complete_bert(model, out, p, gen, temperature, top_k, top_p, on_step)
    start = torch.full((n, 1), cfg.special_id, dtype=torch.long, device=model.device)
    if use_cache:
        kv = model.new_kv_cache(n)
        logits = model(torch.cat([start, prompt], 1), kv)[:, -1]
        for t in range(p, T):
            out[:, t] = _pick(logits, gen, temperature, top_k, top_p)
            if t + 1 < T:
                logits = model(out[:, t : t + 1], kv)[:, -1]
            check_threads()
            if on_step is not None:
                on_step(t + 1 - p, T - p)
    else:  # the reference: a full forward pass over the whole prefix for every pixel
        for t in range(p, T):
            logits = model(torch.cat([start, out[:, :t]], 1))[:, -1]
            out[:, t] = _pick(logits, gen, temperature, top_k, top_p)
    return out


def _complete_bert(model, out, p, gen, temperature, top_k, top_p, on_step):
    T = model.config.block_size
    for t in range(p, T):
        inputs = out.clone()
        inputs[:, t:] = model.config.special_id
        logits = model(inputs)[:, t]
        out[:, t] = _pick(logits, gen, temperature, top_k, top_p)
        check_threads()
        if on_step is not None:
            on_step(t + 1 - p, T - p)
    return out


def complete(model: GPT, tokens: torch.Tensor, keep_rows: int, n_samples: int = 1, **kwargs) -> torch.Tensor:
    """Keep the top `keep_rows` rows of each image (long N×T tokens) and sample the rest,
    `n_samples` times each. Returns N × n_samples × T tokens."""
    cfg = model.config
    validate.integer("keep_rows", keep_rows, 0, cfg.height)
    validate.integer("n_samples", n_samples, 1)
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    model._check_tokens(tokens)
    check_memory(cfg, "sample", len(tokens) * n_samples, device=model.device)  # before the prompts are repeated
    prompt = tokens[:, : keep_rows * cfg.width].repeat_interleave(n_samples, dim=0)
    return generate(model, prompt, **kwargs).view(len(tokens), n_samples, cfg.block_size)


def sample(model: GPT, n: int, **kwargs) -> torch.Tensor:
    """`n` unconditional samples (N×T tokens)."""
    validate.integer("n", n, 1)
    return generate(model, torch.empty(n, 0, dtype=torch.long), **kwargs)


@dataclass
class Completions:
    """Completions of images from their top rows (`complete_images`)."""
    originals: np.ndarray  # uint8 N×H×W×C, as given
    quantised: np.ndarray  # uint8 N×H×W×C: the originals in the palette's colours (what the model sees)
    images: np.ndarray  # uint8 N × n_samples × H×W×C
    tokens: torch.Tensor  # long N × n_samples × T
    keep_rows: int
    seed: int
    seconds: float  # sampling time

    def __repr__(self) -> str:
        n, s, h, w, c = self.images.shape
        return (f"Completions({n} images × {s} samples, {h}×{w}×{c}, top {self.keep_rows} rows kept, "
                f"seed {self.seed}, {self.seconds:.2f} s)")



def complete_images(model: GPT, palette: Palette, images: np.ndarray, keep_rows: int, n_samples: int = 1,
                    **kwargs) -> Completions:
    """`complete` from uint8 images (N×H×W×C, the model's size) to a Completions result.

    Example::

        ck = load_checkpoint("mnist")
        done = complete_images(ck.model, ck.palette, images, keep_rows=14, n_samples=4, seed=0)
        done.images.shape                             # N × 4 × 28 × 28 × 1
    """
    cfg = model.config
    images = validate.images(images, cfg.height, cfg.width, palette.channels)
    tokens = palette.encode(images)
    t0 = time.perf_counter()
    out = complete(model, tokens, keep_rows, n_samples, **kwargs)
    seconds = time.perf_counter() - t0
    decoded = palette.decode(out.flatten(0, 1), cfg.height, cfg.width)
    return Completions(originals=images, quantised=palette.decode(tokens, cfg.height, cfg.width),
                       images=decoded.reshape(*out.shape[:2], *decoded.shape[1:]), tokens=out, keep_rows=keep_rows,
                       seed=kwargs.get("seed", 0), seconds=seconds)
