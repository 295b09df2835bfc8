import os

import numpy as np
import pytest
import torch

from igpt_lite.model import GPT, GPTConfig
from igpt_lite.palette import Palette


@pytest.fixture(autouse=True, scope="session")
def _cache_in_tmp(tmp_path_factory):
    """Caches (token cache, probe reports, features) go to a temporary folder, never the user's
    ~/.cache; subprocesses (the CLI, torchrun) inherit it."""
    before = os.environ.get("IGPT_LITE_CACHE")
    os.environ["IGPT_LITE_CACHE"] = str(tmp_path_factory.mktemp("igpt-lite-cache"))
    yield
    if before is None:
        os.environ.pop("IGPT_LITE_CACHE")
    else:
        os.environ["IGPT_LITE_CACHE"] = before


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
