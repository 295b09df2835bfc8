"""`igpt-lite palette`: fit a colour palette on a dataset."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import data
from ..arguments import SEED, VerbResult, count, data_args, overwrite_arg
from ..storage import write_file_atomically
from .colors import Palette, PaletteReport


@dataclass
class PaletteRun(VerbResult):
    """What `igpt-lite palette` wrote: the palette file, and its report on the validation split."""
    out: Path
    dataset: str
    resolution: tuple[int, int]  # the images' height and width
    report: PaletteReport

    def to_dict(self) -> dict:
        return {"out": str(self.out), "dataset": self.dataset, "resolution": list(self.resolution),
                **self.report.to_dict()}


def cmd_palette(args) -> PaletteRun:
    ds = data.load_dataset(args.data, "train", resolution=args.resolution, root=args.root)
    val = data.load_dataset(args.data, "val", resolution=args.resolution, root=args.root)
    out = Path(args.out)
    pal = Palette.fit(ds.images, args.colors, seed=args.seed)
    report = pal.report(val.images)  # measured on the validation split
    write_file_atomically(out, pal.save)
    return PaletteRun(out, args.data, tuple(ds.resolution), report)


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("palette", help="fit a k-means colour palette on a dataset")
    data_args(p, "digits", "dataset (default: %(default)s)")
    p.add_argument("--colors", type=count(2), default=8, help="palette size (default: %(default)s)")
    p.add_argument("--resolution", type=count(1), default=None,
                   help="image side in pixels (default: the dataset's native size)")
    p.add_argument("--seed", type=SEED, default=0, help="k-means seed (default: %(default)s)")
    p.add_argument("--out", default="palette.json", help="the palette file to write (default: %(default)s)")
    overwrite_arg(p, "--out")
    p.set_defaults(func=cmd_palette)
    return [sub.choices["palette"]]
