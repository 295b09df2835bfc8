"""How well a model predicts images: mean bits per pixel over a set, and bits per image."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .model import GPT


@torch.no_grad()
def evaluate_bits_per_dim(model: GPT, tokens: torch.Tensor, batch_size: int = 64, seed: int = 0) -> float:
    """Mean negative log-likelihood in bits per pixel (nats / ln 2). For the BERT objective this is
    over masked pixels only (with masks drawn from `seed`), so it is not comparable to an ar model's."""
    was_training = model.training
    model.eval()
    device = model.device
    total, count = 0.0, 0
    for i in range(0, len(tokens), batch_size):
        batch = tokens[i : i + batch_size].to(device)
        loss = model.loss(batch, generator=torch.Generator().manual_seed(seed + i))
        total += loss.item() * len(batch)
        count += len(batch)
    model.train(was_training)
    return total / count / math.log(2)


@torch.no_grad()
def bits_per_image(model: GPT, tokens: torch.Tensor, batch_size: int = 64, on_batch=None) -> torch.Tensor:
    """Each image's negative log-likelihood under an ar model, in bits (its bits/dim × pixels):
    for comparing images one by one, where `evaluate_bits_per_dim` averages over all of them.
    `on_batch(n)`: called with each batch's number of images once it is scored (progress)."""
    if model.config.objective != "ar":
        raise ValueError("bits_per_image needs an ar model (a bert model's loss covers masked pixels only)")
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(tokens), batch_size):
        batch = tokens[i : i + batch_size].to(model.device)
        logits = model(model.image_inputs(batch))
        out.append(F.cross_entropy(logits.transpose(1, 2), batch, reduction="none").sum(1).cpu())
        if on_batch is not None:
            on_batch(len(batch))
    model.train(was_training)
    return torch.cat(out) / math.log(2)
