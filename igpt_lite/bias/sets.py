"""The four sets a bias test compares, and how they are made: users' folders (checked large enough
for the permutation test), and targets composed with attributes for the likelihood test."""
from __future__ import annotations

import numpy as np

from .stats import n_partitions, smallest_p_value

SET_NAMES = ("X", "Y", "A", "B")  # targets X, Y; attributes A, B
PAIRS = ("XA", "XB", "YA", "YB")  # each target set composed with each attribute set


def check_sets(checkpoint, sets: dict, keys) -> None:
    """`sets` holds every key, each a stack of images at `checkpoint`'s size (a composed set,
    n_targets×n_attributes×H×W×C, is checked image by image)."""
    missing = [k for k in keys if k not in sets]
    if missing:
        raise ValueError(f"sets must hold {', '.join(keys)}; missing {', '.join(missing)}")
    for k in keys:
        images = np.asarray(sets[k])
        checkpoint.check_images(images.reshape(-1, *images.shape[-3:]) if images.ndim > 4 else images, name=f"set {k}")


def compose_sets(sets: dict, split: str = "rows") -> dict:
    """{"XA", "XB", "YA", "YB"}: `compose_halves` of each target set of `sets` (X, Y) with each
    attribute set (A, B): the `composed` argument of `likelihood_test` for users' images."""
    return {t + a: compose_halves(sets[t], sets[a], split=split) for t in "XY" for a in "AB"}


def compose_halves(targets, attributes, split: str = "rows") -> np.ndarray:
    """Users' images composed for the likelihood test: uint8 n_t×n_a×H×W×C, entry [i, j] target i's
    top half over attribute j's bottom half (split="rows"), or target i's left half beside attribute
    j's right half (split="columns"). With rows, an ar model reads the whole target half first, so
    the score compares how likely each attribute half is after that target. It only means something
    when the targets' subject sits in their top (left) half and the attributes' in their bottom
    (right) half, as in images the model was trained on."""
    t, a = np.asarray(targets), np.asarray(attributes)
    if t.ndim != 4 or a.ndim != 4 or t.shape[1:] != a.shape[1:]:
        raise ValueError(f"targets and attributes must be image stacks of one size, got {t.shape} and {a.shape}")
    if split not in ("rows", "columns"):
        raise ValueError(f"split must be 'rows' or 'columns', got {split!r}")
    out = np.repeat(t[:, None], len(a), axis=1).copy()
    if split == "rows":
        h = t.shape[1] // 2
        out[:, :, h:] = a[None, :, h:]
    else:
        w = t.shape[2] // 2
        out[:, :, :, w:] = a[None, :, :, w:]
    return out


# ---- users' image folders ----

def load_ieat_folders(x, y, a, b, resolution: int, channels: int, crop: str = "center",
                      alpha: float = 0.05) -> dict:
    """The four folders of an iEAT run ({"x": data.ImageFolder, ...}), checked: each holds at least
    two images, and X and Y together are large enough that the permutation test could ever give
    p < alpha (two images each, for instance, allow only 6 partitions: p is never below 1/6)."""
    from ..data import load_image_folder

    folders = {name: load_image_folder(p, resolution, channels, crop) for name, p in dict(x=x, y=y, a=a, b=b).items()}
    check_target_sizes(len(folders["x"].files), len(folders["y"].files), alpha,
                       f"{folders['x'].path} and {folders['y'].path}")
    return folders


def check_target_sizes(n_x: int, n_y: int, alpha: float = 0.05, what: str = "X and Y") -> None:
    """Refuse target sets too small for the permutation test ever to give p < alpha (two images
    each, for instance, allow only 6 partitions: p is never below 1/6)."""
    if smallest_p_value(n_x, n_y) >= alpha:
        raise ValueError(f"{what} hold {n_x} and {n_y} images: they split only {n_partitions(n_x, n_y)} ways, so the "
                         f"smallest possible p-value is {smallest_p_value(n_x, n_y):.3g} and no result could be "
                         f"significant at {alpha}; add target images (4 per set is the least for equal sets; 20 or "
                         "more is advisable)")
