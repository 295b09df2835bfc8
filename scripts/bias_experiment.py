"""The controlled bias experiment (issue 6): pretrain one model on "figures" scenes where men stand
with career props and women with domestic ones at rate p = 0.5 (no association) and one at p = 0.9,
then run iEAT on every layer with held-out sets (X men alone, Y women alone, A career props alone,
B domestic props alone) and check the null's calibration.

Expected: at p = 0.9 a large, significant effect (d > 0.8, Holm-adjusted p < 0.01) at some layers;
at p = 0.5 no significant effect at any layer; random re-partitions of X u Y u A u B give p < 0.05
about 5% of the time.

    python scripts/bias_experiment.py                # train both (resumes runs/bias/), then probe
    python scripts/bias_experiment.py --probe-only   # probe the latest checkpoints again
    python scripts/bias_experiment.py --export       # copy both to data/models/figures-p50, -p90

On two cores, train the rates side by side, one thread each (~75 min each here), then probe both:

    python scripts/bias_experiment.py --rates 0.9 --threads 1 &
    python scripts/bias_experiment.py --rates 0.5 --threads 1 &
    wait; python scripts/bias_experiment.py --probe-only --out docs/bias

Writes OUT/bias_table.json, OUT/bias_table.md, OUT/bias_per_layer.html (+ .png) and OUT/figures_samples.png
(rows: training scenes at each rate, then X, Y, A, B) (OUT: --out).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from igpt_lite import scenes
from igpt_lite.bias import bias_test, null_calibration
from igpt_lite.bundled import export_bundled
from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.data import register_figures
from igpt_lite.model import GPTConfig
from igpt_lite.palette import Palette
from igpt_lite.plots import bias_per_layer_chart, image_grid, save_figures
from igpt_lite.train import TrainConfig, bits_per_image, pretrain

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--rates", type=float, nargs="+", default=[0.5, 0.9], help="co-occurrence rates p")
parser.add_argument("--runs", default="runs/bias", help="training runs go to RUNS/figures-pNN/")
parser.add_argument("--out", default="runs/bias/report", help="where the table and plot go")
parser.add_argument("--probe-only", action="store_true", help="skip training: probe the latest checkpoints")
parser.add_argument("--export", action="store_true", help="export the latest checkpoints as bundled models")
# the recipe: 4 layers × 128, 16 colours, 1,500 steps of 16 scenes, on 10,000 32×32 scenes
parser.add_argument("--resolution", type=int, default=32)
parser.add_argument("--n-train", type=int, default=10_000, help="scenes per dataset (80%% train, 10%% val)")
parser.add_argument("--layers", type=int, default=4)
parser.add_argument("--width", type=int, default=128)
parser.add_argument("--colors", type=int, default=16)
parser.add_argument("--steps", type=int, default=1500)
parser.add_argument("--batch-size", type=int, default=16)
# the probe
parser.add_argument("--n-per-set", type=int, default=50, help="images in each of X, Y, A, B")
parser.add_argument("--permutations", type=int, default=100_000)
parser.add_argument("--null-trials", type=int, default=200, help="random re-partitions per layer")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--norm", default="layernorm", choices=["layernorm", "next"],
                    help="features: the paper's layer norm, or the next block's norm as iEAT extracts them")
parser.add_argument("--association", type=int, default=1000,
                    help="scenes per arm of the check that a model learned the co-occurrence at all (0: skip)")
parser.add_argument("--palette-rate", type=float, default=0.9,
                    help="the one palette every rate shares is fitted on scenes at this rate")
parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

names = {p: register_figures(p, n=args.n_train, seed=args.seed, resolution=args.resolution)
         for p in args.rates}
runs = {p: Path(args.runs) / name for p, name in names.items()}

if args.export:
    for p, name in names.items():
        print(export_bundled(name, runs[p]))
    sys.exit()

if not args.probe_only:
    res = args.resolution
    model_cfg = GPTConfig(n_colors=args.colors, height=res, width=res, n_layer=args.layers, n_head=4,
                          n_embd=args.width)
    train_cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=2e-3, min_lr=1e-4,
                            warmup_steps=min(200, args.steps), eval_every=max(1, min(100, args.steps)),
                            save_every=max(1, min(100, args.steps)), keep_checkpoints=2, seed=args.seed)
    # one palette for every rate: the models then differ only in the co-occurrence they saw, not in
    # how their colours were quantised (and each rate can train in its own process)
    palette = Palette.fit(scenes.make_scenes(2000, args.palette_rate, seed=args.seed, resolution=res).images,
                          args.colors, seed=args.seed)
    for p, name in names.items():
        t0 = time.perf_counter()
        pretrain(name, runs[p], model_cfg=model_cfg, train_cfg=train_cfg, palette=palette, resume=True)
        print(f"{name}: trained in {time.perf_counter() - t0:.0f} s")

# held-out test sets: the generator's separate stream, never a training image
tests = scenes.make_test_sets(args.n_per_set, seed=args.seed, resolution=args.resolution)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
# what the models saw (8 scenes per rate) and what they are tested on (8 of each set), one row each
per_row = min(8, args.n_per_set)
shown = [scenes.make_scenes(per_row, p, seed=args.seed, resolution=args.resolution).images for p in args.rates]
shown += [tests[k][:per_row] for k in "XYAB"]
image_grid(np.concatenate(shown), ncols=per_row).save(out / "figures_samples.png")
table, calibration = [], {}
for p, name in names.items():
    ck = load_checkpoint(runs[p])
    result = bias_test(ck, tests, norm=args.norm, n_permutations=args.permutations, seed=args.seed)
    rows, parts = result.table, [result.features[k] for k in "XYAB"]
    for row in rows:
        # the null: random re-partitions of X u Y u A u B, same sizes; p < 0.05 should be ~5% of them
        cal = null_calibration(*(part[row["layer"]] for part in parts), n_trials=args.null_trials,
                               n_permutations=1_000, seed=args.seed)
        row.update(model=name, step=ck.path.name, null_rate=cal.rate)
        calibration.setdefault(name, []).append(cal.p_values)
    table += rows

print(f"{'model':<12}{'layer':>10}{'d':>8}{'p':>10}{'Holm p':>10}{'null p<.05':>12}")
for r in table:
    print(f"{r['model']:<12}{r['layer']:>10}{r['effect_size']:>8.3f}{r['p_value']:>10.2g}{r['p_holm']:>10.2g}"
          f"{r['null_rate']:>12.3f}")
for name, ps in calibration.items():
    pooled = np.concatenate(ps)
    print(f"{name}: null p < 0.05 in {np.mean(pooled < 0.05):.3f} of {len(pooled)} random re-partitions "
          f"(all layers; expected about 0.05, binomial s.e. {np.sqrt(0.05 * 0.95 / len(pooled)):.3f})")


# Did the model learn the co-occurrence at all? New scenes (their own seed), all congruent (man with a
# career prop, woman with a domestic one) against all incongruent: a model that learned p = 0.9 gives
# incongruent scenes log2(0.9 / 0.1) = 3.17 more bits each; one trained at p = 0.5, 0 bits.
association, bits_by_model = {}, {}
if args.association:
    arms = {arm: scenes.make_scenes(args.association, rate, seed=args.seed + 1000, resolution=args.resolution).images
            for arm, rate in (("congruent", 1.0), ("incongruent", 0.0))}
    for p, name in names.items():
        ck = load_checkpoint(runs[p])
        bits = bits_by_model[p] = {arm: bits_per_image(ck.model, ck.palette.encode(im)).numpy()
                                   for arm, im in arms.items()}
        gap = float(bits["incongruent"].mean() - bits["congruent"].mean())
        se = float(np.sqrt(sum(b.var(ddof=1) / len(b) for b in bits.values())))
        association[name] = {"gap_bits": gap, "stderr": se, "ideal_bits": float(np.log2(p / (1 - p))),
                             "congruent_bits": float(bits["congruent"].mean()), "n_per_arm": args.association}
        print(f"{name}: incongruent scenes cost {gap:+.2f} ± {se:.2f} bits more than congruent ones "
              f"(a model that learned p = {p} exactly: {np.log2(p / (1 - p)):+.2f})")

if 0.5 in bits_by_model and 0.9 in bits_by_model:
    # the scenes' own content makes one arm cheaper for any model; the two models saw the same scenes,
    # so their per-image difference cancels it: only the learned co-occurrence is left (ideal 3.17 bits)
    delta = {arm: bits_by_model[0.9][arm] - bits_by_model[0.5][arm] for arm in arms}
    gap = float(delta["incongruent"].mean() - delta["congruent"].mean())
    se = float(np.sqrt(sum(d.var(ddof=1) / len(d) for d in delta.values())))
    association["p90 minus p50"] = {"gap_bits": gap, "stderr": se, "ideal_bits": float(np.log2(9)),
                                    "n_per_arm": args.association}
    print(f"p90 minus p50, image by image: incongruent scenes cost {gap:+.2f} ± {se:.2f} bits more "
          f"(ideal {np.log2(9):+.2f})")

(out / "bias_table.json").write_text(json.dumps({"args": vars(args), "table": table, "association": association},
                                                indent=1))
md = ["| model | layer | d | p | Holm p | null p<0.05 |", "|---|---|---|---|---|---|"]
md += [f"| {r['model']} | {r['layer']} | {r['effect_size']:.2f} | {r['p_value']:.2g} | {r['p_holm']:.2g} | "
       f"{r['null_rate']:.3f} |" for r in table]
if association:
    md += ["", "| model | extra bits of an incongruent scene (± s.e.) | if p were learned exactly | scenes per arm |",
           "|---|---|---|---|"]
    md += [f"| {name} | {a['gap_bits']:+.2f} ± {a['stderr']:.2f} | {a['ideal_bits']:+.2f} | {a['n_per_arm']} |"
           for name, a in association.items()]
(out / "bias_table.md").write_text("\n".join(md) + "\n")
fig = bias_per_layer_chart(table, title="iEAT per layer on figures models (X men, Y women, A career, B domestic)")
written = save_figures([fig], out / "bias_per_layer.html", title="igpt-lite: figures bias experiment")
print("wrote", ", ".join([str(out / "bias_table.json"), str(out / "bias_table.md"), *written]))
