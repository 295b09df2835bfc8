"""Command line: `igpt-lite VERB ...` (also `python -m igpt_lite`). Thin: parse, call the library,
print a human summary, or with --json exactly one JSON object on stdout.

Arguments are checked where they are parsed (validate.py's rules, the flag named in the message).
Exit codes: 0 done; 2 refused (a bad argument, a missing or damaged input, an output that exists
without --overwrite, a run folder in use) with one line on stderr and nothing written; 130 interrupted.
Files written (--out, --html) appear whole or not at all."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, data, download, formats, validate
from .model import PRESETS, GPTConfig, preset
from .palette import Palette


def _checked(convert, check):
    """An argparse type: convert the text, then apply a validate.py rule (argparse names the flag)."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a whole number' if convert is int else 'a number'}, got {text!r}") from None
        try:
            return check(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def _count(low=1, high=None):
    return _checked(int, lambda v: validate.integer("", v, low, high))


def _positive(at_most=None):
    return _checked(float, lambda v: validate.positive("", v, at_most))


_SEED = _checked(int, lambda v: validate.seed("", v))
_DEVICE = _checked(str, lambda v: validate.device(v, name=""))
_DATA = _checked(str, data.check_dataset_name)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _image_file(text):
    if Path(text).suffix.lower() not in IMAGE_SUFFIXES:
        raise argparse.ArgumentTypeError(f"the file name must end in one of {', '.join(IMAGE_SUFFIXES)} "
                                         f"(it sets the image format), got {text!r}")
    return text


def _existing_file(text):
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file" + (" (it is a folder)" if Path(text).is_dir() else ""))
    return text


def _data_args(p, default=None, help="dataset (default: the model's own)"):
    p.add_argument("--data", type=_DATA, default=default,
                   help=f"{help}: an embedded one, {', '.join(formats.DATASETS)} (files under --root), or "
                        "folder:PATH (one sub-folder of images per class)")
    _root_arg(p)


def _root_arg(p):
    p.add_argument("--root", default=None, metavar="DIR",
                   help="where the datasets you bring live (default: $IGPT_LITE_DATA, else data/datasets/)")


def _model_arg(p):
    p.add_argument("--model", required=True, help="checkpoint folder, training run folder, or a model name")


def _sampling_args(p):
    p.add_argument("--temperature", type=_positive(), default=1.0)
    p.add_argument("--top-k", type=_count(1), default=None)
    p.add_argument("--top-p", type=_positive(at_most=1.0), default=None)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--out", type=_image_file, default=None, help="write the images as a PNG grid here")
    _overwrite_arg(p, "--out")


def _overwrite_arg(p, *flags):
    """--overwrite for a verb whose output files are `flags`: checked before any work (main)."""
    p.add_argument("--overwrite", action="store_true", help=f"replace {' or '.join(flags)} if it exists")
    p.set_defaults(outputs=[f.lstrip("-") for f in flags])


def _check_outputs(args) -> None:
    for name in getattr(args, "outputs", []):
        if getattr(args, name, None):
            checkpoint.check_new_output(getattr(args, name), args.overwrite, flag=f"--{name}")


def _write_text(path, text: str) -> str:
    checkpoint.write_file_atomically(path, lambda tmp: Path(tmp).write_text(text))
    return str(path)


def cmd_palette(args) -> dict:
    ds = data.load_dataset(args.data, "train", resolution=args.resolution, root=args.root)
    val = data.load_dataset(args.data, "val", resolution=args.resolution, root=args.root)
    out = Path(args.out)
    pal = Palette.fit(ds.images, args.colors, seed=args.seed)
    report = pal.report(val.images)  # measured on the validation split
    checkpoint.write_file_atomically(out, pal.save)
    return {"out": str(out), "dataset": args.data, "resolution": list(ds.resolution), **report.to_dict()}


def cmd_train(args) -> dict:
    from .train import TrainConfig, pretrain

    res = args.resolution if args.resolution is not None else data.native_resolution(args.data)
    sizes = {k: v for k, v in dict(n_layer=args.layers, n_head=args.heads, n_embd=args.width).items() if v is not None}
    if args.resume:  # resume means resume: a run with nothing to resume from is not started over silently
        steps = checkpoint.step_dirs(args.out)
        if not steps:
            raise FileNotFoundError(f"--resume: {args.out} holds no checkpoint to resume from; leave out --resume "
                                    "to start the run")
        done = json.loads((steps[-1] / "config.json").read_text()).get("training", {}).get("step", 0)
        if done >= args.steps:
            raise ValueError(f"--resume: the run in {args.out} is already at step {done}; give --steps above "
                             f"{done} to train it further")
    cfg = preset(args.preset, n_colors=args.colors, height=res, width=res, objective=args.objective, **sizes)
    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                       min_lr=args.lr / 10, warmup_steps=min(args.warmup, args.steps), eval_every=args.eval_every,
                       save_every=args.save_every, keep_checkpoints=args.keep, seed=args.seed, device=args.device,
                       compile=args.compile, fsdp=args.fsdp, activation_checkpointing=args.activation_checkpointing)
    palette = Palette.load(args.palette) if args.palette else None
    t0 = time.perf_counter()
    model, palette, history = pretrain(args.data, args.out, model_cfg=cfg, train_cfg=tcfg, palette=palette,
                                       resume=args.resume, progress=not args.json, root=args.root,
                                       token_cache=not args.no_token_cache)
    last = checkpoint.step_dirs(args.out)[-1]
    return {"out": str(last), "dataset": args.data, "parameters": model.num_params(), "steps": args.steps,
            "seconds": time.perf_counter() - t0, "val_bpd": history[-1]["val_bpd"] if history else None,
            "baseline_bpd": checkpoint.load_checkpoint(last).meta.get("baseline_bpd"), "history": history}


def _save_grid(img, out):
    if out:
        checkpoint.write_file_atomically(out, img.save)
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


def _input_images(args, ck, image_files, index) -> tuple[np.ndarray, object]:
    """The images a verb works on: image files, or images of a dataset's split (by default 8
    spread over it, so that every class shows), at the model's size; and where they came from."""
    cfg = ck.config
    if image_files:
        images = np.stack([data.load_image(p, cfg.height, ck.palette.channels) for p in image_files])
        return images, [str(p) for p in image_files]
    name = ck.dataset_name(args.data)
    ds = data.load_dataset(name, args.split, resolution=cfg.height, root=args.root)
    idx = [i for i in index if i is not None] or np.linspace(0, len(ds) - 1, 8).astype(int).tolist()
    bad = [i for i in idx if not 0 <= i < len(ds)]
    if bad:
        raise ValueError(f"--index {bad[0]} is out of range: the {name} {args.split} split has {len(ds)} images")
    return ds.images[idx], f"{name}/{args.split}{idx}"


def cmd_complete(args) -> dict:
    from .plots import completion_grid
    from .sample import complete_images

    ck = checkpoint.load_checkpoint(args.model)
    images, source = _input_images(args, ck, args.image, args.index or [])
    rows = args.rows if args.rows is not None else ck.config.height // 2
    result = complete_images(ck.model, ck.palette, images, rows, n_samples=args.samples,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    png = _save_grid(completion_grid(images, result.images, rows), args.out)
    return {"model": str(ck.path), "source": source, "keep_rows": rows, "samples": args.samples,
            "seconds": result.seconds, "png": png, "tokens": result.tokens.tolist()}


def cmd_attention(args) -> dict:
    from .attention import attend, attention_summary

    ck = checkpoint.load_checkpoint(args.model)
    images, source = _input_images(args, ck, [args.image] if args.image else None, [args.index])
    att = attend(ck, images[0], args.pixel)
    summary = attention_summary(ck.model, ck.palette.encode(images))  # this image's per-head distance and entropy
    html = None
    if args.html:
        from .plots import attention_distance_chart, attention_grid, attention_rollout_figure, figures_html

        figs = [attention_grid(att), attention_rollout_figure(att),
                attention_distance_chart(summary.mean_distance, title="Mean attention distance per head, this image")]
        html = _write_text(args.html, figures_html(figs, title=f"attention from pixel {att.pixel}"))
    peak = np.unravel_index(int(np.argmax(att.rollout)), att.rollout.shape)
    return {"model": str(ck.path), "source": source, **att.to_dict(),
            "rollout_peak": [int(peak[0]), int(peak[1])], **summary.to_dict(), "html": html}


def cmd_info(args) -> dict:
    if not args.model:
        return {"models": {name: str(p) for name, p in checkpoint.model_names().items()},
                "presets": list(PRESETS), "datasets": data.dataset_names()}
    summary = checkpoint.load_checkpoint(args.model).summary()
    if args.json:
        return summary.to_dict()
    return {label: value for label, value in summary.card()}


def cmd_import_hf(args) -> dict:
    from .interop import load_hf

    # default: the user's models folder, so the import is found by its folder name
    if not args.out:
        checkpoint.check_user_model_name(Path(args.path).resolve().name)
    out = Path(args.out) if args.out else checkpoint.USER_DIR / Path(args.path).resolve().name
    if checkpoint.occupied(out) and not args.overwrite:
        raise FileExistsError(f"{out} already exists; choose another OUT or pass --overwrite")
    t0 = time.perf_counter()
    ck = load_hf(args.path)
    checkpoint.save_checkpoint(out, ck.model, ck.palette, ck.meta, overwrite=args.overwrite)
    return {"out": str(out), "name": out.name, "source": str(args.path), "config": ck.config.to_dict(),
            "parameters": ck.model.num_params(), "seconds": time.perf_counter() - t0}


def cmd_export_hf(args) -> dict:
    from .interop import export_hf

    ck = checkpoint.load_checkpoint(args.model)
    out = export_hf(ck, args.out, overwrite=args.overwrite)
    return {"model": str(ck.path), "out": str(out), "files": sorted(p.name for p in out.iterdir())}


def cmd_bias(args) -> dict:
    from .bias import EXTRACTIONS, bias_test, compose_sets, likelihood_test, load_ieat_folders

    ck = checkpoint.load_checkpoint(args.model)
    cfg = ck.config
    # iEAT's extraction: top-left square crop and the next block's norm; ours: centre crop, plain layer norm
    extraction = EXTRACTIONS["ieat" if args.ieat_extraction else "ours"]
    crop, norm = extraction["crop"], extraction["norm"]
    if cfg.height != cfg.width:
        raise ValueError(f"the images are cropped square, but this model reads {cfg.height}×{cfg.width} images")
    folders = load_ieat_folders(args.x, args.y, args.a, args.b, cfg.height, ck.palette.channels, crop)
    sets = list(folders.values())
    images = {k.upper(): f.images for k, f in folders.items()}
    t0 = time.perf_counter()
    # the test that asks a generative model what it expects leads: it found the association planted in
    # figures-p90 where iEAT on embeddings did not (README, "The controlled bias experiment")
    likelihood = {"skipped": "not asked (--compose none)"}
    if args.compose != "none" and cfg.objective != "ar":
        likelihood = {"skipped": "a bert model gives no likelihood of a whole image"}
    elif args.compose != "none":
        likelihood = likelihood_test(ck, compose_sets(images, split=args.compose), n_permutations=args.permutations, seed=args.seed,
                                     baseline=not args.no_baseline, baseline_seed=args.seed).to_dict()
    result = bias_test(ck, images, layers=args.layers, norm=norm, n_permutations=args.permutations, seed=args.seed,
                       baseline=not args.no_baseline, baseline_seed=args.seed)
    table = result.table
    seconds = time.perf_counter() - t0
    html = None
    if args.html:
        from .plots import bias_per_layer_chart, figures_html

        fig = bias_per_layer_chart(table, title=f"iEAT per layer: {ck.path.name} "
                                                f"(X={args.x}, Y={args.y}, A={args.a}, B={args.b})")
        html = _write_text(args.html, figures_html([fig], title="igpt-lite bias"))
    notes = [n for n in (f.conversion_note(ck.palette.channels) for f in sets) if n]
    return {"model": str(ck.path), "extraction": {"crop": crop, "norm": norm, "resolution": cfg.height,
                                                  "resize": "area average (PIL box)", "pool": "mean"},
            "sets": {name: {"folder": str(f.path), "images": len(f.files), "modes": f.modes}
                     for name, f in folders.items()},
            "notes": notes, "seed": args.seed, "seconds": seconds, "html": html,
            "likelihood": likelihood, "ieat": result.to_dict(), "table": table, "baseline_table": result.baseline_table}


def cmd_probe(args) -> dict:
    from .probe import DEFAULT_CS, best_row, load_split, probe_model, probe_summary, umap_embedding

    ck = checkpoint.load_checkpoint(args.model)
    name = ck.dataset_name(args.data)
    Cs = sorted(args.C) if args.C else list(DEFAULT_CS)
    t0 = time.perf_counter()
    table = probe_model(ck, name, layers=args.layers, limit=args.limit, norm=args.norm, pool=args.pool,
                        Cs=Cs, seed=args.seed, cache_dir=args.cache, progress=not args.json, root=args.root)
    seconds = time.perf_counter() - t0
    best = best_row(table)  # the layer is chosen on validation; its test accuracy is the headline
    embedding = None
    if args.umap:
        from .features import extract_features, parse_layers

        layer = best["layer"] if args.umap == "best" else parse_layers(ck.model, [args.umap])[0]
        _, tokens, labels = load_split(name, "test", ck.palette, ck.config.height, args.limit, args.root)
        feats = extract_features(ck.model, tokens, [layer], norm=args.norm, pool=args.pool, cache_dir=args.cache)
        xy = umap_embedding(feats[layer], seed=args.seed)
        embedding = {"layer": layer, "split": "test", "seed": args.seed, "x": xy[:, 0].tolist(),
                     "y": xy[:, 1].tolist(), "labels": labels.tolist()}
    html = None
    if args.html:
        from .plots import figures_html, probe_depth_chart, umap_scatter

        figs = [probe_depth_chart(table, title=f"Linear probes: {ck.path.name} on {name}")]
        if embedding:
            figs.append(umap_scatter(np.c_[embedding["x"], embedding["y"]], embedding["labels"],
                                     data.load_dataset(name, "test", limit=1, root=args.root).class_names or None,
                                     title=f"UMAP of {embedding['layer']} (test split, seed {args.seed})"))
        html = _write_text(args.html, figures_html(figs, title="igpt-lite probe"))
    return {"model": str(ck.path), "dataset": name, "resolution": ck.config.height, "limit": args.limit,
            "extraction": {"norm": args.norm, "pool": args.pool}, "Cs": Cs, "seed": args.seed, "seconds": seconds,
            "best": {k: best[k] for k in ("layer", "val_acc", "test_acc", "test_stderr", "C")},
            "summary": probe_summary(table), "html": html, "umap": embedding, "table": table}


def cmd_data_download(args) -> dict:
    result = download.download(args.name, args.root, progress=not args.json)
    if args.json:
        return result.to_dict()
    if result.already_present:
        return {"dataset": args.name, "path": str(result.path), "status": "already present and complete; nothing fetched"}
    return {"dataset": args.name, "path": str(result.path), "status": "fetched, checked and unpacked",
            **{f.file: f"{f.bytes} bytes, MD5 {f.md5} as published"
               + (f" (resumed at byte {f.resumed_from})" if f.resumed_from else "") for f in result.files}}


def cmd_data_check(args) -> dict:
    statuses = data.check_datasets(args.root)
    return {"root": str(data.data_root(args.root)), "datasets": [s.to_dict() for s in statuses]}


def _check_text(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        counts = ", ".join(f"{k} {v:,}" for k, v in r["counts"].items())
        lines.append(f"{r['name']:<16} {r['status']:<8} {counts or r['folder']}")
        lines += [f"    {text}" for text in ([r["problem"]] if r["status"] == "broken" else []) + r["notes"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igpt-lite", description="A compact Image GPT.")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("palette", help="fit a k-means colour palette on a dataset")
    _data_args(p, "digits", "dataset (default digits)")
    p.add_argument("--colors", type=_count(2), default=8)
    p.add_argument("--resolution", type=_count(1), default=None)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--out", default="palette.json")
    _overwrite_arg(p, "--out")
    p.set_defaults(func=cmd_palette)

    p = sub.add_parser("train", help="pretrain a model (resumable)")
    _data_args(p, "digits", "dataset (default digits)")
    p.add_argument("--out", required=True, help="run folder; checkpoints go to OUT/step-NNNNNN/")
    p.add_argument("--preset", default="small", choices=list(PRESETS))
    p.add_argument("--layers", type=_count(1)), p.add_argument("--heads", type=_count(1))
    p.add_argument("--width", type=_count(1))
    p.add_argument("--objective", default="ar", choices=["ar", "bert"])
    p.add_argument("--colors", type=_count(2), default=8)
    p.add_argument("--palette", type=_existing_file, default=None, help="a palette.json to use instead of fitting one")
    p.add_argument("--resolution", type=_count(1), default=None, help="default: the dataset's native size")
    p.add_argument("--steps", type=_count(1), default=500)
    p.add_argument("--batch-size", type=_count(1), default=32)
    p.add_argument("--grad-accum", type=_count(1), default=1)
    p.add_argument("--lr", type=_positive(), default=3e-3)
    p.add_argument("--warmup", type=_count(0), default=50)
    p.add_argument("--eval-every", type=_count(1), default=100)
    p.add_argument("--save-every", type=_count(1), default=None,
                   help="default: a fifth of --steps (at most 500), so a killed run always has one to resume")
    p.add_argument("--keep", type=_count(0), default=2, help="checkpoints to keep (0: all, for probes over training)")
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--device", type=_DEVICE, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint (same data, model and palette)")
    p.add_argument("--no-token-cache", action="store_true",
                   help="encode the training split in memory instead of reading it from the token cache "
                        "($IGPT_LITE_CACHE/tokens, default ~/.cache/igpt-lite/tokens)")
    p.add_argument("--fsdp", action="store_true",
                   help="under torchrun: shard weights, gradients and optimizer state (FSDP2) instead of DDP")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute each block's activations in backward: less memory, about a third more compute")
    p.add_argument("--compile", action="store_true", help="torch.compile the model's loss (GPUs; no gain on CPU)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="sample whole images")
    _model_arg(p)
    p.add_argument("--n", type=_count(1), default=8)
    _sampling_args(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("complete", help="complete images from their top rows")
    _model_arg(p)
    p.add_argument("--image", type=_existing_file, nargs="+", default=None,
                   help="image files (centre-cropped and resized)")
    _data_args(p)
    p.add_argument("--split", default="test", choices=data.SPLITS)
    p.add_argument("--index", type=_count(0), nargs="+", default=None,
                   help="images of the split (default: 8 spread over it)")
    p.add_argument("--rows", type=_count(0), default=None, help="rows to keep (default: half)")
    p.add_argument("--samples", type=_count(1), default=4, help="completions per image")
    _sampling_args(p)
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser("bias", help="iEAT bias test per layer on four folders of images",
                       description="Image Embedding Association Test (Steed & Caliskan 2021) on every layer: "
                       "do X's images sit closer to A's than Y's do (and Y's to B's)? Prints effect size d, "
                       "one-sided permutation p and Holm-adjusted p per layer. Images: any format and size, "
                       "converted to the palette's colour mode, cropped to a square (centre), area-resized.")
    _model_arg(p)
    for name, what in (("x", "target X (e.g. men)"), ("y", "target Y (e.g. women)"),
                       ("a", "attribute A (e.g. career)"), ("b", "attribute B (e.g. family)")):
        p.add_argument(f"--{name}", required=True, metavar="FOLDER", help=f"folder of {what} images")
    p.add_argument("--layers", nargs="+", default=None, help="layers (embed, blocks.3 or 3); default: all")
    p.add_argument("--ieat-extraction", action="store_true",
                   help="extract as iEAT does, to compare with its tables: top-left square crop (not the "
                   "centre) and each layer's output normed by the next block's first norm (not a plain "
                   "layer norm); both mean-pool over positions after an area-average resize")
    p.add_argument("--permutations", type=_count(1), default=100_000,
                   help="exact test when X u Y has at most this many partitions, else this many random ones")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of the random partitions")
    p.add_argument("--compose", default="rows", choices=["rows", "columns", "none"],
                   help="likelihood test (ar models): each target composed with each attribute, the target's top "
                   "half over the attribute's bottom half (rows) or its left half beside the attribute's right "
                   "half (columns), scored in bits; meaningful only where targets' subjects sit in their top "
                   "(left) half and attributes' in their bottom (right) half; none: iEAT only")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the same tests on a random-weight copy of the model (what pixel statistics alone give)")
    p.add_argument("--html", default=None, help="write the per-layer plot (d, adjusted p) to this HTML file")
    _overwrite_arg(p, "--html")
    p.set_defaults(func=cmd_bias)

    p = sub.add_parser("probe", help="linear probe of every layer, with baselines",
                       description="Linear probes (standardised features, multinomial logistic regression, C chosen "
                       "on the validation split, accuracy on the test split) of every layer's features (layer-normed, "
                       "pooled over positions), next to the same architecture with random weights, raw pixels and "
                       "palette pixels, all on the same splits.")
    _model_arg(p)
    _data_args(p)
    p.add_argument("--layers", nargs="+", default=None, help="layers (embed, blocks.3 or 3, ln_f); default: all")
    p.add_argument("--limit", type=_count(1), default=None, help="at most this many images per split")
    p.add_argument("--norm", default="layernorm", choices=["layernorm", "next", "none"],
                   help="layernorm: the paper's plain layer norm; next: the model's next norm (as iEAT)")
    p.add_argument("--pool", default="mean", choices=["mean", "max", "last"],
                   help="over positions; mean is the paper's")
    p.add_argument("--C", type=_positive(), nargs="+", default=None,
                   help="inverse regularisation grid, chosen on validation (default 1e-4 ... 1e3)")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of the random-weight baseline and of UMAP")
    p.add_argument("--cache", default=None, metavar="DIR", help="keep features in DIR (.npz), keyed by model and data")
    p.add_argument("--umap", nargs="?", const="best", default=None, metavar="LAYER",
                   help="also a UMAP of a layer's test features (default: the best layer on validation)")
    p.add_argument("--html", default=None, help="write the figures to this HTML file")
    _overwrite_arg(p, "--html")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("attention", help="attention maps of every layer and head from one pixel, and rollout")
    _model_arg(p)
    p.add_argument("--image", type=_existing_file, default=None, help="an image file (centre-cropped and resized)")
    _data_args(p)
    p.add_argument("--split", default="test", choices=data.SPLITS)
    p.add_argument("--index", type=_count(0), default=0, help="image of the split (default 0)")
    p.add_argument("--pixel", type=_count(0), nargs=2, required=True, metavar=("ROW", "COL"), help="the query pixel")
    p.add_argument("--html", default=None, help="write the figures to this HTML file")
    _overwrite_arg(p, "--html")
    p.set_defaults(func=cmd_attention)

    p = sub.add_parser("info", help="describe a model, or list known models")
    p.add_argument("--model", default=None)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("import-hf", help="import a saved Hugging Face ImageGPT folder (e.g. the official iGPT)")
    p.add_argument("path", help="folder written by transformers' save_pretrained, with preprocessor_config.json")
    p.add_argument("out", nargs="?", default=None,
                   help="checkpoint folder (default: the user's models folder, found by the folder's name)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoint's files in OUT; other files there are left alone")
    p.set_defaults(func=cmd_import_hf)

    p = sub.add_parser("export-hf", help="write a model as a Hugging Face ImageGPT folder (norm rms models)")
    _model_arg(p)
    p.add_argument("out", help="folder for config.json, model.safetensors, preprocessor_config.json")
    p.add_argument("--overwrite", action="store_true",
                   help="replace those three files in OUT; other files there are left alone")
    p.set_defaults(func=cmd_export_hf)

    p = sub.add_parser("data", help="the datasets you bring: check them, download them")
    data_verbs = p.add_subparsers(dest="data_verb", required=True)
    p = data_verbs.add_parser("check", help="which datasets are under the data root and whole, with counts per split",
                              description="Checks every file of cifar10, cifar100, stl10, mnist-idx and "
                              "fashion-mnist under the data root as loading them does (sizes, headers, labels) and "
                              "prints each one's status (ok, missing, broken: what is wrong) and images per split. "
                              "Where each file goes: data/README.md.")
    _root_arg(p)
    p.set_defaults(func=cmd_data_check)

    q = data_verbs.add_parser("download", help="fetch a published dataset, check its checksum, unpack it (resumable)",
                              description="Fetch the official archive, check its published MD5 before unpacking, "
                              "and put the dataset folder in place whole; an interrupted download resumes when the "
                              "same command runs again, and a dataset already there is left alone.")
    q.add_argument("name", choices=list(download.SOURCES))
    _root_arg(q)
    q.set_defaults(func=cmd_data_download)

    # --json on every verb that runs (data's: on its sub-commands, where argparse reads the flags)
    for action in [*sub.choices.values(), *data_verbs.choices.values()]:
        if action is not sub.choices["data"]:
            action.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


_TABLE_COLUMNS = ("kind", "layer", "effect_size", "ci_low", "ci_high", "p_value", "p_holm", "n_permutations",  # bias
                  "train_acc", "val_acc", "test_acc", "test_stderr", "C", "C_at_edge",  # probe
                  "knn_test_acc")  # the rest is in --json


def _table_text(rows: list[dict]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cols = [c for c in _TABLE_COLUMNS if rows and c in rows[0]]
    cells = [cols] + [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def _likelihood_text(value: dict) -> str:
    if "skipped" in value:
        return f"likelihood test: skipped ({value['skipped']})"
    def one(r):
        return (f"d {r['effect_size']:.2f} (95% CI {r['ci_low']:.2f} to {r['ci_high']:.2f}), p {r['p_value']:.2g}")

    text = f"likelihood test: {one(value['table'][0])}"
    if value.get("baseline"):
        text += f"; random-weight copy: {one(value['baseline']['table'][0])}"
    return text


def _human(result: dict) -> str:
    lines = []
    for key, value in result.items():
        if key in ("tokens", "history", "maps", "head_mean", "rollout", "visible", "start", "umap"):  # too big
            continue
        if key == "summary" and "margins" in value:  # probe: the best layer against each baseline
            lines.append("best layer minus baselines: " + ", ".join(
                f"{kind} {m['points']:+.1f} points ({m['z']:.1f} s.e.)" for kind, m in value["margins"].items()))
            continue
        if key in ("table", "baseline_table") and value:  # per-layer rows: one aligned line each
            lines.append(("random-weight copy:\n" if key == "baseline_table" else "") + _table_text(value))
            continue
        if key == "likelihood":  # bias: the likelihood test's one row, and its baseline's
            lines.append(_likelihood_text(value))
            continue
        if key == "ieat":
            continue
        if key == "datasets" and value and isinstance(value[0], dict):  # data check: one line per dataset
            lines.append(_check_text(value))
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage error (2) or the help (0)
        return e.code
    verb = " ".join(v for v in (args.verb, getattr(args, "data_verb", None)) if v)
    try:
        _check_outputs(args)  # before any work
        result = args.func(args)
    except (ValueError, OSError, FloatingPointError) as e:  # OSError: missing, existing, unwritable, full
        print(f"igpt-lite {verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"igpt-lite {verb}: interrupted" + (" (continue with --resume)" if args.verb == "train" else ""),
              file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one report
        print(json.dumps(result) if args.json else _human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
