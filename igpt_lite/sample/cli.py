"""`igpt-lite sample` and `igpt-lite complete`: whole images, and images completed from their top rows."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .. import data
from ..arguments import (VerbResult, count, data_args, device_arg, existing_file, input_images, load_model, model_arg,
                         sampling_args, save_grid)
from ..figures import image_grid
from .figures import completion_grid
from .sampling import Completions, complete_images, sample


@dataclass
class SampleRun(VerbResult):
    """What `igpt-lite sample` made: whole images' tokens, the sampling time, and where the grid went."""
    model: str
    tokens: torch.Tensor  # long N×T
    seconds: float
    png: str | None
    hidden = ("tokens",)

    def to_dict(self) -> dict:
        return {"model": self.model, "n": len(self.tokens), "seconds": self.seconds, "png": self.png,
                "tokens": self.tokens.tolist()}


@dataclass
class CompletionRun(VerbResult):
    """What `igpt-lite complete` made: the Completions, the images' source, and where the grid went."""
    model: str
    source: str | list[str]  # image files, or a dataset's split and indices
    completions: Completions
    png: str | None
    hidden = ("tokens",)

    def to_dict(self) -> dict:
        done = self.completions
        return {"model": self.model, "source": self.source, "keep_rows": done.keep_rows,
                "samples": done.tokens.shape[1], "seconds": done.seconds, "png": self.png,
                "tokens": done.tokens.tolist()}


def cmd_sample(args) -> SampleRun:
    ck = load_model(args)
    cfg = ck.config
    t0 = time.perf_counter()
    tokens = sample(ck.model, args.n, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    seconds = time.perf_counter() - t0
    images = ck.palette.decode(tokens, cfg.height, cfg.width)
    return SampleRun(str(ck.path), tokens, seconds, save_grid(image_grid(images), args.out))


def cmd_complete(args) -> CompletionRun:
    ck = load_model(args)
    images, source = input_images(args, ck, args.image, args.index or [])
    rows = args.rows if args.rows is not None else ck.config.height // 2
    if rows > ck.config.height:
        raise ValueError(f"argument --rows: must be between 0 and {ck.config.height} (the model's image height), got {rows}")
    done = complete_images(ck.model, ck.palette, images, rows, n_samples=args.samples,
                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    return CompletionRun(str(ck.path), source, done, save_grid(completion_grid(images, done.images, rows), args.out))


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("sample", help="sample whole images")
    model_arg(p)
    device_arg(p)
    p.add_argument("--n", type=count(1), default=8, help="images to sample (default: %(default)s)")
    sampling_args(p)
    p.set_defaults(func=cmd_sample)


    p = sub.add_parser("complete", help="complete images from their top rows")
    model_arg(p)
    device_arg(p)
    p.add_argument("--image", type=existing_file, nargs="+", default=None,
                   help="image files, centre-cropped and resized (default: images of --split)")
    data_args(p)
    p.add_argument("--split", default="test", choices=data.SPLITS, help="(default: %(default)s)")
    p.add_argument("--index", type=count(0), nargs="+", default=None,
                   help="images of the split (default: 8 spread over it)")
    p.add_argument("--rows", type=count(0), default=None, help="rows to keep (default: half)")
    p.add_argument("--samples", type=count(1), default=4, help="completions per image (default: %(default)s)")
    sampling_args(p)
    p.set_defaults(func=cmd_complete)
    return [sub.choices["sample"], sub.choices["complete"]]
