"""`igpt-lite sample` and `igpt-lite complete`: whole images, and images completed from their top rows."""
from __future__ import annotations

import time

from .. import checkpoint, data
from ..arguments import count, data_args, existing_file, input_images, model_arg, sampling_args, save_grid
from ..figures import image_grid
from .figures import completion_grid
from .sampling import complete_images, sample


def cmd_sample(args) -> dict:
    ck = checkpoint.load_checkpoint(args.model)
    cfg = ck.config
    t0 = time.perf_counter()
    tokens = sample(ck.model, args.n, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    seconds = time.perf_counter() - t0
    images = ck.palette.decode(tokens, cfg.height, cfg.width)
    return {"model": str(ck.path), "n": args.n, "seconds": seconds, "png": save_grid(image_grid(images), args.out),
            "tokens": tokens.tolist()}


def cmd_complete(args) -> dict:
    ck = checkpoint.load_checkpoint(args.model)
    images, source = input_images(args, ck, args.image, args.index or [])
    rows = args.rows if args.rows is not None else ck.config.height // 2
    result = complete_images(ck.model, ck.palette, images, rows, n_samples=args.samples,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    png = save_grid(completion_grid(images, result.images, rows), args.out)
    return {"model": str(ck.path), "source": source, "keep_rows": rows, "samples": args.samples,
            "seconds": result.seconds, "png": png, "tokens": result.tokens.tolist()}


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("sample", help="sample whole images")
    model_arg(p)
    p.add_argument("--n", type=count(1), default=8)
    sampling_args(p)
    p.set_defaults(func=cmd_sample)


    p = sub.add_parser("complete", help="complete images from their top rows")
    model_arg(p)
    p.add_argument("--image", type=existing_file, nargs="+", default=None,
                   help="image files (centre-cropped and resized)")
    data_args(p)
    p.add_argument("--split", default="test", choices=data.SPLITS)
    p.add_argument("--index", type=count(0), nargs="+", default=None,
                   help="images of the split (default: 8 spread over it)")
    p.add_argument("--rows", type=count(0), default=None, help="rows to keep (default: half)")
    p.add_argument("--samples", type=count(1), default=4, help="completions per image")
    sampling_args(p)
    p.set_defaults(func=cmd_complete)
    return [sub.choices["sample"], sub.choices["complete"]]
