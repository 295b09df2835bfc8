"""Per-layer image features in one pass: the paper's linear-probe features (a layer's output,
layer-normed, averaged over positions) for every layer at once, read from the activation cache."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .model import GPT

NORMS = ("layernorm", "next", "none")


def feature_layers(model: GPT) -> list[str]:
    """Layer names, input to output: embed, blocks.0 ... blocks.{L-1}."""
    return ["embed"] + [f"blocks.{i}" for i in range(model.config.n_layer)]


def _cache_name(layer: str) -> str:
    return "embed" if layer == "embed" else f"{layer}.resid_post"


def _normalise(model: GPT, layer: str, x: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "none":
        return x
    if norm == "layernorm":  # the paper: a plain layer norm (no learned scale) before pooling
        return F.layer_norm(x, x.shape[-1:])
    # "next": the model's own next norm, as iEAT extracts (block l's output through block l+1's ln_1)
    idx = -1 if layer == "embed" else int(layer.split(".")[1])
    nxt = model.blocks[idx + 1].ln_1 if idx + 1 < model.config.n_layer else model.ln_f
    return nxt(x)


@torch.inference_mode()
def extract_features(model: GPT, tokens: torch.Tensor, layers: list[str] | None = None, *, norm: str = "layernorm",
                     batch_size: int = 64, progress: bool = False) -> dict[str, np.ndarray]:
    """{layer: float32 N×d} features of every requested layer, from one forward pass per batch."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    valid = feature_layers(model)
    layers = valid if layers is None else list(layers)
    unknown = [l for l in layers if l not in valid]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; this model has {valid[0]} ... {valid[-1]}")
    names = {_cache_name(l) for l in layers}
    out = {l: [] for l in layers}
    for i in tqdm(range(0, len(tokens), batch_size), disable=not progress, desc="features"):
        batch = torch.as_tensor(tokens[i : i + batch_size]).to(model.device)
        _, cache = model.run_with_cache(model.image_inputs(batch), names=names)
        for l in layers:
            out[l].append(_normalise(model, l, cache[_cache_name(l)], norm).mean(1).float().cpu().numpy())
    return {l: np.concatenate(v) for l, v in out.items()}
