"""Command line: `igpt-lite VERB ...` (also `python -m igpt_lite`). Thin: parse, call the library,
print a human summary, or with --json exactly one JSON object on stdout."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, data
from .model import PRESETS, GPTConfig, preset
from .palette import Palette


def _model_arg(p):
    p.add_argument("--model", required=True, help="checkpoint folder, training run folder, or a model name")


def _sampling_args(p):
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the images as a PNG grid here")


def cmd_palette(args) -> dict:
    ds = data.load_dataset(args.data, "train", resolution=args.resolution)
    val = data.load_dataset(args.data, "val", resolution=args.resolution)
    pal = Palette.fit(ds.images, args.colors, seed=args.seed)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --overwrite")
    pal.save(out)
    return {"out": str(out), "dataset": args.data, "resolution": list(ds.resolution), "n_colors": pal.n_colors,
            "channels": pal.channels, "round_trip_error": pal.round_trip_error(val.images),
            "token_entropy_bits": pal.token_entropy_bits(pal.encode(val.images)), "fingerprint": pal.fingerprint}


def cmd_train(args) -> dict:
    from .train import TrainConfig, pretrain

    res = args.resolution or data.NATIVE_RESOLUTION.get(args.data)
    sizes = {k: v for k, v in dict(n_layer=args.layers, n_head=args.heads, n_embd=args.width).items() if v}
    cfg = preset(args.preset, n_colors=args.colors, height=res, width=res, objective=args.objective, **sizes)
    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                       min_lr=args.lr / 10, warmup_steps=min(args.warmup, args.steps), eval_every=args.eval_every,
                       save_every=args.save_every, keep_checkpoints=args.keep, seed=args.seed, device=args.device)
    palette = Palette.load(args.palette) if args.palette else None
    t0 = time.perf_counter()
    model, palette, history = pretrain(args.data, args.out, model_cfg=cfg, train_cfg=tcfg, palette=palette,
                                       resume=args.resume, progress=not args.json)
    last = checkpoint.step_dirs(args.out)[-1]
    return {"out": str(last), "dataset": args.data, "parameters": model.num_params(), "steps": args.steps,
            "seconds": time.perf_counter() - t0, "val_bpd": history[-1]["val_bpd"] if history else None,
            "baseline_bpd": checkpoint.load_checkpoint(last).meta.get("baseline_bpd"), "history": history}


def _save_grid(img, out):
    if out:
        img.save(out)
        return str(out)
    return None


def cmd_sample(args) -> dict:
    from .plots import image_grid
    from .sample import sample

    ck = checkpoint.load_checkpoint(args.model)
    cfg = ck.config
    t0 = time.perf_counter()
    tokens = sample(ck.model, args.n, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    seconds = time.perf_counter() - t0
    images = ck.palette.decode(tokens, cfg.height, cfg.width)
    return {"model": str(ck.path), "n": args.n, "seconds": seconds, "png": _save_grid(image_grid(images), args.out),
            "tokens": tokens.tolist()}


def cmd_complete(args) -> dict:
    from .plots import completion_grid
    from .sample import complete

    ck = checkpoint.load_checkpoint(args.model)
    cfg = ck.config
    if args.image:
        images = np.stack([data.load_image(p, cfg.height, ck.palette.channels) for p in args.image])
        source = [str(p) for p in args.image]
    else:
        name = args.data or ck.meta.get("dataset")
        ds = data.load_dataset(name, args.split, resolution=cfg.height)
        idx = args.index or list(range(8))
        if max(idx) >= len(ds):
            raise ValueError(f"--index {max(idx)} is out of range: the {name} {args.split} split has {len(ds)} images")
        images = ds.images[idx]
        source = f"{name}/{args.split}{idx}"
    rows = args.rows if args.rows is not None else cfg.height // 2
    tokens = ck.palette.encode(images)
    t0 = time.perf_counter()
    out = complete(ck.model, tokens, keep_rows=rows, n_samples=args.samples, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    seconds = time.perf_counter() - t0
    decoded = ck.palette.decode(out.flatten(0, 1), cfg.height, cfg.width).reshape(*out.shape[:2], *images.shape[1:])
    png = _save_grid(completion_grid(ck.palette.decode(tokens, cfg.height, cfg.width), decoded, rows), args.out)
    return {"model": str(ck.path), "source": source, "keep_rows": rows, "samples": args.samples,
            "seconds": seconds, "png": png, "tokens": out.tolist()}


def cmd_info(args) -> dict:
    if not args.model:
        return {"models": {name: str(p) for name, p in checkpoint.model_names().items()},
                "presets": list(PRESETS), "datasets": data.dataset_names()}
    ck = checkpoint.load_checkpoint(args.model)
    training = ck.meta.get("training", {})
    history = training.get("history") or [{}]
    return {"path": str(ck.path), "config": ck.config.to_dict(), "parameters": ck.model.num_params(),
            "palette": {"n_colors": ck.palette.n_colors, "channels": ck.palette.channels,
                        "fingerprint": ck.palette.fingerprint},
            "dataset": ck.meta.get("dataset"), "step": training.get("step"),
            "val_bpd": history[-1].get("val_bpd"), "baseline_bpd": ck.meta.get("baseline_bpd")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igpt-lite", description="A compact Image GPT.")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("palette", help="fit a k-means colour palette on a dataset")
    p.add_argument("--data", default="digits", choices=data.dataset_names())
    p.add_argument("--colors", type=int, default=8)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="palette.json")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_palette)

    p = sub.add_parser("train", help="pretrain a model (resumable)")
    p.add_argument("--data", default="digits", choices=data.dataset_names())
    p.add_argument("--out", required=True, help="run folder; checkpoints go to OUT/step-NNNNNN/")
    p.add_argument("--preset", default="small", choices=list(PRESETS))
    p.add_argument("--layers", type=int), p.add_argument("--heads", type=int), p.add_argument("--width", type=int)
    p.add_argument("--objective", default="ar", choices=["ar", "bert"])
    p.add_argument("--colors", type=int, default=8)
    p.add_argument("--palette", default=None, help="a palette.json to use instead of fitting one")
    p.add_argument("--resolution", type=int, default=None, help="default: the dataset's native size")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--keep", type=int, default=2, help="checkpoints to keep (0: all, for probes over training)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="sample whole images")
    _model_arg(p)
    p.add_argument("--n", type=int, default=8)
    _sampling_args(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("complete", help="complete images from their top rows")
    _model_arg(p)
    p.add_argument("--image", nargs="+", default=None, help="image files (centre-cropped and resized)")
    p.add_argument("--data", default=None, help="embedded dataset (default: the model's own)")
    p.add_argument("--split", default="test", choices=data.SPLITS)
    p.add_argument("--index", type=int, nargs="+", default=None, help="images of the split (default 0-7)")
    p.add_argument("--rows", type=int, default=None, help="rows to keep (default: half)")
    p.add_argument("--samples", type=int, default=4, help="completions per image")
    _sampling_args(p)
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("info", help="describe a model, or list known models")
    p.add_argument("--model", default=None)
    p.set_defaults(func=cmd_info)

    for action in sub.choices.values():
        action.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def _human(result: dict) -> str:
    lines = []
    for key, value in result.items():
        if key in ("tokens", "history"):
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"igpt-lite {args.verb}: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else _human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
