"""The controlled bias experiment: pretrain one model on "figures" scenes where men
stand with career props and women with domestic ones at rate p = 0.5 (no association) and one at
p = 0.9, then test both, and a random-weight copy of each, on held-out sets drawn for each
`--test-seeds` seed (scenes.TestSets):

- the likelihood association test (bias.likelihood_test): every target (X men, Y women, each
  beside an empty prop slot) composed with every attribute (A career props, B domestic props) and
  scored by the model's bits;
- iEAT per layer (bias.bias_test) in the variants given by --ieat, each "POOL:NORM:N": POOL "mean"
  (every position) or "side" (the half where the prop stands or would stand), NORM "layernorm"
  (ours) or "next" (iEAT's extraction), N images per set;
- the null: random re-partitions of the targets and attributes, p < 0.05 should be ~5% of them.

Expected: at p = 0.9 a large, significant effect (d > 0.8, Holm-adjusted p < 0.01) in some test;
at p = 0.5 and on the random-weight copies no adjusted p < 0.05.

    python scripts/bias_experiment.py                # train both (resumes runs/bias/), then probe
    python scripts/bias_experiment.py --probe-only   # probe the latest checkpoints again
    python scripts/bias_experiment.py --export       # copy both to data/models/figures-p50, -p90
    python scripts/bias_experiment.py --probe-only --models data/models --test-seeds 7 8 9 --out docs/bias

On two cores, train the rates side by side, one thread each (~75 min each here), then probe both:

    python scripts/bias_experiment.py --rates 0.9 --threads 1 &
    python scripts/bias_experiment.py --rates 0.5 --threads 1 &
    wait; python scripts/bias_experiment.py --probe-only --out docs/bias

Writes OUT/bias_table.json, OUT/bias_table.md, OUT/bias_per_layer.html (+ .png, one chart per test
seed) and OUT/figures_samples.png (rows: training scenes at each rate, then X, Y, A, B, then the first
man and the first woman composed with each attribute) (OUT: --out).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from igpt_lite.data import scenes
from igpt_lite.bias import bias_test, likelihood_test
from igpt_lite.train.bundled import export_bundled
from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.data import register_figures
from igpt_lite.model import GPTConfig
from igpt_lite.palette import Palette
from igpt_lite.bias import bias_per_layer_chart
from igpt_lite.figures import image_grid, save_figures
from igpt_lite.scoring import bits_per_image
from igpt_lite.studies.calibration import likelihood_null_calibration, null_calibration
from igpt_lite.train import TrainConfig, pretrain

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--rates", type=float, nargs="+", default=[0.5, 0.9], help="co-occurrence rates p")
parser.add_argument("--runs", default="runs/bias", help="training runs go to RUNS/figures-pNN/")
parser.add_argument("--out", default="runs/bias/report", help="where the table and plot go")
parser.add_argument("--probe-only", action="store_true", help="skip training: probe the latest checkpoints")
parser.add_argument("--models", default=None,
                    help="probe the models in MODELS/figures-pNN (e.g. data/models, the bundled ones) instead of RUNS")
parser.add_argument("--export", action="store_true", help="export the latest checkpoints as bundled models")
# the recipe: 4 layers × 128, 16 colours, 1,500 steps of 16 scenes, on 10,000 32×32 scenes
parser.add_argument("--resolution", type=int, default=32)
parser.add_argument("--n-train", type=int, default=10_000, help="scenes per dataset (80%% train, 10%% val)")
parser.add_argument("--layers", type=int, default=4)
parser.add_argument("--width", type=int, default=128)
parser.add_argument("--colors", type=int, default=16)
parser.add_argument("--steps", type=int, default=1500)
parser.add_argument("--batch-size", type=int, default=16)
# the probes
parser.add_argument("--test-seeds", type=int, nargs="+", default=[0], help="seeds of the held-out test sets")
parser.add_argument("--n-targets", type=int, default=16, help="likelihood test: images in X and in Y (0: skip it)")
parser.add_argument("--n-attributes", type=int, default=8, help="likelihood test: props in A and in B")
parser.add_argument("--ieat", nargs="*", default=["mean:layernorm:50", "mean:next:50", "side:layernorm:50"],
                    help="iEAT variants, each POOL:NORM:N (POOL mean|side, NORM layernorm|next, N images a set)")
parser.add_argument("--permutations", type=int, default=100_000)
parser.add_argument("--null-trials", type=int, default=1000,
                    help="random re-partitions per model and seed (likelihood test; iEAT: a fifth of it per layer)")
parser.add_argument("--no-baseline", action="store_true", help="skip the random-weight copies")
parser.add_argument("--combine", nargs="+", metavar="JSON",
                    help="compute nothing: merge the bias_table.json of several runs (e.g. one per test seed, run "
                         "side by side) into one report in --out")
parser.add_argument("--seed", type=int, default=0, help="training data, palette and training seed")
parser.add_argument("--association", type=int, default=0,
                    help="scenes per arm of the check that a model learned the co-occurrence at all (0: skip)")
parser.add_argument("--palette-rate", type=float, default=0.9,
                    help="the one palette every rate shares is fitted on scenes at this rate")
parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)

names = {p: register_figures(p, n=args.n_train, seed=args.seed, resolution=args.resolution)
         for p in args.rates}
runs = {p: Path(args.models or args.runs) / name for p, name in names.items()}

if args.export:
    for p, name in names.items():
        print(export_bundled(name, runs[p]))
    sys.exit()

if not args.probe_only and not args.combine:
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

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
res = args.resolution
table, calibration, association = [], {}, {}


def add(rows: list[dict], **labels):
    table.extend({**labels, **r} for r in rows)


def summarise(table) -> list[dict]:
    """Per model, seed, test and weights: the layer with the smallest Holm p (ties: the largest d)."""
    groups = {}
    for r in table:
        groups.setdefault((r["model"], r["seed"], r["test"], r["weights"]), []).append(r)
    keys = ("model", "seed", "test", "weights", "layer", "effect_size", "p_holm", "ci_low", "ci_high")
    return [{k: best[k] for k in keys}
            for best in (min(rows, key=lambda r: (r["p_holm"], -r["effect_size"])) for rows in groups.values())]


variants = []
for spec in args.ieat:
    pool, norm, n = spec.split(":")
    if pool not in ("mean", "side") or norm not in ("layernorm", "next"):
        parser.error(f"--ieat {spec}: POOL is mean or side, NORM layernorm or next")
    variants.append((spec, pool, norm, int(n)))

if args.combine:
    runs_done = [json.loads(Path(f).read_text()) for f in args.combine]
    args.test_seeds = list(dict.fromkeys(seed for r in runs_done for seed in r["args"]["test_seeds"]))
    variants = list({v[0]: v for r in runs_done for v in r["variants"]}.values())
    for r in runs_done:
        table += r["table"]
        for test, v in r["null"].items():
            calibration.setdefault(test, []).append(np.array([1.0] * (v["n"] - v["count"]) + [0.0] * v["count"]))
        association.update(r["association"])
else:
    checkpoints = {name: load_checkpoint(runs[p]) for p, name in names.items()}
first = scenes.TestSets(8, seed=args.test_seeds[0], resolution=res)
shown = [scenes.make_scenes(8, p, seed=args.seed, resolution=res).images for p in args.rates]
shown += [first.images()[k] for k in "XYAB"]
per_target = first.composed(1, 4)  # the first man and woman, each with 4 career and 4 domestic props
shown += [np.concatenate([per_target[t + "A"][0], per_target[t + "B"][0]]) for t in "XY"]
image_grid(np.concatenate(shown), ncols=8).save(out / "figures_samples.png")
BATCH = 8  # images a forward pass: larger batches were slower here (attention over 1,024 positions)
# models with the same architecture and palette (the figures models) share their random-weight copy:
# its rows are computed once per test and seed
shared = {}


def baseline_key(ck, test, seed):
    return json.dumps(ck.config.to_dict(), sort_keys=True), ck.palette.colors.tobytes(), test, seed


for seed in ([] if args.combine else args.test_seeds):
    sets = scenes.TestSets(max([args.n_targets, args.n_attributes] + [v[3] for v in variants]), seed=seed,
                           resolution=res)
    composed = sets.composed(args.n_targets, args.n_attributes) if args.n_targets else None
    for name, ck in checkpoints.items():
        if composed is not None:
            t0 = time.perf_counter()
            key = baseline_key(ck, "likelihood", seed)
            lat = likelihood_test(ck, composed, n_permutations=args.permutations, seed=seed,
                                  baseline=not args.no_baseline and key not in shared, baseline_seed=seed,
                                  batch_size=BATCH)
            cal = likelihood_null_calibration(lat.bits, n_trials=args.null_trials,
                                              seed=seed * 10_000 + len(calibration.get("likelihood", [])))
            calibration.setdefault("likelihood", []).append(cal.p_values)
            add([dict(lat.row.to_dict(), null_rate=cal.rate)], model=name, seed=seed, test="likelihood", weights="trained")
            if lat.baseline:
                shared[key] = [lat.baseline.to_dict()]
            if key in shared:
                add(shared[key], model=name, seed=seed, test="likelihood", weights="random")
            print(f"{name} seed {seed}: likelihood test {time.perf_counter() - t0:.0f} s", flush=True)
        for spec, pool, norm, n in variants:
            t0 = time.perf_counter()
            key = baseline_key(ck, spec, seed)
            small = scenes.TestSets(n, seed=seed, resolution=res)
            result = bias_test(ck, small.images(), norm=norm, masks=small.prop_side() if pool == "side" else None,
                               n_permutations=args.permutations, seed=seed,
                               baseline=not args.no_baseline and key not in shared, baseline_seed=seed,
                               batch_size=BATCH)
            rows = []
            for row in result.table:
                # every layer and model its own random re-partitions (a seed of its own)
                cal = null_calibration(*(result.features[k][row.layer] for k in "XYAB"),
                                       n_trials=max(1, args.null_trials // 5), n_permutations=1_000,
                                       seed=seed * 10_000 + len(calibration.get("ieat", [])))
                rows.append(dict(row.to_dict(), null_rate=cal.rate))
                calibration.setdefault("ieat", []).append(cal.p_values)
            add(rows, model=name, seed=seed, test=f"ieat {spec}", weights="trained")
            if result.baseline_table:
                shared[key] = result.to_records(baseline=True)
            if key in shared:
                add(shared[key], model=name, seed=seed, test=f"ieat {spec}", weights="random")
            print(f"{name} seed {seed}: iEAT {spec} {time.perf_counter() - t0:.0f} s", flush=True)


summary = summarise(table)


def fmt(x, spec):
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


print(f"\n{'model':<12}{'seed':>6} {'test':<26}{'weights':<9}{'layer':>9}{'d':>7}{'95% CI':>16}{'Holm p':>10}")
for r in summary:
    print(f"{r['model']:<12}{r['seed']:>6} {r['test']:<26}{r['weights']:<9}{r['layer']:>9}{r['effect_size']:>7.2f}"
          f"{'[' + fmt(r['ci_low'], '.2f') + ', ' + fmt(r['ci_high'], '.2f') + ']':>16}{r['p_holm']:>10.2g}")
checks = {}
for seed in args.test_seeds:
    rows = [r for r in summary if r["seed"] == seed]
    p90 = [r for r in rows if r["model"].endswith("p90") and r["weights"] == "trained"]
    found = [r["test"] for r in p90 if r["effect_size"] > 0.8 and r["p_holm"] < 0.01]
    false = [f"{r['model']} {r['weights']} {r['test']}" for r in rows if r["p_holm"] < 0.05
             and (r["weights"] == "random" or not r["model"].endswith("p90"))]
    checks[seed] = {"p90 d > 0.8 and Holm p < 0.01": found, "p50 or random with Holm p < 0.05": false}
    print(f"seed {seed}: p90 tests with d > 0.8 and Holm p < 0.01: {found or 'none'}; "
          f"p50 or random-weight tests with Holm p < 0.05: {false or 'none'}")
null = {}
for test, ps in calibration.items():
    pooled = np.concatenate(ps)
    null[test] = {"rate": float(np.mean(pooled < 0.05)), "n": len(pooled), "count": int(np.sum(pooled < 0.05)),
                  "stderr": float(np.sqrt(0.05 * 0.95 / len(pooled)))}
    print(f"{test}: null p < 0.05 in {null[test]['rate']:.3f} of {len(pooled)} random re-partitions "
          f"(expected 0.05 ± {null[test]['stderr']:.3f})")

# Did the model learn the co-occurrence at all? New scenes (their own seed), all congruent (man with a
# career prop, woman with a domestic one) against all incongruent: a model that learned p = 0.9 gives
# incongruent scenes log2(0.9 / 0.1) = 3.17 more bits each; one trained at p = 0.5, 0 bits.
bits_by_model = {}
if args.association and not args.combine:
    arms = {arm: scenes.make_scenes(args.association, rate, seed=args.seed + 1000, resolution=res).images
            for arm, rate in (("congruent", 1.0), ("incongruent", 0.0))}
    for p, name in names.items():
        ck = checkpoints[name]
        bits = bits_by_model[p] = {arm: bits_per_image(ck.model, ck.palette.encode(im)).numpy()
                                   for arm, im in arms.items()}
        gap = float(bits["incongruent"].mean() - bits["congruent"].mean())
        se = float(np.sqrt(sum(b.var(ddof=1) / len(b) for b in bits.values())))
        association[name] = {"gap_bits": gap, "stderr": se, "ideal_bits": float(np.log2(p / (1 - p))),
                             "congruent_bits": float(bits["congruent"].mean()), "n_per_arm": args.association}
        print(f"{name}: incongruent scenes cost {gap:+.2f} ± {se:.2f} bits more than congruent ones "
              f"(a model that learned p = {p} exactly: {np.log2(p / (1 - p)):+.2f})")
    if 0.5 in bits_by_model and 0.9 in bits_by_model:
        # the scenes' own content makes one arm cheaper for any model; the two models saw the same
        # scenes, so their per-image difference cancels it: only the learned co-occurrence is left
        delta = {arm: bits_by_model[0.9][arm] - bits_by_model[0.5][arm] for arm in arms}
        gap = float(delta["incongruent"].mean() - delta["congruent"].mean())
        se = float(np.sqrt(sum(d.var(ddof=1) / len(d) for d in delta.values())))
        association["p90 minus p50"] = {"gap_bits": gap, "stderr": se, "ideal_bits": float(np.log2(9)),
                                        "n_per_arm": args.association}
        print(f"p90 minus p50, image by image: incongruent scenes cost {gap:+.2f} ± {se:.2f} bits more "
              f"(ideal {np.log2(9):+.2f})")

(out / "bias_table.json").write_text(json.dumps({"args": vars(args), "variants": variants, "summary": summary,
                                                 "checks": checks, "null": null, "table": table,
                                                 "association": association},
                                                indent=1))
md = ["Each test's row with the smallest Holm-adjusted p across layers (the likelihood test has one row);",
      "\"random\": the same test on a random-weight copy of the model; CI: 95% stratified percentile bootstrap.", "",
      "| model | seed | test | weights | layer | d | 95% CI | Holm p |", "|---|---|---|---|---|---|---|---|"]
md += [f"| {r['model']} | {r['seed']} | {r['test']} | {r['weights']} | {r['layer']} | {r['effect_size']:.2f} | "
       f"[{fmt(r['ci_low'], '.2f')}, {fmt(r['ci_high'], '.2f')}] | {r['p_holm']:.2g} |" for r in summary]
md += ["", "| test | random re-partitions | p < 0.05 | expected |", "|---|---|---|---|"]
md += [f"| {t} | {v['n']} | {v['rate']:.3f} | 0.050 ± {v['stderr']:.3f} |" for t, v in null.items()]
if association:
    md += ["", "| model | extra bits of an incongruent scene (± s.e.) | if p were learned exactly | scenes per arm |",
           "|---|---|---|---|"]
    md += [f"| {name} | {a['gap_bits']:+.2f} ± {a['stderr']:.2f} | {a['ideal_bits']:+.2f} | {a['n_per_arm']} |"
           for name, a in association.items()]
(out / "bias_table.md").write_text("\n".join(md) + "\n")
# the likelihood test has one row per model: its chart runs over the test seeds; each iEAT variant's
# chart runs over the layers, on the first test seed (every seed's numbers are in the tables)
figs = []


def chart_rows(rows, **extra):
    """Rows labelled for a chart; the random-weight copy, shared by both models, drawn once."""
    out, seen = [], set()
    for r in rows:
        label = "random weights" if r["weights"] == "random" else r["model"].removeprefix("figures-")
        if (label, r["seed"], r["layer"]) not in seen:
            seen.add((label, r["seed"], r["layer"]))
            out.append({**r, "model": label, **{k: f(r) for k, f in extra.items()}})
    return out


lat_rows = chart_rows([r for r in table if r["test"] == "likelihood"], layer=lambda r: f"seed {r['seed']}")
if lat_rows:
    figs.append(bias_per_layer_chart(lat_rows, title="likelihood association test, per test seed"))
    figs[-1].update_xaxes(title="test seed", row=2, col=1)
for spec, *_ in variants:
    rows = chart_rows([r for r in table if r["test"] == f"ieat {spec}" and r["seed"] == args.test_seeds[0]])
    figs.append(bias_per_layer_chart(rows, title=f"iEAT {spec} (pool:norm:images a set), test seed {args.test_seeds[0]}"))
written = save_figures(figs, out / "bias_per_layer.html", title="igpt-lite: figures bias experiment")
print("wrote", ", ".join([str(out / "bias_table.json"), str(out / "bias_table.md"), *written]))
