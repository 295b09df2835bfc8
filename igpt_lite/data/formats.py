"""Readers of the published dataset files: CIFAR-10 and CIFAR-100 (binary version), STL-10
(binary) and IDX (MNIST, Fashion-MNIST), laid out under a root folder as the official archives
extract. data.py serves them through `load_dataset`; this module knows only the files.

Files are memory-mapped and only the rows asked for are read, so STL-10's 100,000-image unlabeled
split never lies whole in RAM. Every file is checked before its first row is used (present, a whole
number of records, header, dimensions, label range, as many labels as images): a problem is an
error naming the file, what is wrong and what to do; nothing is half-loaded. No pickle: CIFAR's
"python version" is refused.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

GUIDE = "see data/README.md"
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]  # published in the dataset's README; the archive ships no names file


@dataclass(frozen=True)
class Spec:
    folder: str  # under the root, as the official archive extracts
    holds: str  # what the folder holds (for messages)
    download: str  # the name `igpt-lite data download` takes
    native: int  # image side in pixels
    official: dict  # split -> images in the official files
    python_folder: str | None = None  # the pickle version's folder, refused


_CIFAR100 = "the files of cifar-100-binary.tar.gz (train.bin, test.bin, fine_label_names.txt, coarse_label_names.txt)"
_IDX = ("{}'s four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte; each .gz or not)")
DATASETS = {
    "cifar10": Spec("cifar-10-batches-bin", "the files of cifar-10-binary.tar.gz (data_batch_1.bin … data_batch_5.bin, "
                    "test_batch.bin, batches.meta.txt)", "cifar10", 32, {"train": 50_000, "test": 10_000},
                    "cifar-10-batches-py"),
    "cifar100": Spec("cifar-100-binary", _CIFAR100, "cifar100", 32, {"train": 50_000, "test": 10_000},
                     "cifar-100-python"),
    # the same files read with their coarse (20 superclass) labels: a name of its own, so that a
    # checkpoint's meta["dataset"] says which labels its probes used
    "cifar100-coarse": Spec("cifar-100-binary", _CIFAR100, "cifar100", 32, {"train": 50_000, "test": 10_000},
                            "cifar-100-python"),
    "stl10": Spec("stl10_binary", "the files of stl10_binary.tar.gz (train_X.bin, train_y.bin, test_X.bin, "
                  "test_y.bin, unlabeled_X.bin, class_names.txt)", "stl10", 96,
                  {"train": 5_000, "test": 8_000, "unlabeled": 100_000}),
    "mnist-idx": Spec("mnist", _IDX.format("MNIST"), "mnist-idx", 28, {"train": 60_000, "test": 10_000}),
    "fashion-mnist": Spec("fashion-mnist", _IDX.format("Fashion-MNIST"), "fashion-mnist", 28,
                          {"train": 60_000, "test": 10_000}),
}


@dataclass
class Official:
    """One official split as it lies on disk: image parts (N_i×H×W×C uint8 views of memory-mapped
    or decompressed files, in file order) and every label in memory (-1 where the split has none)."""

    parts: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray | None = None) -> np.ndarray:
        """The images of the sorted rows `idx` as uint8 N×H×W×C, reading only those rows. All rows
        of a one-file split (idx None) are the memory-mapped view itself: nothing is read yet."""
        if idx is None:
            if len(self.parts) == 1:
                return self.parts[0]
            idx = np.arange(len(self))
        out = np.empty((len(idx), *self.parts[0].shape[1:]), dtype=np.uint8)
        start = 0
        for part in self.parts:
            inside = (idx >= start) & (idx < start + len(part))
            out[inside] = part[idx[inside] - start]
            start += len(part)
        return out


def _again(spec: Spec) -> str:
    return f"download it again (igpt-lite data download {spec.download}; {GUIDE})"


def _folder(spec: Spec, root: Path) -> Path:
    folder = root / spec.folder
    if folder.is_dir():
        return folder
    if spec.python_folder and (root / spec.python_folder).is_dir():
        raise ValueError(f"{root / spec.python_folder}: this is the CIFAR \"python version\" (pickle files), which "
                         "igpt-lite refuses to read: unpickling a file can run any code in it. Use the binary version, "
                         f"which extracts to {spec.folder}/: igpt-lite data download {spec.download} ({GUIDE})")
    raise FileNotFoundError(f"{folder}: no such folder; it should hold {spec.holds} ({GUIDE}), or run igpt-lite data "
                            f"download {spec.download} (the data root is --root, else $IGPT_LITE_DATA, else "
                            "data/datasets/)")


def _file(folder: Path, name: str, spec: Spec) -> Path:
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; {_again(spec)}")
    return path


def _records(path: Path, size: int, spec: Spec) -> np.ndarray:
    """A file of fixed-size records as a read-only memory map, rows × size."""
    n_bytes = path.stat().st_size
    if n_bytes == 0:
        raise ValueError(f"{path.name}: the file is empty; {_again(spec)}")
    if n_bytes % size:
        raise ValueError(f"{path.name}: {n_bytes:,} bytes is not a whole number of {size:,}-byte records; the file is "
                         f"truncated — {_again(spec)}")
    return np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, size)


def _labels(path: Path, labels: np.ndarray, low: int, high: int, spec: Spec) -> np.ndarray:
    bad = np.flatnonzero((labels < low) | (labels > high))
    if len(bad):
        raise ValueError(f"{path.name}: record {bad[0]:,} has label {labels[bad[0]]}, but labels here run from {low} "
                         f"to {high}; the file is corrupt — {_again(spec)}")
    return labels.astype(np.int64)


def _names(folder: Path, file: str, n: int) -> list[str]:
    """Class names, one a line, from the archive's own file (none if the file is not there)."""
    path = folder / file
    if not path.is_file():
        return []
    names = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(names) != n:
        raise ValueError(f"{path.name}: {len(names)} class names, where there are {n} classes; the file is "
                         f"damaged — restore it from the archive or delete it")
    return names


# ---- CIFAR (binary version): records of label byte(s) then R, G, B 32×32 planes, row-major ----

def _cifar(name: str, split: str, root: Path) -> Official:
    spec = DATASETS[name]
    folder = _folder(spec, root)
    if name == "cifar10":
        files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
        header, label_at, n_classes, names = 1, 0, 10, _names(folder, "batches.meta.txt", 10)
    else:  # a coarse label byte, then a fine one
        files = ["train.bin" if split == "train" else "test.bin"]
        coarse = name == "cifar100-coarse"
        header, label_at, n_classes = 2, 0 if coarse else 1, 20 if coarse else 100
        names = _names(folder, "coarse_label_names.txt" if coarse else "fine_label_names.txt", n_classes)
    parts, labels, first = [], [], None
    for file in files:
        path = _file(folder, file, spec)
        rec = _records(path, header + 3072, spec)
        if first is not None and len(rec) != len(parts[0]):  # a cut at a record boundary still shows here
            raise ValueError(f"{file}: {len(rec):,} records where {first} has {len(parts[0]):,}; the file is truncated "
                             f"— {_again(spec)}")
        first = first or file
        labels.append(_labels(path, np.asarray(rec[:, label_at]), 0, n_classes - 1, spec))
        parts.append(rec[:, header:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return Official(parts, np.concatenate(labels), names)


# ---- STL-10 (binary): 3×96×96 per image, each channel column-major; labels 1..10 ----

STL_IMAGE = 3 * 96 * 96


def _stl(split: str, root: Path) -> Official:
    spec = DATASETS["stl10"]
    folder = _folder(spec, root)
    x_path = _file(folder, f"{split}_X.bin", spec)
    rec = _records(x_path, STL_IMAGE, spec)
    # column-major planes: the file's axes are (image, channel, column, row)
    images = rec.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
    names = _names(folder, "class_names.txt", 10)
    if split == "unlabeled":
        return Official([images], np.full(len(images), -1, dtype=np.int64), names)
    y_path = _file(folder, f"{split}_y.bin", spec)
    y = np.fromfile(y_path, dtype=np.uint8)
    if len(y) != len(images):
        raise ValueError(f"{y_path.name}: {len(y):,} labels for the {len(images):,} images of {x_path.name}; one of "
                         f"the two is truncated — {_again(spec)}")
    return Official([images], _labels(y_path, y, 1, 10, spec) - 1, names)


# ---- IDX (MNIST, Fashion-MNIST): magic 0x0000 08 NDIM, NDIM big-endian int32 sizes, unsigned bytes ----

def _gzip_read(path: Path, n: int, again: str) -> bytes:
    """The first `n` bytes of a .gz file's contents (fewer if it holds fewer): never more, so a file
    that inflates to gigabytes costs only what its header promised."""
    try:
        with gzip.open(path, "rb") as f:
            return f.read(n)
    except EOFError:
        raise ValueError(f"{path.name}: the gzip stream ends early; the file is truncated — {again}") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise ValueError(f"{path.name}: not a readable gzip file ({e}); the file is corrupt — {again}") from None


@lru_cache(maxsize=4)
def _gunzipped(path: str, stamp: tuple, again: str, limit: int) -> np.ndarray:
    """A .gz file's contents, at most `limit` + 1 bytes (cached per file version: train and val read
    the same file)."""
    return np.frombuffer(_gzip_read(Path(path), limit + 1, again), dtype=np.uint8)


def _idx(folder: Path, file: str, ndim: int, spec: Spec) -> tuple[np.ndarray, Path]:
    """An IDX file (plain, else .gz) as an array of its own dimensions. The header is checked before
    the body is read, and a header promising more than ten times the official files is refused."""
    path = folder / file
    head = 4 + 4 * ndim
    if path.is_file():
        buf = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
        header = bytes(buf[:head])
    elif path.with_name(file + ".gz").is_file():
        path = path.with_name(file + ".gz")
        header, buf = _gzip_read(path, head, _again(spec)), None
    else:
        raise FileNotFoundError(f"{path}: missing (nor {file}.gz); {_again(spec)}")
    if len(header) < head:
        raise ValueError(f"{path.name}: {len(header)} bytes, shorter than an IDX header; the file is truncated — "
                         f"{_again(spec)}")
    magic = int.from_bytes(header[:4], "big")
    if magic != 0x0800 + ndim:
        raise ValueError(f"{path.name}: magic number 0x{magic:08x}, where an IDX file of unsigned bytes in {ndim} "
                         f"dimension{'s' if ndim > 1 else ''} starts with 0x{0x0800 + ndim:08x}; not the "
                         f"{'images' if ndim == 3 else 'labels'} file it is named for — {_again(spec)}")
    dims = tuple(int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    want = head + int(np.prod(dims, dtype=np.int64))
    largest = 10 * max(spec.official.values()) * (spec.native ** 2 if ndim == 3 else 1)
    if want - head > largest:
        raise ValueError(f"{path.name}: its header promises {'×'.join(map(str, dims))} = {want - head:,} bytes, more than "
                         f"ten times the official files ({largest:,}); not this dataset's file — {_again(spec)}")
    if buf is None:
        st = path.stat()
        buf = _gunzipped(str(path), (st.st_mtime_ns, st.st_size), _again(spec), want)
    if len(buf) != want:
        what = "truncated" if len(buf) < want else "longer than its header says"
        raise ValueError(f"{path.name}: {len(buf):,} bytes where its header ({'×'.join(map(str, dims))}) needs "
                         f"{want:,}; the file is {what} — {_again(spec)}")
    return buf[head:].reshape(dims), path


def _idx_split(name: str, split: str, root: Path) -> Official:
    spec = DATASETS[name]
    folder = _folder(spec, root)
    stem = "train" if split == "train" else "t10k"
    images, x_path = _idx(folder, f"{stem}-images-idx3-ubyte", 3, spec)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{x_path.name}: images of {images.shape[1]}×{images.shape[2]} pixels, where "
                         f"{name} images are 28×28; not this dataset's file — {_again(spec)}")
    labels, y_path = _idx(folder, f"{stem}-labels-idx1-ubyte", 1, spec)
    if len(labels) != len(images):
        raise ValueError(f"{y_path.name}: {len(labels):,} labels for the {len(images):,} images of {x_path.name}; "
                         f"the two files do not belong together — {_again(spec)}")
    names = FASHION_NAMES if name == "fashion-mnist" else [str(i) for i in range(10)]
    return Official([images[..., None]], _labels(y_path, np.asarray(labels), 0, 9, spec), list(names))


def read_official(name: str, split: str, root) -> Official:
    """One official split ("train", "test"; "unlabeled" for stl10) of a dataset in DATASETS,
    checked, its images memory-mapped. Missing files: FileNotFoundError; damaged or refused ones:
    ValueError; both name the file and say what to do."""
    spec = DATASETS[name]
    if split not in spec.official:
        raise ValueError(f"{name} has the official splits {', '.join(spec.official)}, not {split!r}")
    root = Path(root)
    if name.startswith("cifar"):
        return _cifar(name, split, root)
    if name == "stl10":
        return _stl(split, root)
    return _idx_split(name, split, root)
