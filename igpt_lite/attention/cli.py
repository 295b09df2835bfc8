"""`igpt-lite attention`: maps of every layer and head from one pixel, and rollout."""
from __future__ import annotations

from dataclasses import dataclass

from .. import data
from ..arguments import (VerbResult, count, data_args, device_arg, existing_file, input_images, load_model, model_arg,
                         overwrite_arg, write_text)
from ..figures import figures_html
from .figures import attention_distance_chart, attention_grid, attention_rollout_figure
from .maps import AttentionMaps, AttentionSummary, attend, attention_summary


@dataclass
class AttentionRun(VerbResult):
    """What `igpt-lite attention` found: the maps from one pixel of one image, that image's per-head
    summary, where the image came from and where the figures went."""
    model: str
    source: str | list[str]  # an image file, or a dataset's split and index
    maps: AttentionMaps
    summary: AttentionSummary
    html: str | None
    hidden = ("maps", "start", "head_mean", "rollout", "visible")  # too big to read

    def to_dict(self) -> dict:
        return {"model": self.model, "source": self.source, **self.maps.to_dict(),
                "rollout_peak": list(self.maps.rollout_peak), **self.summary.to_dict(), "html": self.html}


def cmd_attention(args) -> AttentionRun:
    ck = load_model(args)
    images, source = input_images(args, ck, [args.image] if args.image else None, [args.index])
    att = attend(ck, images[0], args.pixel)
    summary = attention_summary(ck.model, ck.palette.encode(images))  # this image's per-head distance and entropy
    html = None
    if args.html:
        figs = [attention_grid(att), attention_rollout_figure(att),
                attention_distance_chart(summary.mean_distance, title="Mean attention distance per head, this image")]
        html = write_text(args.html, figures_html(figs, title=f"attention from pixel {att.pixel}"))
    return AttentionRun(str(ck.path), source, att, summary, html)


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("attention", help="attention maps of every layer and head from one pixel, and rollout")
    model_arg(p)
    device_arg(p)
    p.add_argument("--image", type=existing_file, default=None, help="an image file, centre-cropped and resized (default: an image of --split)")
    data_args(p)
    p.add_argument("--split", default="test", choices=data.SPLITS, help="(default: %(default)s)")
    p.add_argument("--index", type=count(0), default=0, help="image of the split (default: %(default)s)")
    p.add_argument("--pixel", type=count(0), nargs=2, required=True, metavar=("ROW", "COL"), help="the query pixel")
    p.add_argument("--html", default=None, help="write the figures to this HTML file (default: no file)")
    overwrite_arg(p, "--html")
    p.set_defaults(func=cmd_attention)
    return [sub.choices["attention"]]
