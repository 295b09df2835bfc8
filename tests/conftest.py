import os
import shutil
import subprocess

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


# ---- a small disk: the full-disk cases ----

@pytest.fixture
def small_disk(tmp_path):
    """make(size) -> a folder on a fresh tmpfs of that size (root only: skipped, saying so, elsewhere)."""
    mounted = []

    def make(size="4m"):
        d = tmp_path / f"disk{len(mounted)}"
        d.mkdir()
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True,
                               text=True)
        except FileNotFoundError:
            pytest.skip("no mount command here: the full-disk cases need a small tmpfs (root)")
        if r.returncode:
            pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'mount failed'}): the full-disk "
                        "cases need root")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill_disk(disk, leave: int = 0) -> None:
    """Fill the disk holding `disk` up to `leave` free bytes (a file named filler)."""
    with open(disk / "filler", "ab") as f:
        f.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
