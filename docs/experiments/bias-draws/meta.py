"""Per-seed metadata of the composed test sets (TestSets(n_per_set=48, seed).composed(16, 48)) from the
instrumented generator: target features (16 per X/Y), attribute features (48 per A/B), and per-pair
occlusion (prop pixels painted over by the person). Checks the images equal scenes.py's."""
import sys, numpy as np
sys.path.insert(0, "/tmp/bias24")
import instr
from igpt_lite import scenes as S

TK = ["left", "person_x", "prop_x", "dist", "fy", "wall", "floor", "person_k", "skin", "hair", "top", "bottom",
      "pose", "wave_side", "person_area"]
AK = ["prop", "prop_k", "prop_m", "prop_body", "prop_area"]
for seed in [int(a) for a in sys.argv[1:]]:
    ts = S.TestSets(n_per_set=48, seed=seed)
    ref = ts.composed(n_targets=16, n_attributes=48)
    instr.REC.clear(); instr.install()
    comp = ts.composed(n_targets=16, n_attributes=48)
    instr.uninstall()
    out = {}
    r = iter(instr.REC)
    for key in ("XA", "XB", "YA", "YB"):
        assert np.array_equal(ref[key], comp[key])
        feats = [[instr.finish(next(r), comp[key][i, j]) for j in range(48)] for i in range(16)]
        out[f"occ_{key}"] = np.array([[f["occluded"] for f in row] for row in feats])
        if key[1] == "A":
            for k in TK:
                out[f"{key[0]}_{k}"] = np.array([row[0][k] for row in feats], dtype=float)
        if key[0] == "X":
            for k in AK:
                out[f"{key[1]}_{k}"] = np.array([f[k] for f in feats[0]], dtype=float)
    np.savez(f"/tmp/bias24/meta/s{seed}.npz", **out)
    print(seed, "ok", flush=True)
