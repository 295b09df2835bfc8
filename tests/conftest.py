import numpy as np
import pytest
import torch

from igpt_lite.model import GPT, GPTConfig
from igpt_lite.palette import Palette


def tiny_config(**kw) -> GPTConfig:
    base = dict(n_colors=8, height=6, width=5, n_layer=2, n_head=2, n_embd=32)
    return GPTConfig(**{**base, **kw})


def tiny_model(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(tiny_config(**kw)).eval()


@pytest.fixture
def grey_palette() -> Palette:
    return Palette(np.linspace(-1, 1, 8, dtype=np.float32)[:, None])


@pytest.fixture
def rng():
    return np.random.default_rng(0)
