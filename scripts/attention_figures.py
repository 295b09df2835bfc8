"""Attention figures for the docs: mean attention distance per head (over test images), and one
example image's layer × head maps and rollout from a query pixel. Writes self-contained HTML
(plotly.js inline, no internet needed) and, where /usr/bin/chromium exists, PNG screenshots.

    python scripts/attention_figures.py --model mnist --out docs/
    python scripts/attention_figures.py --model runs/x --out /tmp/f --pixel 5 3 --index 2 --images 32
"""
import argparse
import json
from pathlib import Path

from igpt_lite import checkpoint, data
from igpt_lite.attention import attend, attention_summary
from igpt_lite.attention import attention_distance_chart, attention_grid, attention_rollout_figure
from igpt_lite.figures import save_figures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint folder, run folder or model name")
    p.add_argument("--out", default="docs", help="folder for the HTML (and PNG) files")
    p.add_argument("--data", default=None, help="dataset (default: the model's own)")
    p.add_argument("--split", default="test", choices=data.SPLITS)
    p.add_argument("--images", type=int, default=64, help="images for the distance summary")
    p.add_argument("--index", type=int, default=0, help="the example image for the maps")
    p.add_argument("--pixel", type=int, nargs=2, metavar=("ROW", "COL"), default=None,
                   help="query pixel (default: three quarters down, the middle column)")
    args = p.parse_args(argv)

    ck = checkpoint.load_checkpoint(args.model)
    cfg = ck.config
    # a bundled model has a name; a run's step folder (step-000600) is named by its run
    name = ck.meta.get("name") or (ck.path.parent.name if ck.path.name.startswith("step-") else ck.path.name)
    dataset = ck.dataset_name(args.data)
    ds = data.load_dataset(dataset, args.split, resolution=cfg.height)
    tokens = ck.palette.encode(ds.images[: args.images])
    # three quarters down: in an ar model that query already sees most of the image
    pixel = tuple(args.pixel) if args.pixel else (3 * cfg.height // 4, cfg.width // 2)
    example = ds.images[args.index : args.index + 1]
    if len(example) == 0:
        p.error(f"--index {args.index} is out of range: the {dataset} {args.split} split has {len(ds)} images")

    summary = attention_summary(ck.model, tokens)
    maps = attend(ck, example[0], pixel)

    distance = attention_distance_chart(
        summary.mean_distance,
        title=f"Mean attention distance per head, {name} ({summary.n_images} {dataset} {args.split} images)")
    entropy = attention_distance_chart(summary.entropy_bits, ylabel="attention entropy (bits)",
                                       title=f"Attention entropy per head, {name}")
    grid = attention_grid(maps)
    roll = attention_rollout_figure(maps)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, figs in [("distance", [distance, entropy]), ("grid", [grid]), ("rollout", [roll])]:
        written += save_figures(figs, out / f"attention_{name}_{stem}.html", title=f"{name}: attention {stem}")
    numbers = out / f"attention_{name}_summary.json"
    numbers.write_text(json.dumps({"model": str(ck.path), "dataset": dataset, "split": args.split,
                                   **summary.to_dict(), "example": {"index": args.index, **maps.to_dict()}}))
    written.append(str(numbers))
    print("\n".join(written))


if __name__ == "__main__":
    main()
