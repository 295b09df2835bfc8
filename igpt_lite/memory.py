"""How much memory a model config needs, worked out from the config before anything is allocated,
and the one refusal when this machine (or GPU) does not have it: a config of 10⁸ layers, a width of
10⁶ or 30000×30000 images is refused in a millisecond with the estimate, instead of hanging while
memory grows or ending in an out-of-memory traceback after the data was loaded.

The estimate counts float32 weights (and, to train, their gradients and AdamW's two moments), the
activations kept for backward, the KV cache and the sampled tokens. It leaves out what is small
beside those, so it errs low: a refusal means the work cannot fit.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

PURPOSES = ("load", "train", "sample")
FLOAT = 4  # bytes of a float32
CHECK_ABOVE = 256 * 2**20  # estimates below this are not checked against the machine (no system call)


def parameter_count(cfg) -> int:
    """The number of weights a GPTConfig builds (GPT(cfg).num_params()), from the config alone."""
    C, r = cfg.n_embd, cfg.mlp_ratio
    norm = C * (2 if cfg.norm == "layernorm" and cfg.bias else 1)
    block = 2 * norm + (4 + 2 * r) * C * C + ((4 + r) * C + C if cfg.bias else 0)
    return (cfg.n_colors + 1 + cfg.height * cfg.width) * C + cfg.n_layer * block + norm + C * cfg.n_colors


@dataclass(frozen=True)
class MemoryEstimate:
    """What a model config needs for one purpose: "load" (the weights), "train" (weights, gradients,
    AdamW moments and one micro-batch's activations) or "sample" (weights, KV cache, tokens)."""
    purpose: str
    parameters: int
    batch_size: int
    weight_bytes: int  # weights, and to train their gradients and optimizer moments
    activation_bytes: int

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes

    def text(self) -> str:
        what = {"load": "to load", "train": f"to train with batches of {self.batch_size:,}",
                "sample": f"to sample {self.batch_size:,} images at once"}[self.purpose]
        if self.purpose == "load":
            return f"about {gb(self.bytes)} {what} ({self.parameters:,} parameters)"
        return (f"about {gb(self.bytes)} {what} ({self.parameters:,} parameters: {gb(self.weight_bytes)} of weights"
                f"{' with gradients and optimizer state' if self.purpose == 'train' else ''}, "
                f"{gb(self.activation_bytes)} of activations)")


def gb(n: int) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.0f} MB"


def estimate_memory(cfg, purpose: str = "load", batch_size: int = 1, *,
                    activation_checkpointing: bool = False) -> MemoryEstimate:
    """A `MemoryEstimate` of `cfg` (a GPTConfig) for `purpose`, with batches of `batch_size` images."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    P, B, T, C, L = parameter_count(cfg), batch_size, cfg.height * cfg.width, cfg.n_embd, cfg.n_layer
    layer = B * T * C * (8 + 2 * cfg.mlp_ratio) * FLOAT  # one block's activations: norms, qkv, attention, MLP
    logits = B * T * cfg.n_colors * FLOAT
    if purpose == "load":
        weights, acts = P * FLOAT, 0
    elif purpose == "train":  # weights, gradients and AdamW's two moments; activations kept for backward
        weights = 4 * P * FLOAT
        kept = L * B * T * C * FLOAT + layer if activation_checkpointing else L * layer
        acts = kept + 2 * logits
    elif cfg.objective == "ar":  # KV cache of every layer, the tokens, one position's activations
        weights = P * FLOAT
        acts = 2 * L * B * T * C * FLOAT + B * T * 8 + B * (4 + cfg.mlp_ratio) * C * FLOAT
    else:  # bert: a whole forward pass per pixel, one layer at a time
        weights, acts = P * FLOAT, layer + logits + B * T * 8
    return MemoryEstimate(purpose, P, B, weights, acts)


def machine_memory(device="cpu") -> tuple[int, int]:
    """(available, total) bytes of memory on `device`: this machine's RAM, or a GPU's."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return free, total
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:  # Linux: what can be had without swapping
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024, total
    except (OSError, KeyError, ValueError):
        return total, total


def check_memory(cfg, purpose: str = "load", batch_size: int = 1, *, device="cpu",
                 activation_checkpointing: bool = False) -> MemoryEstimate:
    """`estimate_memory`, refused with a ValueError giving the estimate and the device's memory when
    it is more than the device has free. Called before anything is allocated."""
    est = estimate_memory(cfg, purpose, batch_size, activation_checkpointing=activation_checkpointing)
    if est.bytes <= CHECK_ABOVE or str(device) == "meta":
        return est
    free, total = machine_memory(device)
    if est.bytes > free:
        where = "this GPU" if str(device).startswith("cuda") else "this machine"
        fix = {"load": "the config (layers, width, image size, mlp_ratio) is not one this machine can hold; "
                       "if it was not meant to be this big, the checkpoint's config.json is damaged",
               "train": "choose fewer layers, a smaller width, image size or batch size "
                        "(or turn on activation checkpointing)",
               "sample": "sample fewer images at once"}[purpose]
        raise ValueError(f"the model needs {est.text()}, but {where} has {gb(free)} free of {gb(total)}: {fix}")
    return est
