"""Pre-tokenised datasets: a split encoded once with a palette, kept on disk as a uint16 memmap.

Training reads a batch of rows at a time and widens it to long on the fly, so neither the
nearest-colour lookup nor an N×T int64 copy of a large set (100,000 images × 1,024 tokens would
be 800 MB) stands between the GPU and its next batch.

A cache file is named by everything its tokens depend on: the dataset, split, resolution, the
palette's channels and fingerprint, and for a dataset read from files (CIFAR, STL, IDX, folders)
those files: their folder, names, sizes and modification times, so files replaced behind the same
name get a new cache. It is written under a temporary name and renamed into place, and checked
each time it is opened (the .npy header, dtype, shape, exact file size, token range): a damaged
file is rebuilt with a warning, never used.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from ..storage import cache_root, write_file_atomically
from .registry import dataset_folder, load_dataset
from ..palette import Palette

ENCODE_CHUNK = 4096  # images encoded at a time: bounds the float32 copy palette.encode makes


def _source_files_id(dataset: str, root) -> str:
    """A short hash of the files a dataset is read from (folder, names, sizes, modification times);
    "" for the embedded and generated sets, which no file on disk changes."""
    folder = dataset_folder(dataset, root)
    if folder is None:
        return ""
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    lines = [str(folder.resolve())] + [f"{p.relative_to(folder)} {p.stat().st_size} {p.stat().st_mtime_ns}"
                                       for p in files]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:8]


def token_cache_path(dataset: str, split: str, palette: Palette, resolution: int, root=None,
                     cache_dir=None) -> Path:
    """Where `encoded_split` keeps this split's tokens."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("_")[:60] or "dataset"
    if safe != dataset:  # `folder:/a/b` and `folder:/a_b` must not share a file
        safe += "-" + hashlib.sha256(dataset.encode()).hexdigest()[:8]
    name = f"{split}-{resolution}px-{palette.channels}ch-{palette.n_colors}c-{palette.fingerprint}"
    files = _source_files_id(dataset, root)
    if files:
        name += "-files" + files
    base = Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "tokens"
    return base / safe / f"{name}.npy"


def _open_checked(path: Path, tokens_per_image: int, n_colors: int) -> np.memmap:
    """The cached tokens, or ValueError saying what is wrong with the file."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # a bad header, or a file shorter than its header says
        raise ValueError(f"unreadable ({e})") from None
    if arr.dtype != np.uint16 or arr.ndim != 2 or arr.shape[1] != tokens_per_image:
        raise ValueError(f"holds {arr.dtype} {arr.shape}, expected uint16 N×{tokens_per_image}")
    size = path.stat().st_size
    if size != arr.offset + arr.nbytes:
        raise ValueError(f"is {size} bytes, its header says {arr.offset + arr.nbytes}")
    top = max((int(arr[i : i + 65536].max()) for i in range(0, len(arr), 65536)), default=0)
    if top >= n_colors:
        raise ValueError(f"holds token {top}, outside this {n_colors}-colour palette")
    return arr


def encoded_split(dataset: str, split: str, palette: Palette, resolution: int, *, root=None,
                  cache_dir=None) -> np.ndarray:
    """The split's images encoded with `palette` (exactly `palette.encode(images)`) as a read-only
    uint16 N×(resolution²) memmap, built on first use under `cache_dir` (default
    `cache_root()/tokens`, i.e. $IGPT_LITE_CACHE/tokens or ~/.cache/igpt-lite/tokens) and
    reused after; where the cache cannot be written, an array in memory, with a warning.
    `root`: the data root the dataset is read from (default: the readers' own)."""
    if palette.n_colors > 2**16:
        raise ValueError(f"a {palette.n_colors}-colour palette does not fit uint16 tokens (at most 65,536 colours)")
    path = token_cache_path(dataset, split, palette, resolution, root, cache_dir)
    if path.exists():
        try:
            return _open_checked(path, resolution * resolution, palette.n_colors)
        except ValueError as e:
            warnings.warn(f"token cache {path} {e}; rebuilding it", stacklevel=2)
    images = load_dataset(dataset, split, resolution=resolution, root=root).images
    if len(images) == 0:
        raise ValueError(f"the {split} split of {dataset} holds no images: nothing to encode")
    shape = (len(images), resolution * resolution)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(path, lambda tmp: _encode(images, palette, np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint16, shape=shape)).flush())
    except OSError as e:  # a read-only or full disk costs speed, not the run
        warnings.warn(f"cannot write the token cache {path} ({e}); encoding in memory instead (set "
                      "IGPT_LITE_CACHE to a writable folder)", stacklevel=2)
        return _encode(images, palette, np.empty(shape, dtype=np.uint16))
    return _open_checked(path, resolution * resolution, palette.n_colors)


def _encode(images: np.ndarray, palette: Palette, out: np.ndarray) -> np.ndarray:
    for i in range(0, len(images), ENCODE_CHUNK):
        out[i : i + ENCODE_CHUNK] = palette.encode(images[i : i + ENCODE_CHUNK]).numpy()
    return out


def token_batch(tokens, idx) -> torch.Tensor:
    """Rows `idx` (in that order) of a token array (a memmap, any integer array, or a tensor) as a
    long tensor: what a training step reads."""
    if isinstance(tokens, torch.Tensor):
        return tokens[idx].long()
    idx = idx.numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
    return torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))
