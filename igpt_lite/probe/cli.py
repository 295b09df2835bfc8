"""`igpt-lite probe`: a linear probe of every layer, with baselines; `igpt-lite lens`: the logit lens of every layer."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..arguments import SEED, count, data_args, device_arg, load_model, model_arg, overwrite_arg, positive, write_text
from ..figures import figures_html
from .estimators import DEFAULT_CS
from .figures import probe_depth_chart, umap_scatter
from .lens import LENS_LIMIT, LensCurve, logit_lens
from .projection import LayerMap, layer_umap
from .run import probe_model
from .table import ProbeTable


@dataclass
class ProbeRun:
    """What `igpt-lite probe` made: the table (with its baselines), how, and the optional UMAP."""
    model: str
    dataset: str
    resolution: int
    limit: int | None
    norm: str
    pool: str
    Cs: list[float]
    seed: int
    seconds: float
    table: ProbeTable
    umap: LayerMap | None = None
    html: str | None = None

    def to_dict(self) -> dict:
        best = self.table.best()  # the layer is chosen on validation; its test accuracy is the headline
        return {"model": self.model, "dataset": self.dataset, "resolution": self.resolution, "limit": self.limit,
                "extraction": {"norm": self.norm, "pool": self.pool}, "Cs": self.Cs, "seed": self.seed,
                "seconds": self.seconds, "best": {k: getattr(best, k) for k in ("layer", "val_acc", "test_acc",
                                                                                  "test_stderr", "C")},
                "summary": self.table.summary().to_dict(), "html": self.html,
                "umap": self.umap.to_dict() if self.umap else None, "table": self.table.to_records()}

    def text(self) -> str:
        d = self.to_dict()
        lines = [f"{k}: {f'{d[k]:.4g}' if isinstance(d[k], float) else d[k]}"
                 for k in ("model", "dataset", "resolution", "limit", "extraction", "Cs", "seed", "seconds", "best")]
        return "\n".join([*lines, self.table.summary().text(), f"html: {self.html}", self.table.text()])


def cmd_probe(args) -> ProbeRun:
    ck = load_model(args)
    name = ck.dataset_name(args.data)
    Cs = sorted(args.C) if args.C else list(DEFAULT_CS)
    t0 = time.perf_counter()
    table = probe_model(ck, name, layers=args.layers, limit=args.limit, norm=args.norm, pool=args.pool,
                        Cs=Cs, seed=args.seed, cache_dir=args.cache, progress=not args.json, root=args.root)
    seconds = time.perf_counter() - t0
    umap = None
    if args.umap:
        layer = table.best().layer if args.umap == "best" else args.umap
        umap = layer_umap(ck, layer, name, n=args.limit, norm=args.norm, pool=args.pool, seed=args.seed,
                          cache_dir=args.cache, root=args.root)
    html = None
    if args.html:
        figs = [probe_depth_chart(table, title=f"Linear probes: {ck.path.name} on {name}")]
        if umap:
            figs.append(umap_scatter(umap.embedding, umap.labels, umap.class_names or None,
                                     title=f"UMAP of {umap.layer} (test split, seed {args.seed})"))
        html = write_text(args.html, figures_html(figs, title="igpt-lite probe"))
    return ProbeRun(model=str(ck.path), dataset=name, resolution=ck.config.height, limit=args.limit, norm=args.norm,
                    pool=args.pool, Cs=Cs, seed=args.seed, seconds=seconds, table=table, umap=umap, html=html)


def cmd_lens(args) -> LensCurve:
    ck = load_model(args)
    return logit_lens(ck, ck.dataset_name(args.data), limit=args.limit, tuned=not args.plain, reuse=not args.again,
                      root=args.root)


def _add_lens(sub):
    p = sub.add_parser("lens", help="logit lens: bits/dim of every layer read through the final norm and head",
                       description="The logit lens: each layer's residual stream put through the model's final norm "
                       "and head, as if the blocks above were skipped, scored in bits/dim on held-out (test) images; "
                       "the last block's equals the model's own bits/dim. With the tuned lens (the default), each "
                       "layer is first mapped by an affine map fitted by least squares on train images. The result "
                       "is kept in the cache and reused.")
    model_arg(p)
    device_arg(p)
    data_args(p)
    p.add_argument("--limit", type=count(1), default=LENS_LIMIT,
                   help="at most this many test images scored, and train images the tuned maps are fitted on "
                        "(default: %(default)s)")
    p.add_argument("--plain", action="store_true", help="the plain logit lens only (no tuned lens: half the time)")
    p.add_argument("--again", action="store_true", help="compute again even if a stored result matches")
    p.set_defaults(func=cmd_lens)
    return p


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("probe", help="linear probe of every layer, with baselines",
                       description="Linear probes (standardised features, multinomial logistic regression, C chosen "
                       "on the validation split, accuracy on the test split) of every layer's features (layer-normed, "
                       "pooled over positions), next to the same architecture with random weights, raw pixels and "
                       "palette pixels, all on the same splits.")
    model_arg(p)
    device_arg(p)
    data_args(p)
    p.add_argument("--layers", nargs="+", default=None, help="layers (embed, blocks.3 or 3, ln_f); default: all")
    p.add_argument("--limit", type=count(1), default=None, help="at most this many images per split (default: all)")
    p.add_argument("--norm", default="layernorm", choices=["layernorm", "next", "none"],
                   help="layernorm: the paper's plain layer norm; next: the model's next norm (as iEAT) "
                   "(default: %(default)s)")
    p.add_argument("--pool", default="mean", choices=["mean", "max", "last"],
                   help="over positions; mean is the paper's (default: %(default)s)")
    p.add_argument("--C", type=positive(), nargs="+", default=None,
                   help=f"inverse regularisation grid, chosen on validation (default: probe.DEFAULT_CS, {len(DEFAULT_CS)} "
                        f"values from {min(DEFAULT_CS):.0e} to {max(DEFAULT_CS):.0e})")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the random-weight baseline and of UMAP (default: %(default)s)")
    p.add_argument("--cache", default=None, metavar="DIR", help="keep features in DIR (.npz), keyed by model and data (default: not kept)")
    p.add_argument("--umap", nargs="?", const="best", default=None, metavar="LAYER",
                   help="also a UMAP of a layer's test features (default: the best layer on validation)")
    p.add_argument("--html", default=None, help="write the figures to this HTML file (default: no file)")
    overwrite_arg(p, "--html")
    p.set_defaults(func=cmd_probe)
    return [sub.choices["probe"], _add_lens(sub)]
