"""Datasets by name, as plain arrays: uint8 images N×H×W×C, int labels, deterministic splits.

Embedded sets need no download (embedded.py). Datasets users bring (CIFAR-10/100, STL-10,
MNIST/Fashion-MNIST IDX: formats.py) are read from a root folder (`data_root`), image folders by
`folder:PATH` (images.py); other arrays plug in through `register_dataset`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

import numpy as np

from .. import validate
from . import embedded, formats
from ..storage import default_data_root
from .images import image_classes, resize, to_channels

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # embedded and folder datasets
VAL_FRACTION = 0.1  # of a real dataset's official training split, held out as val
DEFAULT_ROOT = default_data_root()
FOLDER = "folder:"
FOLDER_RESOLUTION = 32  # folder images come in any size: centre-cropped and resized to this by default


@dataclass
class Dataset:
    """One split of a dataset as plain arrays: uint8 images N×H×W×C, int labels N, class names.

    Example::

        test = load_dataset("mnist", "test", resolution=28, limit=100)
        test.images.shape, test.labels[:5], test.class_names[:3]
    """

    name: str
    images: np.ndarray  # uint8 N×H×W×C
    labels: np.ndarray  # int64 N
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        shape = "×".join(str(s) for s in self.images.shape[1:])
        return f"Dataset({self.name!r}: {len(self)} images {shape}, {len(self.class_names) or 'no'} classes)"

    @property
    def resolution(self) -> tuple[int, int]:
        return self.images.shape[1], self.images.shape[2]

    @property
    def channels(self) -> int:
        return self.images.shape[3]


_LOADERS: dict[str, Callable] = dict(embedded.LOADERS)  # and the registered ones
NATIVE_RESOLUTION = {**embedded.NATIVE_RESOLUTION, **{name: spec.native for name, spec in formats.DATASETS.items()}}


def register_dataset(name: str, loader: Callable[[], tuple], native_resolution: int) -> None:
    """Add a dataset: `loader()` returns (uint8 N×H×W×C images, int labels, class names)."""
    _LOADERS[name] = loader
    NATIVE_RESOLUTION[name] = native_resolution
    _load_all.cache_clear()


def register_figures(p: float, n: int = 10_000, seed: int = 0, resolution: int = 32) -> str:
    """Serve the figures scenes at rate p as a dataset (train/val/test splits of n scenes); its name."""
    from .scenes import dataset_name

    name = dataset_name(p)
    register_dataset(name, partial(embedded.load_figures, p, n, seed, resolution), native_resolution=resolution)
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
    """The folder real datasets are read from: `root`, else $IGPT_LITE_DATA, else data/datasets/ in a
    checkout, else the platform's user data folder (`storage.default_data_root`)."""
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
    and channels, so that it is never read whole into RAM).

    Example::

        train = load_dataset("digits", "train")
        cifar = load_dataset("cifar10", "test", resolution=32, root="~/datasets")
    """
    if limit is not None:
        validate.integer("limit", limit, low=1)
    if name.startswith(FOLDER):
        images, labels, class_names = image_classes(name[len(FOLDER):], resolution or FOLDER_RESOLUTION)
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


@dataclass
class DatasetCheck:
    """`igpt-lite data check`: the data root and what `check_datasets` found there."""

    root: Path
    statuses: list[DatasetStatus]

    def to_dict(self) -> dict:
        return {"root": str(self.root), "datasets": [s.to_dict() for s in self.statuses]}

    def text(self) -> str:
        """One line per dataset (name, status, images per split or its folder), then its problem and notes."""
        lines = [f"root: {self.root}"]
        for s in self.statuses:
            counts = ", ".join(f"{k} {v:,}" for k, v in s.counts.items())
            lines.append(f"{s.name:<16} {s.status:<8} {counts or s.folder}")
            lines += [f"    {text}" for text in ([s.problem] if s.status == "broken" else []) + s.notes]
        return "\n".join(lines)


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

