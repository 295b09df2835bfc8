"""The iGPT model: a GPT-2-style decoder over palette tokens, one class for ours and imported weights.

Pre-LN blocks, learned position embeddings, GELU MLP, a start token, an untied head over the
colours. Objectives: "ar" (next pixel, causal) and "bert" (masked pixels, no causal mask).
Variants needed by the official weights: `norm="rms"` (x * rsqrt(mean(x²) + eps) * g, no
centring) and `activation="quick_gelu"` (x * sigmoid(1.702 x)).

Activation cache (TransformerLens style): `run_with_cache` returns every requested activation by
name; plain `forward` stores nothing and takes the fused attention path.
  embed                       token + position embeddings (the residual stream entering block 0)
  blocks.{i}.resid_post       residual stream after block i
  blocks.{i}.attn.pattern     attention weights, B × heads × query × key
  ln_f                        the final norm's output (what the head reads)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from . import validate
from .memory import check_memory

OBJECTIVES = ("ar", "bert")


@dataclass
class GPTConfig:
    """The shape of a model: palette size, image height and width, layers, heads, width, MLP ratio,
    objective ("ar" or "bert"), norm ("layer" or "rms") and activation. `preset(name, ...)` builds
    the paper's sizes and the CPU ones.

    Example::

        cfg = GPTConfig(n_colors=8, height=8, width=8, n_layer=4, n_head=4, n_embd=64)
        model = GPT(cfg)
    """

    n_colors: int = 16
    height: int = 8
    width: int = 8
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    objective: str = "ar"
    norm: str = "layernorm"  # or "rms"
    activation: str = "gelu"  # or "quick_gelu"
    bias: bool = True
    norm_eps: float = 1e-5
    mlp_ratio: int = 4
    dropout: float = 0.0
    scale_attn_by_inverse_layer_idx: bool = False
    mask_rate: float = 0.15  # BERT objective only

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.norm not in ("layernorm", "rms"):
            raise ValueError(f"norm must be 'layernorm' or 'rms', got {self.norm!r}")
        if self.activation not in ("gelu", "quick_gelu"):
            raise ValueError(f"activation must be 'gelu' or 'quick_gelu', got {self.activation!r}")
        validate.model_config(self.to_dict())  # sizes >= 1, width divisible by heads: one rule everywhere

    @property
    def block_size(self) -> int:
        return self.height * self.width

    @property
    def special_id(self) -> int:
        """The extra vocabulary id: the start token (ar) or the mask token (bert); the last id."""
        return self.n_colors

    @property
    def vocab_size(self) -> int:
        return self.n_colors + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return cls(**d)


_PAPER = dict(n_colors=512, height=32, width=32, norm="rms", activation="quick_gelu")
PRESETS: dict[str, dict] = {
    # the paper's sizes (32×32, 512 colours, the official norm and activation)
    "igpt-s": dict(_PAPER, n_layer=24, n_head=8, n_embd=512),
    "igpt-m": dict(_PAPER, n_layer=36, n_head=8, n_embd=1024),
    "igpt-l": dict(_PAPER, n_layer=48, n_head=16, n_embd=1536),
    "igpt-xl": dict(_PAPER, n_layer=60, n_head=16, n_embd=3072),
    # CPU sizes
    "tiny": dict(n_layer=2, n_head=2, n_embd=32),
    "small": dict(n_layer=4, n_head=4, n_embd=64),
    "base": dict(n_layer=6, n_head=4, n_embd=128),
}


def preset(name: str, **overrides) -> GPTConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return GPTConfig(**{**PRESETS[name], **overrides})


class Norm(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.kind, self.eps = cfg.norm, cfg.norm_eps
        self.weight = nn.Parameter(torch.ones(cfg.n_embd))
        self.bias = nn.Parameter(torch.zeros(cfg.n_embd)) if cfg.norm == "layernorm" and cfg.bias else None

    def forward(self, x):
        if self.kind == "rms":
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class KVCache:
    """Keys and values of every layer for incremental decoding, preallocated to the block size."""

    def __init__(self, cfg: GPTConfig, batch_size: int, device=None, dtype=torch.float32):
        shape = (batch_size, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head)
        self.k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0  # positions filled so far


class SelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, layer_idx: int):
        super().__init__()
        self.n_head, self.layer_idx = cfg.n_head, layer_idx
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        head_dim = cfg.n_embd // cfg.n_head
        self.scale = 1 / math.sqrt(head_dim)
        if cfg.scale_attn_by_inverse_layer_idx:
            self.scale /= layer_idx + 1

    def forward(self, x, causal: bool, kv: KVCache | None = None, want_pattern: bool = False):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        start = 0
        if kv is not None:
            start = kv.length
            kv.k[self.layer_idx][:, :, start : start + T] = k
            kv.v[self.layer_idx][:, :, start : start + T] = v
            k = kv.k[self.layer_idx][:, :, : start + T]
            v = kv.v[self.layer_idx][:, :, : start + T]
        mask = None  # boolean, True = may attend
        if causal and T > 1:
            mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(start)
        pattern = None
        if want_pattern:  # the explicit path, only when weights are asked for
            att = (q @ k.transpose(-2, -1)) * self.scale
            if mask is not None:
                att = att.masked_fill(~mask, float("-inf"))
            pattern = att.softmax(-1)
            y = pattern @ v
        else:
            p = self.dropout if self.training else 0.0
            if mask is not None and start == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p, scale=self.scale)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=self.scale)
        y = self.proj(y.transpose(1, 2).reshape(B, T, C))
        return (F.dropout(y, self.dropout, True) if self.training and self.dropout else y), pattern


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.quick = cfg.activation == "quick_gelu"
        self.dropout = cfg.dropout

    def forward(self, x):
        h = self.fc(x)
        h = self.proj(h * torch.sigmoid(1.702 * h) if self.quick else F.gelu(h))
        return F.dropout(h, self.dropout, True) if self.training and self.dropout else h


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = Norm(cfg)
        self.attn = SelfAttention(cfg, layer_idx)
        self.ln_2 = Norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, causal, kv=None, want_pattern=False):
        a, pattern = self.attn(self.ln_1(x), causal, kv, want_pattern)
        x = x + a
        return x + self.mlp(self.ln_2(x)), pattern


class GPT(nn.Module):
    """The one model class: a pre-layer-norm GPT-2 decoder over raster-order palette tokens, with a
    learned start token and positions and an untied head over the colours (ours and the official
    iGPT weights imported by `interop.load_hf`). `run_with_cache` returns every layer's activations by
    name (`blocks.3.resid_post`, ...), the one activation cache.

    Example::

        model = GPT(GPTConfig(n_colors=8, height=8, width=8))
        logits = model(model.image_inputs(tokens))    # tokens: long N×64 -> N×64×8
        logits, cache = model.run_with_cache(model.image_inputs(tokens))
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        check_memory(cfg, device=torch.get_default_device())  # a config of 10⁸ layers: refused, not built
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layer)])
        self.ln_f = Norm(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.n_colors, bias=False)
        # training memory for compute: keep only each block's input and recompute the rest in backward
        # (a training setting, not part of the model: not saved, no effect on outputs)
        self.checkpoint_activations = False
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    # ---- inputs ----
    def image_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Model input for whole images: [start] + tokens[:-1] (ar) or the tokens themselves (bert).
        Either way, output position i predicts (or describes) pixel i."""
        self._check_tokens(tokens)
        if self.config.objective == "bert":
            return tokens
        start = torch.full_like(tokens[:, :1], self.config.special_id)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def _check_tokens(self, tokens: torch.Tensor):
        cfg = self.config
        if tokens.ndim != 2 or tokens.shape[1] != cfg.block_size:
            raise ValueError(
                f"expected tokens shaped N×{cfg.block_size} ({cfg.height}×{cfg.width} image), got {tuple(tokens.shape)}"
            )

    # ---- forward ----
    def _forward(self, input_ids, kv: KVCache | None, names: set | None, logits: bool = True):
        B, T = input_ids.shape
        start = kv.length if kv is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} positions exceeds the block size {self.config.block_size}")
        store = {} if names is not None else None
        want = (lambda n: n in names) if names is not None else (lambda n: False)
        pos = torch.arange(start, start + T, device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(pos)
        if self.training and self.config.dropout:
            x = F.dropout(x, self.config.dropout, True)
        if want("embed"):
            store["embed"] = x
        causal = self.config.objective == "ar"
        recompute = (self.checkpoint_activations and self.training and torch.is_grad_enabled() and kv is None
                     and names is None)
        # without logits, only the blocks up to the last requested activation run
        n_run = self.config.n_layer if logits else self._blocks_needed(names)
        for i, block in enumerate(self.blocks[:n_run]):
            if recompute:
                x, pattern = checkpoint(block, x, causal, use_reentrant=False)
            else:
                x, pattern = block(x, causal, kv, want_pattern=want(f"blocks.{i}.attn.pattern"))
            if pattern is not None:
                store[f"blocks.{i}.attn.pattern"] = pattern
            if want(f"blocks.{i}.resid_post"):
                store[f"blocks.{i}.resid_post"] = x
        if not logits and "ln_f" not in names:
            return None, store
        x = self.ln_f(x)
        if want("ln_f"):
            store["ln_f"] = x
        if kv is not None:
            kv.length += T
        return (self.lm_head(x) if logits else None), store

    def _blocks_needed(self, names: set) -> int:
        """How many blocks must run to produce the named activations (all of them for ln_f)."""
        if "ln_f" in names:
            return self.config.n_layer
        return max((int(n.split(".")[1]) + 1 for n in names if n.startswith("blocks.")), default=0)

    def forward(self, input_ids: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """Logits (B × T × n_colors) for model input ids (see `image_inputs`)."""
        return self._forward(input_ids, kv_cache, None)[0]

    def activation_names(self) -> list[str]:
        names = ["embed"]
        for i in range(self.config.n_layer):
            names += [f"blocks.{i}.resid_post", f"blocks.{i}.attn.pattern"]
        return names + ["ln_f"]

    def run_with_cache(self, input_ids: torch.Tensor, names=None,
                       logits: bool = True) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Logits and a dict of the named activations (all of them when `names` is None).
        logits=False: None for the logits, and the forward pass stops after the last block a named
        activation needs (features of blocks.0 from a 24-layer model run one block)."""
        valid = set(self.activation_names())
        names = valid if names is None else set(names)
        if names - valid:
            raise ValueError(f"unknown activation names {sorted(names - valid)}; see model.activation_names()")
        return self._forward(input_ids, None, names, logits)

    # ---- objectives ----
    def loss(self, tokens: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean cross-entropy in nats per predicted pixel: every pixel (ar) or the masked ones (bert)."""
        if self.config.objective == "ar":
            logits = self(self.image_inputs(tokens))
            return F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
        self._check_tokens(tokens)
        mask = torch.rand(tokens.shape, generator=generator, device="cpu").to(tokens.device) < self.config.mask_rate
        mask[:, 0] |= ~mask.any(1)  # at least one masked pixel per image
        logits = self(tokens.masked_fill(mask, self.config.special_id))
        return F.cross_entropy(logits[mask], tokens[mask])

    def new_kv_cache(self, batch_size: int) -> KVCache:
        return KVCache(self.config, batch_size, device=self.device, dtype=self.wte.weight.dtype)


def random_model(config: GPTConfig, seed: int = 0) -> GPT:
    """The same architecture with fresh random weights (GPT's own init), seeded without touching
    the caller's global torch RNG: the baseline of the probes and of the bias tests."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT(config).eval()
