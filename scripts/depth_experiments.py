"""Does a CPU-sized iGPT show the paper's depth curve (probe accuracy rising to a peak in
the middle layers, then falling at the last ones)? Probes every saved checkpoint of a training run
on all images of its dataset (linear probe with C chosen on validation, and DINO's kNN read-out),
with the random-weight and pixel baselines, then writes one table row per run and its charts.

    python scripts/train_bundled.py mnist-canvas-deep --threads 1        # first: the run
    python scripts/depth_experiments.py --threads 1                      # every setting below
    python scripts/depth_experiments.py --only mnist-canvas-deep --out /tmp/d

Writes OUT/depth_experiments.json (every table), OUT/depth_experiments.md (per setting: command,
validation bits/dim, the linear and kNN curves by layer, the peak chosen on validation and its fall
to the last layer in standard errors, next to the iGPT-S reference curve) and, per setting,
OUT/depth_<setting>.html (+ .png): the depth chart (linear and kNN), the curves over training, the
accuracy-against-bits/dim chart and the curve beside iGPT-S's against relative depth.
Feature extraction dominates the time; features are cached under runs/features.
"""
import argparse
import json
import time
from pathlib import Path

from igpt_lite import figures, probe
from igpt_lite.probe import DepthShape, ProbeRow, ProbeTable, probe_checkpoints
from igpt_lite.studies.references import IGPT_S_CIFAR10
from probe_experiments import open_report  # scripts/, on sys.path when this file runs as a script

# name: (training run, recipe in igpt_lite/bundled.py, dataset, steps probed, what it tests)
SETTINGS = {
    "mnist-canvas-deep": ("runs/bundled/mnist-canvas-deep", "mnist-canvas-deep", "mnist-canvas", (100, 300, 500, 700),
                          "8 layers × 64 on digits at random places: deeper and narrower than the bundled 4 × 128"),
}
# shipped models probed again with today's probe (trained rows only: no run folder, no baselines)
MODELS = {
    "mnist-canvas (bundled)": ("mnist-canvas", "mnist-canvas", "the bundled 4 layers × 128, 1000 steps"),
    "mnist (bundled)": ("mnist", "mnist", "the bundled 6 layers × 128 on 28×28 MNIST, 1500 steps"),
    "shapes (bundled)": ("shapes", "shapes", "the bundled 4 layers × 128 on 16×16 coloured shapes, 1500 steps"),
}


def trained_rows(model: str, dataset: str, limit=None) -> ProbeTable:
    """probe_model's trained rows alone (no random-weight model: one feature pass, not two)."""
    from igpt_lite.checkpoint import load_checkpoint
    from igpt_lite.features import extract_features, parse_layers
    from igpt_lite.probe import checkpoint_val_bpd, load_split, probe_layers

    ck = load_checkpoint(model)
    layers = parse_layers(ck.model)
    splits = {s: load_split(dataset, s, ck.palette, ck.config.height, limit) for s in ("train", "val", "test")}
    feats = {s: extract_features(ck.model, tokens, layers, batch_size=16, cache_dir="runs/features")
             for s, (_, tokens, _) in splits.items()}
    step = (ck.meta.get("training") or {}).get("step")
    table = probe_layers(feats, {s: labels for s, (_, _, labels) in splits.items()})
    return table.with_columns(step=step, val_bpd=checkpoint_val_bpd(ck, step))


def pct(x):
    return f"{100 * x:.1f}"


def curve(rows: list[ProbeRow], acc: str) -> str:
    return " · ".join(pct(getattr(r, acc)) for r in sorted(rows, key=lambda r: r.depth))


def table_rows(name, entry) -> list[str]:
    """One markdown row per probed step of a setting."""
    table = ProbeTable.from_records(entry["table"])
    out = []
    for step in table.steps or [None]:  # a model probed without a step: one row
        rows = table.at_step(step).of("trained")
        lin, knn = table.depth_shape("linear", step), table.depth_shape("knn", step)
        out.append(f"| {name} | {step} | {bpd_text(rows)} | {curve(rows, 'test_acc')} | {verdict(lin)} | "
                   f"{curve(rows, 'knn_test_acc')} | {verdict(knn)} |")
    return out


def bpd_text(rows: list[ProbeRow]) -> str:
    bpd = rows[0].val_bpd
    return "" if bpd is None else f"{bpd:.4f}"


def verdict(s: DepthShape) -> str:
    """Peak (chosen on validation) → last layer, the fall in points and in s.e. of the difference."""
    where = "" if s.inside else f" (peak at the {'first' if s.peak == s.first else 'last'} layer)"
    return (f"{s.peak} {pct(s.peak_test)} → {s.last} {pct(s.last_test)}: {s.fall_points:+.1f} "
            f"({s.fall_z:.1f} s.e.){where}{'; **the paper shape**' if s.shape else ''}")


def reference_row() -> str:
    acc = IGPT_S_CIFAR10["accuracy"]
    curve_text = " · ".join(f"{i}: {pct(a)}" for i, a in sorted(acc.items()))
    return ("| iGPT-S on CIFAR-10 (reference) | — | — | " + curve_text
            + " (validation, by hidden-state index of 24) | 16 78.6 → 24 67.8: +10.8 | — | — |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/probes")
    p.add_argument("--only", nargs="+", default=None, help=f"settings: {', '.join(SETTINGS)}")
    p.add_argument("--limit", type=int, default=None, help="images per split (default: all)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--table-only", action="store_true", help="rewrite the markdown from the stored JSON, probe nothing")
    args = p.parse_args()
    out, report_path, report = open_report(args, "depth_experiments.json")
    for name, (run, recipe, dataset, steps, about) in SETTINGS.items():
        if args.table_only or args.only and name not in args.only:
            continue
        available = [s for s in steps if (Path(run) / f"step-{s:06d}").exists()]
        print(f"== {name}: {run} steps {available}", flush=True)
        t0 = time.perf_counter()
        table = probe_checkpoints(run, dataset, steps=available, limit=args.limit, cache_dir="runs/features",
                                  progress=True)
        report[name] = {
            "command": f"python scripts/train_bundled.py {recipe} --threads 1; "
                       f"probe_checkpoints({run!r}, {dataset!r}, steps={tuple(available)}, limit={args.limit})",
            "about": about, "seconds": time.perf_counter() - t0, "table": table.to_records(),
            "shape": {"linear": table.depth_shape("linear").to_dict(), "knn": table.depth_shape("knn").to_dict()}}
        report_path.write_text(json.dumps(report, indent=1))
        figs = [probe.probe_depth_chart(table, title=f"Probes by depth: {name} on {dataset}"),
                probe.probe_checkpoints_chart(table, title=f"Linear probes over training: {name}"),
                probe.probe_bits_chart(table, title=f"Probe accuracy against validation bits/dim: {name}"),
                probe.probe_reference_chart(table, IGPT_S_CIFAR10, title=f"{name} beside iGPT-S (relative depth)")]
        print(figures.save_figures(figs, out / f"depth_{name}.html", title=f"igpt-lite depth: {name}"), flush=True)
    for name, (model, dataset, about) in MODELS.items():
        if args.table_only or args.only and name not in args.only:
            continue
        print(f"== {name}: {model}", flush=True)
        t0 = time.perf_counter()
        table = trained_rows(model, dataset, args.limit)
        report[name] = {"command": f"probe_layers on {model}'s features ({dataset}, limit={args.limit}), no baselines",
                        "about": about, "seconds": time.perf_counter() - t0, "table": table.to_records(),
                        "shape": {"linear": table.depth_shape("linear").to_dict(),
                                  "knn": table.depth_shape("knn").to_dict()}}
        report_path.write_text(json.dumps(report, indent=1))
        print(figures.save_figures([probe.probe_depth_chart(table, title=f"Probes by depth: {name} on {dataset}")],
                                 out / f"depth_{model}.html", title=f"igpt-lite depth: {name}"), flush=True)
    md = ["| setting | step | val bits/dim | linear probe, test % by layer (embed … ln_f) | linear: peak (chosen on "
          "val) → last layer, fall (s.e. of the difference) | kNN (k = 20), test % by layer | kNN: peak → last |",
          "|---|---|---|---|---|---|---|"]
    for name, entry in report.items():
        md += table_rows(name, entry)
    md.append(reference_row())
    (out / "depth_experiments.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
