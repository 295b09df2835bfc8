"""The paper's two phases, measured on the bundled models: the logit lens of every layer (the
second phase, next-pixel prediction, read directly), probes within the block (attention output,
the residual stream after attention, the MLP's hidden activations, the residual stream after the
block), and probes under distribution shift (a model probed on another embedded dataset at its
resolution).

    python scripts/depth_phases.py --threads 1                  # everything below
    python scripts/depth_phases.py --only lens --ship           # the lens, also written beside each bundled model
    python scripts/depth_phases.py --only shapes-on-mnist       # one probe setting
    python scripts/depth_phases.py --only figures               # the depth charts of the shipped results

Writes OUT/depth_phases.json (every curve and table, with the command that made it) and
OUT/depth_phases.md (the tables on docs/experiments/depth.md) and OUT/depth_lens_<model>.html (+ .png):
each bundled model's probes and lens on one depth chart. Probes: the paper's features
(plain layer norm, mean over positions), `LinearProbe` with C chosen on validation, test accuracy
± its standard error; the layer is chosen on validation. With --ship, each bundled model's lens
(`probe.LENS_LIMIT` images, tuned) is written to data/models/<name>/lens.json, where the app's
depth page and `probe.logit_lens` find it.
"""
import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from igpt_lite import figures, probe
from igpt_lite.checkpoint import BUNDLED_DIR, load_checkpoint
from igpt_lite.probe import ProbeTable, load_split, logit_lens, probe_layers
from probe_experiments import open_report  # scripts/, on sys.path when this file runs as a script

# name: (model, dataset probed, train images, what it tests)
PROBES = {
    "shapes-in-distribution": ("shapes", "shapes", 2000, "the bundled shapes model on its own data (16×16, 4 classes)"),
    "shapes-on-mnist": ("shapes", "mnist", 2000, "shift: the shapes model on MNIST digits at 16×16 (10 classes)"),
    "mnist-canvas-in-distribution": ("mnist-canvas", "mnist-canvas", 2000,
                                     "the bundled mnist-canvas model on its own data (32×32, 10 classes)"),
    "mnist-canvas-on-figures": ("mnist-canvas", "figures-p50", 2000,
                                "shift: the mnist-canvas model (grey digits) on figures-p50 scenes in grey (4 classes)"),
}


def block_features(model, tokens, batch_size: int = 32) -> dict[str, np.ndarray]:
    """{site: N×d} for every site, input to output: embed, then per block its attention output
    (attn_out), the residual stream after attention (resid_mid), the MLP's hidden activations
    (mlp_hidden, 4× wider), the residual stream after the block (blocks.i), then ln_f; each
    layer-normed (no learned scale) and mean-pooled over positions, as `extract_features` does."""
    store, hooks = {}, []
    for i, b in enumerate(model.blocks):
        act = (lambda h: h * torch.sigmoid(1.702 * h)) if b.mlp.quick else F.gelu
        hooks += [b.attn.register_forward_hook(lambda m, a, out, i=i: store.__setitem__(f"blocks.{i}.attn_out", out[0])),
                  b.ln_2.register_forward_pre_hook(lambda m, a, i=i: store.__setitem__(f"blocks.{i}.resid_mid", a[0])),
                  b.mlp.fc.register_forward_hook(
                      lambda m, a, out, i=i, act=act: store.__setitem__(f"blocks.{i}.mlp_hidden", act(out)))]
    L = model.config.n_layer
    names = {"embed", "ln_f"} | {f"blocks.{i}.resid_post" for i in range(L)}
    sites = ["embed"] + [f"blocks.{i}{s}" for i in range(L) for s in (".attn_out", ".resid_mid", ".mlp_hidden", "")]
    sites.append("ln_f")
    out = {s: [] for s in sites}
    try:
        with torch.inference_mode():
            for i in range(0, len(tokens), batch_size):
                _, cache = model.run_with_cache(model.image_inputs(tokens[i : i + batch_size]), names=names)
                acts = {**store, **cache}
                for s in sites:
                    x = acts[s if s.count(".") != 1 else f"{s}.resid_post"]
                    out[s].append(F.layer_norm(x, x.shape[-1:]).mean(1).float().numpy())
    finally:
        for h in hooks:
            h.remove()
    return {s: np.concatenate(v) for s, v in out.items()}


def pixels(images) -> dict:
    return {"pixels": (np.asarray(images, dtype=np.float32) / 127.5 - 1).reshape(len(images), -1)}


def probe_setting(model: str, dataset: str, n_train: int) -> ProbeTable:
    ck = load_checkpoint(model)
    side = ck.square_side()
    splits = {s: load_split(dataset, s, ck.palette, side, n_train if s == "train" else None)
              for s in ("train", "val", "test")}
    feats = {s: block_features(ck.model, tokens) for s, (_, tokens, _) in splits.items()}
    labels = {s: lab for s, (_, _, lab) in splits.items()}
    table = probe_layers(feats, labels, knn_k=None)
    base = probe_layers({s: pixels(im) for s, (im, _, _) in splits.items()}, labels, knn_k=None, whiten="auto",
                        kind="pixels")
    return ProbeTable(table.rows + base.with_columns(depth=None).rows)


def residual(table: ProbeTable) -> ProbeTable:
    """The residual-stream rows alone (embed, blocks.i, ln_f), with their depth in that stream."""
    rows = [r for r in table.of("trained") if r.layer.count(".") <= 1]
    return ProbeTable([replace(r, depth=d) for d, r in enumerate(rows)])


def pct(x):
    return f"{100 * x:.1f}"


def lens_md(report) -> list[str]:
    md = ["| model | layers × width | test images (tuned: train images) | logit lens, bits/dim (embed … ln_f) | "
          "tuned lens, bits/dim | model's own bits/dim |", "|---|---|---|---|---|---|"]
    for name, e in report.get("lens", {}).items():
        rows = e["curve"]["rows"]
        plain = " · ".join(f"{r['bits_per_dim']:.3f}" for r in rows)
        tuned = " · ".join(f"{r['tuned_bits_per_dim']:.3f}" for r in rows)
        md.append(f"| {name} | {e['shape']} | {e['curve']['n_images']} ({e['curve']['n_train']}) | {plain} | {tuned} | "
                  f"{rows[-1]['bits_per_dim']:.3f} |")
    return md


def probe_md(report) -> list[str]:
    md = ["| setting | model → data | n train / val / test | residual stream, test % (embed … ln_f) | peak (on val) → last, "
          "fall (s.e.) | best site on val → its test % | attention out · resid after attention · MLP hidden · resid "
          "after block, test % by block | raw pixels |", "|---|---|---|---|---|---|---|---|"]
    for name, e in report.get("probes", {}).items():
        table = ProbeTable.from_records(e["table"])
        res = residual(table)
        s = res.depth_shape()
        best = table.best()
        trained = {r.layer: r for r in table.of("trained")}
        blocks = " / ".join(" · ".join(pct(trained[f"blocks.{i}{k}"].test_acc)
                                       for k in (".attn_out", ".resid_mid", ".mlp_hidden", ""))
                            for i in range(sum(1 for l in trained if l.endswith(".attn_out"))))
        r0 = res.rows[0]
        pix = table.of("pixels")[0]
        md.append(f"| {name} | {e['model']} → {e['dataset']} | {r0.n_train} / {r0.n_val} / {r0.n_test} | "
                  f"{' · '.join(pct(r.test_acc) for r in res.rows)} | {s.peak} {pct(s.peak_test)} → {s.last} "
                  f"{pct(s.last_test)}: {s.fall_points:+.1f} ({s.fall_z:.1f} s.e.){'; **rise and fall**' if s.shape else ''}"
                  f" | {best.layer} → {pct(best.test_acc)} ± {pct(best.test_stderr)} | {blocks} | "
                  f"{pct(pix.test_acc)} ± {pct(pix.test_stderr)} |")
    return md


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/probes")
    p.add_argument("--only", nargs="+", default=None, help=f"lens, figures and/or settings: {', '.join(PROBES)}")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--ship", action="store_true", help="write each bundled model's lens to data/models/<name>/lens.json")
    p.add_argument("--table-only", action="store_true", help="rewrite the markdown from the stored JSON, compute nothing")
    args = p.parse_args()
    out, report_path, report = open_report(args, "depth_phases.json")
    wanted = (lambda k: not args.table_only and (args.only is None or k in args.only))
    if wanted("lens"):
        for path in sorted(p for p in BUNDLED_DIR.iterdir() if (p / "config.json").exists()):
            name = path.name
            t0 = time.perf_counter()
            curve = logit_lens(path, reuse=False, cache_dir="runs")
            curve.model = f"data/models/{name}"  # where it is shipped, not this machine's path
            cfg = load_checkpoint(path).config
            report.setdefault("lens", {})[name] = {
                "command": f"igpt-lite lens --model {name} --limit {probe.LENS_LIMIT} --again",
                "shape": f"{cfg.n_layer} × {cfg.n_embd}", "seconds": time.perf_counter() - t0, "curve": curve.to_dict()}
            if args.ship:
                curve.save(Path(path) / probe.LENS_FILE)
            report_path.write_text(json.dumps(report, indent=1))
            print(curve.text(), flush=True)
    if wanted("figures"):  # each bundled model's shipped probes and lens, one depth chart each
        for path in sorted(p for p in BUNDLED_DIR.iterdir() if (p / probe.LENS_FILE).exists()):
            fig = probe.probe_depth_chart(probe.probe_report(path, compute=False).table, lens=logit_lens(
                path, compute=False), title=f"Linear probes and logit lens: {path.name} on its own data")
            print(figures.save_figures([fig], out / f"depth_lens_{path.name}.html", title=path.name), flush=True)
    for name, (model, dataset, n_train, about) in PROBES.items():
        if not wanted(name):
            continue
        t0 = time.perf_counter()
        table = probe_setting(model, dataset, n_train)
        report.setdefault("probes", {})[name] = {
            "command": f"python scripts/depth_phases.py --only {name} --threads 1", "model": model, "dataset": dataset,
            "about": about, "seconds": time.perf_counter() - t0, "table": table.to_records()}
        report_path.write_text(json.dumps(report, indent=1))
        print(name, table.text(), flush=True)
    md = lens_md(report) + [""] + probe_md(report)
    (out / "depth_phases.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
