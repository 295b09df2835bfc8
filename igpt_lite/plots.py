"""Every figure igpt-lite draws, built from plain arrays and tables. The app, the notebooks and the
CLI call these, so a figure looks the same everywhere.

Image grids are PIL images (for PNG files and st.image); charts are plotly figures.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, ncols: int | None = None, scale: int = 4, pad: int = 1,
               pad_value: int = 128) -> Image.Image:
    """uint8 N×H×W×C (or N×H×W) images tiled row-major into one enlarged PIL image."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, ncols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = img
    canvas = canvas.repeat(scale, 0).repeat(scale, 1)
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def completion_grid(originals: np.ndarray, completions: np.ndarray, keep_rows: int, scale: int = 4) -> Image.Image:
    """One row per image: the original with rows below `keep_rows` greyed out, then its completions,
    then the original.  originals N×H×W×C, completions N×S×H×W×C (uint8)."""
    originals = np.asarray(originals)
    shown = originals.copy()
    shown[:, keep_rows:] = 128
    n, s = completions.shape[:2]
    rows = np.concatenate([shown[:, None], completions, originals[:, None]], axis=1)
    return image_grid(rows.reshape(n * (s + 2), *originals.shape[1:]), ncols=s + 2, scale=scale)
