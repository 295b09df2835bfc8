"""`igpt-lite bias`: the likelihood test and iEAT per layer on four folders of images."""
from __future__ import annotations

import time

from .. import checkpoint
from ..arguments import SEED, count, model_arg, overwrite_arg, write_text
from ..figures import figures_html
from .association import EXTRACTIONS, bias_test, compose_sets, likelihood_test, load_ieat_folders
from .figures import bias_per_layer_chart


def cmd_bias(args) -> dict:
    ck = checkpoint.load_checkpoint(args.model)
    cfg = ck.config
    # iEAT's extraction: top-left square crop and the next block's norm; ours: centre crop, plain layer norm
    extraction = EXTRACTIONS["ieat" if args.ieat_extraction else "ours"]
    crop, norm = extraction["crop"], extraction["norm"]
    ck.square_side()
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
        fig = bias_per_layer_chart(table, title=f"iEAT per layer: {ck.path.name} "
                                                f"(X={args.x}, Y={args.y}, A={args.a}, B={args.b})")
        html = write_text(args.html, figures_html([fig], title="igpt-lite bias"))
    notes = [n for n in (f.conversion_note(ck.palette.channels) for f in sets) if n]
    return {"model": str(ck.path), "extraction": {"crop": crop, "norm": norm, "resolution": cfg.height,
                                                  "resize": "area average (PIL box)", "pool": "mean"},
            "sets": {name: {"folder": str(f.path), "images": len(f.files), "modes": f.modes}
                     for name, f in folders.items()},
            "notes": notes, "seed": args.seed, "seconds": seconds, "html": html,
            "likelihood": likelihood, "ieat": result.to_dict(), "table": table, "baseline_table": result.baseline_table}


def likelihood_text(value: dict) -> str:
    if "skipped" in value:
        return f"likelihood test: skipped ({value['skipped']})"
    def one(r):
        return (f"d {r['effect_size']:.2f} (95% CI {r['ci_low']:.2f} to {r['ci_high']:.2f}), p {r['p_value']:.2g}")

    text = f"likelihood test: {one(value['table'][0])}"
    if value.get("baseline"):
        text += f"; random-weight copy: {one(value['baseline']['table'][0])}"
    return text


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("bias", help="iEAT bias test per layer on four folders of images",
                       description="Image Embedding Association Test (Steed & Caliskan 2021) on every layer: "
                       "do X's images sit closer to A's than Y's do (and Y's to B's)? Prints effect size d, "
                       "one-sided permutation p and Holm-adjusted p per layer. Images: any format and size, "
                       "converted to the palette's colour mode, cropped to a square (centre), area-resized.")
    model_arg(p)
    for name, what in (("x", "target X (e.g. men)"), ("y", "target Y (e.g. women)"),
                       ("a", "attribute A (e.g. career)"), ("b", "attribute B (e.g. family)")):
        p.add_argument(f"--{name}", required=True, metavar="FOLDER", help=f"folder of {what} images")
    p.add_argument("--layers", nargs="+", default=None, help="layers (embed, blocks.3 or 3); default: all")
    p.add_argument("--ieat-extraction", action="store_true",
                   help="extract as iEAT does, to compare with its tables: top-left square crop (not the "
                   "centre) and each layer's output normed by the next block's first norm (not a plain "
                   "layer norm); both mean-pool over positions after an area-average resize")
    p.add_argument("--permutations", type=count(1), default=100_000,
                   help="exact test when X u Y has at most this many partitions, else this many random ones "
                   "(default: %(default)s)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the random partitions (default: %(default)s)")
    p.add_argument("--compose", default="rows", choices=["rows", "columns", "none"],
                   help="likelihood test (ar models): each target composed with each attribute, the target's top "
                   "half over the attribute's bottom half (rows) or its left half beside the attribute's right "
                   "half (columns), scored in bits; meaningful only where targets' subjects sit in their top "
                   "(left) half and attributes' in their bottom (right) half; none: iEAT only (default: %(default)s)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the same tests on a random-weight copy of the model (what pixel statistics alone give)")
    p.add_argument("--html", default=None, help="write the per-layer plot (d, adjusted p) to this HTML file (default: no file)")
    overwrite_arg(p, "--html")
    p.set_defaults(func=cmd_bias)
    return [sub.choices["bias"]]
