"""Per-layer image features in one pass: the paper's linear-probe features (a layer's output,
layer-normed, averaged over positions) for every layer at once, read from the activation cache.

Layers, input to output: `embed` (token + position embeddings), `blocks.0` ... `blocks.{L-1}`
(the residual stream after each block) and, on request, `ln_f` (the final norm's output, what the
head reads). Pooling over positions: "mean" (the paper's), "max", or "last" (the last position's
state; in an ar model it has seen every pixel but the last one).

With `cache_dir`, features are kept on disk as .npz files (no pickle), keyed by a hash of the model
(config and every weight), the tokens, the layer set, the norm and the pooling: a changed model or
dataset never hits a stale file.
"""
from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .model import GPT
from .storage import write_file_atomically
from .threads import check_threads

NORMS = ("layernorm", "next", "none")
POOLS = ("mean", "max", "last")
CACHE_VERSION = 1  # bump when the features computed for the same key change


# ---- the one layer vocabulary (features, probes, bias, CLI, app and notebooks all use it) ----
# feature layer   activation cache name (model.run_with_cache)   also accepted by parse_layers
# embed           embed                                          "embed"
# blocks.3        blocks.3.resid_post                            "3", "blocks.3.resid_post"
# ln_f            ln_f                                           "ln_f"

def feature_layers(model: GPT, final_norm: bool = False) -> list[str]:
    """Layer names, input to output: embed, blocks.0 ... blocks.{L-1}, then ln_f when final_norm."""
    return ["embed"] + [f"blocks.{i}" for i in range(model.config.n_layer)] + (["ln_f"] if final_norm else [])


def cache_name(layer: str) -> str:
    """The activation-cache entry a feature layer reads: blocks.3 -> blocks.3.resid_post."""
    return layer if layer in ("embed", "ln_f") else f"{layer}.resid_post"


def parse_layers(model: GPT, wanted=None, final_norm: bool = True) -> list[str]:
    """Feature layer names from what a user typed: "embed", "blocks.3", "3" (block 3), "-1" (the
    last block), "blocks.3.resid_post" or "ln_f". None or empty: every layer (ln_f with final_norm)."""
    valid = feature_layers(model, final_norm=True)
    if not wanted:
        return feature_layers(model, final_norm=final_norm)
    out = []
    for w in wanted:
        w = str(w).strip()
        if w.lstrip("-").isdigit():
            i = int(w)
            i = i + model.config.n_layer if i < 0 else i
            w = f"blocks.{i}"
        w = w.removesuffix(".resid_post")
        if w not in valid:
            raise ValueError(f"unknown layer {w!r}; this model has {', '.join(valid)} "
                             f"(a block can also be given by its number, 0..{model.config.n_layer - 1})")
        out.append(w)
    return out


def _normalise(model: GPT, layer: str, x: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "none":
        return x
    if norm == "layernorm":  # the paper: a plain layer norm (no learned scale) before pooling
        return F.layer_norm(x, x.shape[-1:])
    # "next": the model's own next norm, as iEAT extracts (block l's output through block l+1's ln_1)
    if layer == "ln_f":  # already the output of the last norm there is
        return x
    idx = -1 if layer == "embed" else int(layer.split(".")[1])
    nxt = model.blocks[idx + 1].ln_1 if idx + 1 < model.config.n_layer else model.ln_f
    return nxt(x)


def _pool(x: torch.Tensor, pool: str) -> torch.Tensor:
    if pool == "mean":
        return x.mean(1)
    if pool == "max":
        return x.amax(1)
    return x[:, -1]


def features_key(model: GPT, tokens, layers: list[str], norm: str, pool: str) -> str:
    """Hash of everything the features depend on: config, weights, tokens, layer set, norm, pooling."""
    h = hashlib.blake2b(digest_size=16)  # fast enough to hash even large weights (~1 GB/s)
    meta = {"v": CACHE_VERSION, "config": model.config.to_dict(), "layers": list(layers), "norm": norm, "pool": pool}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    t = torch.as_tensor(tokens).to("cpu", torch.int64).contiguous()
    h.update(f"tokens:{tuple(t.shape)}".encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()


def _load_cached(path: Path, layers: list[str], shape: tuple[int, int]) -> dict[str, np.ndarray] | None:
    """The cached features, or None (recompute) unless every layer is there as float32 N×d."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if not set(layers) <= set(f.files):
                return None
            feats = {l: f[l] for l in layers}
    # missing, truncated (BadZipFile, EOFError, zlib.error) or foreign file: recompute
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error):
        return None
    if any(v.dtype != np.float32 or v.shape != shape for v in feats.values()):
        return None
    return feats


_UNWRITABLE: set[str] = set()  # cache folders already reported as unwritable (said once a process)


def _save_cached(path: Path, feats: dict[str, np.ndarray]) -> None:
    """Keep the features; a folder that cannot be written (read-only, full) costs time, not the result."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(path, lambda tmp: np.savez(tmp, **feats))  # the name ends in .npz: savez adds none
    except OSError as e:
        if str(path.parent) not in _UNWRITABLE:
            _UNWRITABLE.add(str(path.parent))
            warnings.warn(f"{path.parent}: cannot keep features there ({e.strerror or e}); they are computed "
                          "without caching", stacklevel=3)


@torch.inference_mode()
def extract_features(model: GPT, tokens: torch.Tensor, layers: list[str] | None = None, *, norm: str = "layernorm",
                     pool: str = "mean", batch_size: int = 64, progress: bool = False,
                     cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """{layer: float32 N×d} features of every requested layer, from one forward pass per batch.

    layers: names as `parse_layers` reads them; None means embed and every block
    (ln_f only when asked for). cache_dir: read and write the features there (.npz, no pickle).

    Example::

        feats = extract_features(ck.model, ck.palette.encode(images), ["blocks.2", "ln_f"])
        feats["blocks.2"].shape                       # (N, n_embd)
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    layers = feature_layers(model) if layers is None else parse_layers(model, layers)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"features-{features_key(model, tokens, layers, norm, pool)}.npz"
        cached = _load_cached(path, layers, (len(tokens), model.config.n_embd))
        if cached is not None:
            return cached
    names = {cache_name(l) for l in layers}
    out = {l: [] for l in layers}
    for i in tqdm(range(0, len(tokens), batch_size), disable=not progress, desc="features"):
        check_threads()  # a neighbour may have started or stopped since the last batch
        batch = torch.as_tensor(tokens[i : i + batch_size]).to(model.device)
        _, cache = model.run_with_cache(model.image_inputs(batch), names=names, logits=False)
        for l in layers:
            x = _normalise(model, l, cache[cache_name(l)], norm)
            out[l].append(_pool(x, pool).float().cpu().numpy())
    feats = {l: np.concatenate(v) for l, v in out.items()}
    if path is not None:
        _save_cached(path, feats)
    return feats
