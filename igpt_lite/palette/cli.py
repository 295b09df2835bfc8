"""`igpt-lite palette`: fit a colour palette on a dataset."""
from __future__ import annotations

from pathlib import Path

from .. import data
from ..arguments import SEED, count, data_args, overwrite_arg
from ..storage import write_file_atomically
from .colors import Palette


def cmd_palette(args) -> dict:
    ds = data.load_dataset(args.data, "train", resolution=args.resolution, root=args.root)
    val = data.load_dataset(args.data, "val", resolution=args.resolution, root=args.root)
    out = Path(args.out)
    pal = Palette.fit(ds.images, args.colors, seed=args.seed)
    report = pal.report(val.images)  # measured on the validation split
    write_file_atomically(out, pal.save)
    return {"out": str(out), "dataset": args.data, "resolution": list(ds.resolution), **report.to_dict()}


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("palette", help="fit a k-means colour palette on a dataset")
    data_args(p, "digits", "dataset (default digits)")
    p.add_argument("--colors", type=count(2), default=8)
    p.add_argument("--resolution", type=count(1), default=None)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", default="palette.json")
    overwrite_arg(p, "--out")
    p.set_defaults(func=cmd_palette)
    return [sub.choices["palette"]]
