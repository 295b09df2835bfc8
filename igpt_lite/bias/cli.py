"""`igpt-lite bias`: the likelihood test and iEAT per layer on four folders of images;
`igpt-lite bias-draws`: the likelihood test over several fresh draws of the figures scenes."""
from __future__ import annotations

from dataclasses import dataclass

from ..arguments import SEED, count, device_arg, load_model, model_arg, overwrite_arg, write_text
from ..checkpoint import load_checkpoint
from ..figures import figures_html, progress_bar
from .draws import DESIGN, DrawsResult, likelihood_draws
from .embedding import EXTRACTIONS
from .figures import bias_per_layer_chart
from .report import BiasReport, run
from .sets import load_ieat_folders


@dataclass
class BiasRun:
    """What `igpt-lite bias` did: the report of both tests, and where the per-layer figure went."""
    report: BiasReport
    html: str | None = None

    def to_dict(self) -> dict:
        d = self.report.to_dict()
        head = {k: d.pop(k) for k in ("model", "extraction", "sets", "notes", "seed", "seconds")}
        return {**head, "html": self.html, **d}  # the keys in the order they always came

    def text(self) -> str:
        return self.report.text() + (f"\nhtml: {self.html}" if self.html else "")


def cmd_bias(args) -> BiasRun:
    ck = load_model(args)
    # iEAT's extraction: top-left square crop and the next block's norm; ours: centre crop, plain layer norm
    extraction = "ieat" if args.ieat_extraction else "ours"
    folders = load_ieat_folders(args.x, args.y, args.a, args.b, ck.square_side(), ck.palette.channels,
                                EXTRACTIONS[extraction]["crop"])
    report = run(ck, {k.upper(): f for k, f in folders.items()}, compose=args.compose, layers=args.layers,
                 extraction=extraction, n_permutations=args.permutations, seed=args.seed,
                 baseline=not args.no_baseline)
    html = None
    if args.html:
        fig = bias_per_layer_chart(report.table, title=f"iEAT per layer: {ck.path.name} "
                                                       f"(X={args.x}, Y={args.y}, A={args.a}, B={args.b})")
        html = write_text(args.html, figures_html([fig], title="igpt-lite bias"))
    return BiasRun(report, html)


def cmd_bias_draws(args) -> DrawsResult:
    ck = load_model(args)
    control = load_checkpoint(args.control, device=ck.model.device) if args.control else None
    return likelihood_draws(ck, range(args.first_seed, args.first_seed + args.draws), control=control,
                            baseline=not args.no_baseline, n_quads=args.quads,
                            on_step=progress_bar("composed images scored"))


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("bias", help="iEAT bias test per layer on four folders of images",
                       description="Image Embedding Association Test (Steed & Caliskan 2021) on every layer: "
                       "do X's images sit closer to A's than Y's do (and Y's to B's)? Prints effect size d, "
                       "one-sided permutation p and Holm-adjusted p per layer. Images: any format and size, "
                       "converted to the palette's colour mode, cropped to a square (centre), area-resized.")
    model_arg(p)
    device_arg(p)
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

    p = sub.add_parser("bias-draws", help="the likelihood bias test over several fresh draws of the figures scenes",
                       description="The likelihood association test on DRAWS fresh draws of the generated figures "
                       "test scenes, seeds FIRST-SEED onwards, each draw QUADS counterfactual quads (one room drawn "
                       "with a man and with a woman X/Y, each beside a career prop A and a domestic prop B in one "
                       "slot, scored in bits): d and the quads test's p on each draw (targets and attributes both "
                       "counted as drawn), and d's mean with a 95%% interval over draws, so that no "
                       "single draw is read as the finding. With --control (the same recipe trained on balanced "
                       "data, e.g. figures-p50 for figures-p90): the difference in d, draw by draw, with its interval.")
    model_arg(p)
    device_arg(p)
    p.add_argument("--control", default=None, help="a matched control model (checkpoint folder or name), scored on "
                   "the same draws (default: none)")
    p.add_argument("--draws", type=count(2, 10_000), default=5, help="test draws, one seed each (default: %(default)s)")
    p.add_argument("--first-seed", type=SEED, default=0, help="seed of the first draw (default: %(default)s)")
    p.add_argument("--quads", type=count(2, 100_000), default=DESIGN["quads"],
                   help="counterfactual quads a draw, 4 scenes each (default: %(default)s)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the random-weight copies (a new one every quad, seeded from the draw's seed)")
    p.set_defaults(func=cmd_bias_draws)
    return [sub.choices["bias"], sub.choices["bias-draws"]]
