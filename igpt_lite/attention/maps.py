"""Where attention goes: every layer and head seen from one query pixel as maps over the image,
attention rollout across layers, and per-head summaries (mean attention distance, entropy) over a
batch of images. Everything is read from the model's activation cache and returned as numpy.

Sequence positions versus pixels. Query (output) position i is pixel i for both objectives; the
keys differ:
  ar    the input is [start] + pixels[:-1], so key 0 is the start token and key j > 0 holds pixel
        j-1. The causal mask lets query i see keys 0..i: pixel i sees the start token and pixels
        0..i-1 (raster order), never itself nor anything after it. The last pixel is never a key.
  bert  key j is pixel j and every query sees every pixel, itself included; no start token.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model import GPT, GPTConfig

# patterns of all layers are held at once (L × heads × T × T per image); bound a batch's share
_PATTERN_BYTES = 256 * 2**20


@dataclass
class AttentionMaps:
    """Attention from one query pixel. Weights on pixels are H×W maps; the weight on the start token
    (ar only, None for bert) is kept apart, so each map plus its start weight sums to 1."""
    objective: str
    pixel: tuple[int, int]  # (row, col) of the query
    maps: np.ndarray  # L × heads × H × W
    start: np.ndarray | None  # L × heads
    head_mean: np.ndarray  # L × H × W, the mean over heads
    head_mean_start: np.ndarray | None  # L
    rollout: np.ndarray  # H × W, residual-aware rollout through all layers
    rollout_start: float | None
    visible: np.ndarray  # H × W bool, the pixels this query can attend to
    image: np.ndarray | None = None  # uint8 H × W × C: the image as the model sees it (palette colours)

    @property
    def rollout_peak(self) -> tuple[int, int]:
        """(row, col) of the pixel the rollout weighs most."""
        row, col = np.unravel_index(int(np.argmax(self.rollout)), self.rollout.shape)
        return int(row), int(col)

    def to_dict(self) -> dict:
        def lst(a):
            return None if a is None else np.asarray(a).tolist()

        return {"objective": self.objective, "pixel": list(self.pixel), "maps": lst(self.maps),
                "start": lst(self.start), "head_mean": lst(self.head_mean),
                "head_mean_start": lst(self.head_mean_start), "rollout": lst(self.rollout),
                "rollout_start": self.rollout_start, "visible": lst(self.visible), "image": lst(self.image)}

    def __repr__(self) -> str:
        layers, heads, h, w = self.maps.shape
        return f"AttentionMaps(pixel {self.pixel}, {layers} layers × {heads} heads, {h}×{w}, {self.objective})"



@dataclass
class AttentionSummary:
    """Per-head statistics over every query pixel of a batch of images (L × heads arrays)."""
    mean_distance: np.ndarray  # pixels; attention-weighted, start token excluded
    entropy_bits: np.ndarray  # entropy of each query's attention row (start included), averaged
    start_share: np.ndarray | None  # mean weight on the start token (ar only)
    n_images: int

    def to_dict(self) -> dict:
        return {"mean_distance": self.mean_distance.tolist(), "entropy_bits": self.entropy_bits.tolist(),
                "start_share": None if self.start_share is None else self.start_share.tolist(),
                "n_images": self.n_images}


# ---- positions and pixels ----

def key_pixels(cfg: GPTConfig) -> np.ndarray:
    """The pixel index each key position holds, -1 for the start token."""
    T = cfg.block_size
    return np.arange(-1, T - 1) if cfg.objective == "ar" else np.arange(T)


def visible_pixels(cfg: GPTConfig, row: int, col: int) -> np.ndarray:
    """H×W bool: the pixels query (row, col) may attend to."""
    q = row * cfg.width + col
    idx = np.arange(cfg.block_size)
    seen = idx < q if cfg.objective == "ar" else np.ones(cfg.block_size, dtype=bool)
    return seen.reshape(cfg.height, cfg.width)


def _to_pixels(weights: np.ndarray, cfg: GPTConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Weights over key positions (... × T) -> (maps ... × H × W, start weights ... or None)."""
    kp = key_pixels(cfg)
    flat = np.zeros(weights.shape[:-1] + (cfg.block_size,), dtype=weights.dtype)
    flat[..., kp[kp >= 0]] = weights[..., kp >= 0]
    start = weights[..., 0] if cfg.objective == "ar" else None
    return flat.reshape(weights.shape[:-1] + (cfg.height, cfg.width)), start


def _check_tokens(model: GPT, tokens, n: int | None = None) -> torch.Tensor:
    cfg = model.config
    t = torch.as_tensor(tokens)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != cfg.block_size or (n is not None and t.shape[0] != n):
        want = f"{n}×{cfg.block_size}" if n else f"N×{cfg.block_size}"
        raise ValueError(f"expected tokens shaped {want} (one {cfg.height}×{cfg.width} image per row, "
                         f"raster order), got {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise ValueError(f"tokens must be integer palette ids, got dtype {t.dtype}")
    if t.numel() and (t.min() < 0 or t.max() >= cfg.n_colors):
        raise ValueError(f"token ids must lie in [0, {cfg.n_colors}) for this model")
    if model.training and cfg.dropout > 0:  # dropout would make the weights random
        raise ValueError("the model is in training mode with dropout; call model.eval() first")
    return t.long().to(model.device)


def _check_pixel(cfg: GPTConfig, pixel) -> tuple[int, int]:
    try:
        row, col = (int(v) for v in pixel)
    except (TypeError, ValueError):
        raise ValueError(f"pixel must be (row, col), got {pixel!r}") from None
    if not (0 <= row < cfg.height and 0 <= col < cfg.width):
        raise ValueError(f"pixel ({row}, {col}) is outside the {cfg.height}×{cfg.width} image "
                         f"(rows 0..{cfg.height - 1}, columns 0..{cfg.width - 1})")
    return row, col


@torch.inference_mode()
def _patterns(model: GPT, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's attention pattern, B × heads × query × key, in float32."""
    names = [f"blocks.{i}.attn.pattern" for i in range(model.config.n_layer)]
    _, cache = model.run_with_cache(model.image_inputs(tokens), names=names, logits=False)
    return [cache[n].float() for n in names]


# ---- rollout ----

def rollout(head_means: np.ndarray, query: int) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020) for one query position, over key positions.

    head_means: L × T × T, each layer's attention averaged over heads. The residual connection is
    counted as 0.5·A + 0.5·I (rows renormalised); the layers multiply, last layer on the left:
    R = Â_{L-1} ··· Â_0. Only row `query` of R is needed, so a row vector is pushed down through
    the layers (L vector-matrix products instead of L matrix-matrix ones)."""
    a = np.asarray(head_means, dtype=np.float64)
    r = np.zeros(a.shape[-1])
    r[query] = 1.0
    for layer in a[::-1]:
        mixed = 0.5 * layer + 0.5 * np.eye(len(layer))
        r = r @ (mixed / mixed.sum(-1, keepdims=True))
    return r


# ---- one query pixel ----

def attention_maps(model: GPT, tokens, pixel) -> AttentionMaps:
    """All layers' and heads' attention from query `pixel` = (row, col) of one image (tokens 1×T)."""
    cfg = model.config
    tokens = _check_tokens(model, tokens, n=1)
    row, col = _check_pixel(cfg, pixel)
    q = row * cfg.width + col
    pats = _patterns(model, tokens)
    rows = np.stack([p[0, :, q].cpu().numpy() for p in pats])  # L × heads × T (keys)
    maps, start = _to_pixels(rows, cfg)
    head_mean, head_mean_start = _to_pixels(rows.mean(1), cfg)
    full_means = np.stack([p[0].mean(0).cpu().numpy() for p in pats])  # L × T × T
    r_map, r_start = _to_pixels(rollout(full_means, q), cfg)
    return AttentionMaps(objective=cfg.objective, pixel=(row, col), maps=maps, start=start, head_mean=head_mean,
                         head_mean_start=head_mean_start, rollout=r_map,
                         rollout_start=None if r_start is None else float(r_start),
                         visible=visible_pixels(cfg, row, col))


def attend(checkpoint, image: np.ndarray, pixel) -> AttentionMaps:
    """Attention from `pixel` = (row, col) of one uint8 H×W×C image (the model's size), for a
    Checkpoint: the image is encoded with the checkpoint's palette, and the result carries the
    quantised image, so attention.attention_grid / attention_rollout_figure draw it directly.

    Example::

        att = attend(load_checkpoint("mnist"), image, pixel=(14, 10))
        att.maps.shape, att.rollout.shape              # per layer and head; one map through all layers
    """
    cfg, palette = checkpoint.config, checkpoint.palette
    image = checkpoint.check_images(image, one=True)
    tokens = palette.encode(image[None])
    att = attention_maps(checkpoint.model, tokens, pixel)
    att.image = palette.decode(tokens, cfg.height, cfg.width)[0]
    return att


# ---- summaries over a batch ----

def _distances(cfg: GPTConfig) -> np.ndarray:
    """T × T: Euclidean distance in pixels from query pixel q to the pixel held by key j (0 for start)."""
    idx = np.arange(cfg.block_size)
    qy, qx = np.divmod(idx, cfg.width)
    kp = key_pixels(cfg)
    ky, kx = np.divmod(np.maximum(kp, 0), cfg.width)
    d = np.hypot(qy[:, None] - ky[None, :], qx[:, None] - kx[None, :])
    d[:, kp < 0] = 0.0
    return d


def attention_summary(model: GPT, tokens, batch_size: int | None = None) -> AttentionSummary:
    """Mean attention distance, entropy and start-token share per layer and head, over every query
    pixel of every image in `tokens` (N×T).

    Mean distance: Σ a·d / Σ a over all queries, images and pixel keys, i.e. how far a unit of
    attention that lands on a pixel travels. It is weighted by attention mass, so a query that
    parks nearly everything on the start token (in an ar model, pixel 0 always does) adds little.
    Entropy: of each query's whole attention row (start token included), in bits, averaged."""
    cfg = model.config
    tokens = _check_tokens(model, tokens)
    if batch_size is None:
        per_image = cfg.n_layer * cfg.n_head * cfg.block_size**2 * 4
        batch_size = max(1, _PATTERN_BYTES // per_image)
    L, H = cfg.n_layer, cfg.n_head
    dist = torch.as_tensor(_distances(cfg), dtype=torch.float32, device=model.device)
    is_pixel = torch.as_tensor(key_pixels(cfg) >= 0, device=model.device)
    num, mass, ent, start = (np.zeros((L, H)) for _ in range(4))
    for i in range(0, len(tokens), batch_size):
        for layer, a in enumerate(_patterns(model, tokens[i : i + batch_size])):
            on_pixels = a[..., is_pixel]
            num[layer] += (on_pixels * dist[:, is_pixel]).sum((0, 2, 3)).double().cpu().numpy()
            mass[layer] += on_pixels.sum((0, 2, 3)).double().cpu().numpy()
            # xlogy gives 0·log 0 = 0 for the masked keys
            ent[layer] -= torch.special.xlogy(a, a).sum(-1).sum((0, 2)).double().cpu().numpy()
            start[layer] += a[..., 0].sum((0, 2)).double().cpu().numpy() if cfg.objective == "ar" else 0.0
    n_rows = len(tokens) * cfg.block_size  # queries counted
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_distance = num / mass
    return AttentionSummary(mean_distance=mean_distance, entropy_bits=ent / n_rows / np.log(2),
                            start_share=start / n_rows if cfg.objective == "ar" else None,
                            n_images=len(tokens))
