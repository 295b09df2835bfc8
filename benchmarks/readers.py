"""Reading speed of the dataset readers on full-size files (random pixels in the official layouts,
written to a temporary data root first; nothing is downloaded).

    python benchmarks/readers.py [--stl-unlabeled] [--json]

For each dataset and split: seconds for `load_dataset(name, split)` with its images copied into
memory (uint8 N×H×W×C) and images/s, then the same again, and `check_datasets` over them all. The
files were just written, so both reads find them in the page cache: the figures are the readers'
own cost (parsing, reordering planes, gzip), not the disk's.
--stl-unlabeled also writes STL-10's 100,000-image unlabeled file (2.8 GB) and times opening it
(a memory map) and reading 1,000 chosen rows of it.
"""
import argparse
import gzip
import json
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from igpt_lite.data import check_datasets, load_dataset


def write_fixtures(root: Path, stl_unlabeled: bool, scale: float = 1.0) -> None:
    rng = np.random.default_rng(0)
    k = lambda n: max(1, round(n * scale))  # noqa: E731 (images per file at this scale)

    def records(n, head):  # label byte(s) + 3,072 pixel bytes, as CIFAR's binary version
        labels = rng.integers(0, 10, (n, head), dtype=np.uint8)
        return np.concatenate([labels, rng.integers(0, 256, (n, 3072), dtype=np.uint8)], axis=1).tobytes()

    cifar10 = root / "cifar-10-batches-bin"
    cifar10.mkdir()
    for i in range(1, 6):
        (cifar10 / f"data_batch_{i}.bin").write_bytes(records(k(10_000), 1))
    (cifar10 / "test_batch.bin").write_bytes(records(k(10_000), 1))
    cifar100 = root / "cifar-100-binary"
    cifar100.mkdir()
    (cifar100 / "train.bin").write_bytes(records(k(50_000), 2))
    (cifar100 / "test.bin").write_bytes(records(k(10_000), 2))
    for name in ("mnist", "fashion-mnist"):  # gzipped, as the official files
        folder = root / name
        folder.mkdir()
        for prefix, n in (("train", k(60_000)), ("t10k", k(10_000))):
            images = struct.pack(">IIII", 0x803, n, 28, 28) + rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes()
            labels = struct.pack(">II", 0x801, n) + rng.integers(0, 10, n, dtype=np.uint8).tobytes()
            (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images, compresslevel=1))
            (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels, compresslevel=1))
    stl = root / "stl10_binary"
    stl.mkdir()
    for split, n in (("train", k(5_000)), ("test", k(8_000))):
        (stl / f"{split}_X.bin").write_bytes(rng.integers(0, 256, n * 27_648, dtype=np.uint8).tobytes())
        (stl / f"{split}_y.bin").write_bytes(rng.integers(1, 11, n, dtype=np.uint8).tobytes())
    if stl_unlabeled:
        with open(stl / "unlabeled_X.bin", "wb") as f:
            for _ in range(10):
                f.write(rng.integers(0, 256, k(10_000) * 27_648, dtype=np.uint8).tobytes())


def read_whole(name, split, root):
    """The split in memory: a whole one-file split comes back as a memory map, read only when used."""
    ds = load_dataset(name, split, root=root)
    ds.images = np.array(ds.images)
    return ds


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stl-unlabeled", action="store_true")
    p.add_argument("--scale", type=float, default=1.0, help="file sizes as a fraction of the official ones")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="igpt-readers-") as tmp:
        root = Path(tmp)
        _, write_s = timed(lambda: write_fixtures(root, args.stl_unlabeled, args.scale))
        for name in ("cifar10", "cifar100", "stl10", "mnist-idx", "fashion-mnist"):
            for split in ("train", "val", "test"):
                first, s1 = timed(lambda: read_whole(name, split, root))
                _, s2 = timed(lambda: read_whole(name, split, root))
                n = len(first)
                rows.append({"dataset": name, "split": split, "images": n, "shape": list(first.images.shape[1:]),
                             "seconds": s1, "images_per_s": n / s1, "again_seconds": s2})
        if args.stl_unlabeled:
            ds, s_open = timed(lambda: load_dataset("stl10", "unlabeled", root=root))
            some, s_some = timed(lambda: load_dataset("stl10", "unlabeled", limit=min(1000, len(ds)), root=root))
            rows.append({"dataset": "stl10", "split": "unlabeled (open: a memory map)", "images": len(ds),
                         "shape": list(ds.images.shape[1:]), "seconds": s_open, "images_per_s": None,
                         "again_seconds": None})
            rows.append({"dataset": "stl10", "split": "unlabeled, 1,000 chosen rows", "images": len(some),
                         "shape": list(some.images.shape[1:]), "seconds": s_some,
                         "images_per_s": len(some) / s_some, "again_seconds": None})
        statuses, check_s = timed(lambda: check_datasets(root))
    result = {"fixture_write_s": write_s, "check_datasets_s": check_s,
              "check": {s.name: s.status for s in statuses}, "rows": rows}
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    print(f"{'dataset':<15}{'split':<32}{'images':>8}{'seconds':>9}{'images/s':>11}{'again':>8}")
    for r in rows:
        ips = f"{r['images_per_s']:>11,.0f}" if r["images_per_s"] else f"{'':>11}"
        again = f"{r['again_seconds']:>8.2f}" if r["again_seconds"] is not None else ""
        print(f"{r['dataset']:<15}{r['split']:<32}{r['images']:>8,}{r['seconds']:>9.2f}{ips}{again}")
    print(f"check_datasets over all of them: {check_s:.2f} s ({result['check']})")
    return result


if __name__ == "__main__":
    main()
