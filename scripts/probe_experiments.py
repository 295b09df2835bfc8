"""The probe experiments: where does a small iGPT's best layer beat raw pixels and a
random-weight copy of itself, and does probe quality rise with training?

Each setting is one `igpt-lite probe` call (the command is printed and kept in the report); the
script runs the chosen settings, then writes one summary table and a depth chart per setting.

    python scripts/probe_experiments.py --out docs/probes                 # every setting
    python scripts/probe_experiments.py --only figures-p50 --out /tmp/p   # one

Writes OUT/probe_experiments.json (every table), OUT/probe_experiments.md (the summary: best
layer chosen on validation, its test accuracy, the best random-weight layer, pixels, palette
pixels, and the margins in standard errors) and OUT/probe_<setting>.html (+ .png).
"""
import argparse
import json
import time
from pathlib import Path

import torch

from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.figures import save_figures
from igpt_lite.probe import ProbeTable, probe_checkpoints, probe_checkpoints_chart, probe_depth_chart, probe_model

# name: (model, dataset, images per split, pooling, what it tests); models by bundled name
SETTINGS = {
    "mnist": ("mnist", "mnist", 1000, "mean", "the bundled digits model, the paper's features"),
    "shapes": ("shapes", "shapes", None, "mean", "the bundled shapes model (16×16 colour shapes)"),
    "figures-p50": ("figures-p50", "figures-p50", 1000, "mean",
                    "person × prop scenes: the label needs both objects, at random sides, colours and poses"),
    "mnist-canvas": ("mnist-canvas", "mnist-canvas", 1000, "mean",
                     "digits at random places on a 32×32 canvas: raw pixels are weak"),
    "mnist-canvas-max": ("mnist-canvas", "mnist-canvas", 1000, "max", "the same, max-pooled"),
    "mnist-all": ("mnist", "mnist", None, "mean", "the bundled digits model, all 4,000 training images"),
    "mnist-canvas-all": ("mnist-canvas", "mnist-canvas", None, "mean", "mnist-canvas, all 4,000 training images"),
}
# probe quality over training: (run folder, dataset, images per split, pooling, steps)
OVER_TRAINING = {
    "mnist-over-training": ("runs/bundled/mnist", "mnist", 1000, "mean", (100, 300, 700, 1500)),
    "mnist-canvas-over-training": ("runs/bundled/mnist-canvas", "mnist-canvas", 1000, "mean", (100, 300, 1000)),
}


def command(model, dataset, limit, pool):
    return (f"igpt-lite probe --model {model} --data {dataset}" + (f" --limit {limit}" if limit else "")
            + ("" if pool == "mean" else f" --pool {pool}"))


def summary_row(name, cmd, table: ProbeTable):
    s = table.summary()
    pct = lambda r: f"{100 * r.test_acc:.1f} ± {100 * r.test_stderr:.1f}"  # noqa: E731
    z = {k: f"{m.points:+.1f} ({m.z:.1f})" for k, m in s.margins.items()}
    random, pixels, palette = (s.baselines[k] for k in ("random", "pixels", "palette"))
    return (f"| {name} | `{cmd}` | {s.trained.layer}: {pct(s.trained)} | {random.layer}: "
            f"{pct(random)} | {pct(pixels)} | {pct(palette)} | {z['random']} | {z['pixels']} | "
            f"{'yes' if s.beats_all else 'no'} |")


def open_report(args, filename: str):
    """(output folder, report path, report so far) for args.out, with args.threads applied: a run
    with --only adds to the stored report instead of replacing it."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / filename
    return out, report_path, (json.loads(report_path.read_text()) if report_path.exists() else {})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/probes")
    p.add_argument("--only", nargs="+", default=None, help=f"settings: {', '.join([*SETTINGS, *OVER_TRAINING])}")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    out, report_path, report = open_report(args, "probe_experiments.json")
    cache = out / "features"  # the same weights (a bundled model and its run's last step) are extracted once
    for name, (model, dataset, limit, pool, about) in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        cmd = command(model, dataset, limit, pool)
        print(f"== {name}: {cmd}", flush=True)
        t0 = time.perf_counter()
        table = probe_model(load_checkpoint(model), dataset, limit=limit, pool=pool, cache_dir=cache, progress=True)
        seconds = time.perf_counter() - t0
        report[name] = {"command": cmd, "about": about, "seconds": seconds, "table": table.to_records()}
        report_path.write_text(json.dumps(report, indent=1))
        save_figures([probe_depth_chart(table, title=f"Linear probes: {model} on {dataset} ({pool}-pooled)")],
                     out / f"probe_{name}.html", title=f"igpt-lite probe: {name}")
    for name, (run, dataset, limit, pool, steps) in OVER_TRAINING.items():
        if args.only and name not in args.only:
            continue
        print(f"== {name}: {run} steps {steps}", flush=True)
        t0 = time.perf_counter()
        table = probe_checkpoints(run, dataset, steps=steps, limit=limit, pool=pool, cache_dir=cache, progress=True)
        seconds = time.perf_counter() - t0
        report[name] = {"command": f"probe_checkpoints({run!r}, {dataset!r}, steps={steps}, limit={limit})",
                        "about": f"checkpoints of {run}", "seconds": seconds, "table": table.to_records()}
        report_path.write_text(json.dumps(report, indent=1))
        save_figures([probe_checkpoints_chart(table, title=f"Linear probes over training: {run} on {dataset}")],
                     out / f"probe_{name}.html", title=f"igpt-lite probe: {name}")
    md = ["| setting | command | best trained layer (test %) | best random-weight layer | raw pixels | palette "
          "pixels | vs random: points (s.e.) | vs pixels: points (s.e.) | beats all by > 1 s.e. |",
          "|---|---|---|---|---|---|---|---|---|"]
    md += [summary_row(name, r["command"], ProbeTable.from_records(r["table"])) for name, r in report.items()]
    (out / "probe_experiments.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
