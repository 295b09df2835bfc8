"""Figures of completions: originals beside their completions, and where the cut falls."""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..figures import image_grid


def completion_grid(originals: np.ndarray, completions: np.ndarray, keep_rows: int,
                    scale: int | None = None) -> Image.Image:
    """One row per image: the original with rows below `keep_rows` greyed out, then its completions,
    then the original.  originals N×H×W×C, completions N×S×H×W×C (uint8)."""
    originals = np.asarray(originals)
    shown = originals.copy()
    shown[:, keep_rows:] = 128
    n, s = completions.shape[:2]
    rows = np.concatenate([shown[:, None], completions, originals[:, None]], axis=1)
    return image_grid(rows.reshape(n * (s + 2), *originals.shape[1:]), ncols=s + 2, scale=scale)


CUT_COLOR = (255, 40, 40)


def cut_preview(image: np.ndarray, keep_rows: int, scale: int | None = None, dim: float = 0.35) -> Image.Image:
    """One uint8 H×W[×C] image enlarged (nearest neighbour, about 200 pixels wide by default) with the
    rows from `keep_rows` down dimmed and a red line at the cut: what a completion keeps."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    h, w = image.shape[:2]
    if not 0 <= keep_rows <= h:
        raise ValueError(f"keep_rows must lie in 0..{h}, got {keep_rows}")
    scale = scale or max(1, 200 // max(h, w))
    rgb = image.repeat(3, -1) if image.shape[-1] == 1 else image[..., :3]
    big = rgb.repeat(scale, 0).repeat(scale, 1).astype(np.float32)
    big[keep_rows * scale :] *= dim
    big = big.astype(np.uint8)
    line = min(max(keep_rows * scale - 1, 0), h * scale - 2)  # two pixels thick, inside the image
    big[line : line + 2] = CUT_COLOR
    return Image.fromarray(big)
