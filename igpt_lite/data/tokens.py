"""Pre-tokenised datasets: a split encoded once with a palette, kept on disk as a uint16 memmap.

Training reads a batch of rows at a time and widens it to long on the fly, so neither the
nearest-colour lookup nor an N×T int64 copy of a large set (100,000 images × 1,024 tokens would
be 800 MB) stands between the GPU and its next batch.

A cache file is named by everything its tokens depend on: the dataset, split, resolution, the
palette's channels and fingerprint, and for a dataset read from files (CIFAR, STL, IDX, folders)
those files: their folder, names, sizes and modification times, so files replaced behind the same
name get a new cache. It is written with plain writes under a temporary name, synced and renamed
into place beside a checksum file (`.crc32`), and checked each time it is opened (the .npy header,
dtype, shape, exact file size, checksum, token range): a damaged file is rebuilt with a warning,
never used. A full disk while writing it costs speed, not the run (the split is encoded in memory).
Training reads rows with plain reads, so a file cut short under a running run is an error naming it.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from ..storage import cache_root, write_file_atomically
from .registry import dataset_folder, load_dataset
from ..palette import Palette

ENCODE_CHUNK = 4096  # images encoded at a time: bounds the float32 copy palette.encode makes


def source_files_id(dataset: str, root) -> str:
    """A short hash of the files a dataset is read from (folder, names, sizes, modification times);
    "" for the embedded and generated sets, which no file on disk changes."""
    folder = dataset_folder(dataset, root)
    if folder is None:
        return ""
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    lines = [str(folder.resolve())] + [f"{p.relative_to(folder)} {p.stat().st_size} {p.stat().st_mtime_ns}"
                                       for p in files]
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def token_cache_path(dataset: str, split: str, palette: Palette, resolution: int, root=None,
                     cache_dir=None) -> Path:
    """Where `encoded_split` keeps this split's tokens."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset).strip("_")[:60] or "dataset"
    if safe != dataset:  # `folder:/a/b` and `folder:/a_b` must not share a file
        safe += "-" + hashlib.sha256(dataset.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    name = f"{split}-{resolution}px-{palette.channels}ch-{palette.n_colors}c-{palette.fingerprint}"
    files = source_files_id(dataset, root)
    if files:
        name += "-files" + files
    if dataset.startswith("figures-p"):
        from .scenes import GENERATOR_VERSION

        name += f"-gen{GENERATOR_VERSION}"
    base = Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "tokens"
    return base / safe / f"{name}.npy"


def _check_path(path: Path) -> Path:
    """The sidecar holding the cache's checksum: 'CRC32 BYTES' of the token bytes after the header."""
    return path.with_suffix(".crc32")


def _open_checked(path: Path, tokens_per_image: int, n_colors: int) -> np.memmap:
    """The cached tokens, or ValueError saying what is wrong with the file. The token bytes are read
    once with plain reads (a file cut short is an error, never a SIGBUS) for their checksum and range."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # a bad header, or a file shorter than its header says
        raise ValueError(f"unreadable ({e})") from None
    if arr.dtype != np.uint16 or arr.ndim != 2 or arr.shape[1] != tokens_per_image:
        raise ValueError(f"holds {arr.dtype} {arr.shape}, expected uint16 N×{tokens_per_image}")
    size = path.stat().st_size
    if size != arr.offset + arr.nbytes:
        raise ValueError(f"is {size} bytes, its header says {arr.offset + arr.nbytes}")
    try:
        want = _check_path(path).read_text().split()
    except (OSError, UnicodeDecodeError):
        want = []
    crc, top = 0, 0
    with open(path, "rb") as f:
        f.seek(arr.offset)
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
            top = max(top, int(np.frombuffer(chunk, dtype=np.uint16).max(initial=0)))
    if top >= n_colors:
        raise ValueError(f"holds token {top}, outside this {n_colors}-colour palette")
    if want != [f"{crc:08x}", str(arr.nbytes)]:
        raise ValueError("does not match its checksum (it changed after it was written)" if want else
                         f"has no checksum file {_check_path(path).name}")
    return arr


def _write_cache(tmp: Path, final: Path, images: np.ndarray, palette: Palette, shape: tuple) -> None:
    """The .npy written with plain writes (a full disk is an OSError, not a SIGBUS through a memmap),
    then its checksum file; the caller renames the .npy into place last."""
    crc = 0
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<u2", "fortran_order": False, "shape": shape})
        for i in range(0, len(images), ENCODE_CHUNK):
            chunk = palette.encode(images[i : i + ENCODE_CHUNK]).numpy().astype("<u2").tobytes()
            crc = zlib.crc32(chunk, crc)
            f.write(chunk)
    write_file_atomically(_check_path(final), lambda t: t.write_text(f"{crc:08x} {2 * shape[0] * shape[1]}\n"))


def encoded_split(dataset: str, split: str, palette: Palette, resolution: int, *, root=None,
                  cache_dir=None) -> np.ndarray:
    """The split's images encoded with `palette` (exactly `palette.encode(images)`) as a read-only
    uint16 N×(resolution²) memmap, built on first use under `cache_dir` (default
    `cache_root()/tokens`, i.e. $IGPT_LITE_CACHE/tokens or ~/.cache/igpt-lite/tokens) and
    reused after; where the cache cannot be written (read-only, full), an array in memory, with a
    warning. `root`: the data root the dataset is read from (default: the readers' own)."""
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
        write_file_atomically(path, lambda tmp: _write_cache(tmp, path, images, palette, shape))
    except OSError as e:  # a read-only or full disk costs speed, not the run
        warnings.warn(f"cannot write the token cache {path} ({e}); encoding in memory instead (set "
                      "IGPT_LITE_CACHE to a writable folder)", stacklevel=2)
        return _encode(images, palette, np.empty(shape, dtype=np.uint16))
    return _open_checked(path, resolution * resolution, palette.n_colors)


def _encode(images: np.ndarray, palette: Palette, out: np.ndarray) -> np.ndarray:
    for i in range(0, len(images), ENCODE_CHUNK):
        out[i : i + ENCODE_CHUNK] = palette.encode(images[i : i + ENCODE_CHUNK]).numpy()
    return out


def _read_rows(tokens: np.memmap, idx: np.ndarray) -> np.ndarray:
    """Rows of a whole-file memmap read with plain reads: a cache file cut short while a run reads it
    is an error naming it, where touching the memmap's lost pages would kill the process (SIGBUS)."""
    row = tokens.shape[1] * tokens.itemsize
    out = np.empty((len(idx), tokens.shape[1]), dtype=tokens.dtype)
    with open(tokens.filename, "rb", buffering=0) as f:
        for j, i in enumerate(idx.tolist()):
            f.seek(tokens.offset + i * row)
            if f.readinto(memoryview(out[j]).cast("B")) != row:
                raise OSError(f"token cache {tokens.filename} is {os.fstat(f.fileno()).st_size} bytes, shorter "
                              f"than when it was opened ({tokens.offset + tokens.nbytes}): it was changed while "
                              "in use; delete it and run again (with --resume to continue a run)")
    return out


def token_batch(tokens, idx) -> torch.Tensor:
    """Rows `idx` (in that order) of a token array (a memmap, any integer array, or a tensor) as a
    long tensor: what a training step reads."""
    if isinstance(tokens, torch.Tensor):
        return tokens[idx].long()
    idx = idx.numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
    if isinstance(tokens, np.memmap) and isinstance(tokens.base, mmap.mmap) and tokens.flags.c_contiguous:
        return torch.from_numpy(_read_rows(tokens, idx).astype(np.int64))
    return torch.from_numpy(np.asarray(tokens[idx], dtype=np.int64))
