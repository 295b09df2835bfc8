"""A second balanced model (figures-p50's recipe, seed 1: other training scenes, palette and init) on the
calibration's first draws, beside the bundled figures-p50's stored bits for the same quads.

    python scripts/bias_experiment.py --rates 0.5 --threads 1 --seed 1 --runs DIR   # stop it after training
    python docs/experiments/bias-draws/replicate.py DIR/figures-p50/step-001500 20 > replicate.txt
"""
import json, sys
from pathlib import Path

import numpy as np, torch
torch.set_num_threads(2)
from igpt_lite import bias
from igpt_lite.checkpoint import load_checkpoint
ck = load_checkpoint(sys.argv[1])
print(ck.path, ck.meta.get("dataset"), ck.meta.get("training", {}).get("step"))
rows = []
for seed in range(31000, 31000 + int(sys.argv[2])):
    d = json.load(open(Path(__file__).parent / "quads" / f"draw-{seed}.json"))
    composed = bias.composed_draw(seed, d["n_quads"], 32, 3)
    bits = bias.composed_bits(ck.model, ck.palette, composed)
    row = bias.likelihood_row(bits, seed=seed, n_permutations=10_000)
    q = (bits["XB"] - bits["XA"]) - (bits["YB"] - bits["YA"])
    b = {k: np.array(v) for k, v in d["control"]["bits"].items()}
    q50 = (b["XB"] - b["XA"]) - (b["YB"] - b["YA"])
    rows.append((row.effect_size, row.p_value, q.mean(), d["control"]["effect_size"], d["control"]["p_value"], q50.mean()))
    print(seed, f"replicate d {row.effect_size:+.2f} p {row.p_value:.3g} q {q.mean():+.2f} | bundled p50 d {d['control']['effect_size']:+.2f} q {q50.mean():+.2f}", flush=True)
a = np.array(rows); n = len(a)
print(f"replicate: mean d {a[:,0].mean():+.3f} (s.e. {a[:,0].std(ddof=1)/np.sqrt(n):.3f}), p<.05 {(a[:,1]<.05).sum()}/{n}, mean q {a[:,2].mean():+.3f} (s.e. {a[:,2].std(ddof=1)/np.sqrt(n):.3f})")
print(f"bundled p50 on the same draws: mean d {a[:,3].mean():+.3f} (s.e. {a[:,3].std(ddof=1)/np.sqrt(n):.3f}), p<.05 {(a[:,4]<.05).sum()}/{n}, mean q {a[:,5].mean():+.3f}")
