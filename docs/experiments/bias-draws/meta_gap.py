"""Per-pair smallest person-prop horizontal gap (pixels, same row) in the composed test sets of each seed
(TestSets(n_per_set=48, seed).composed(16, 48), instrumented generator) -> /tmp/bias24/meta/gap_s{seed}.npz."""
import sys, numpy as np
sys.path.insert(0, "/tmp/bias24")
import instr
from igpt_lite import scenes as S
D = np.abs(np.arange(32)[:, None] - np.arange(32)[None, :])
for seed in [int(a) for a in sys.argv[1:]]:
    ts = S.TestSets(n_per_set=48, seed=seed)
    instr.REC.clear(); instr.install()
    comp = ts.composed(n_targets=16, n_attributes=48)
    instr.uninstall()
    r = iter(instr.REC); out = {}
    for key in ("XA", "XB", "YA", "YB"):
        g = np.empty((16, 48))
        for i in range(16):
            for j in range(48):
                rec = next(r)
                pm = (rec["img_prop"] != rec["img_bg"]).any(-1); qm = (comp[key][i, j] != rec["img_prop"]).any(-1)
                both = pm[:, :, None] & qm[:, None, :]
                g[i, j] = np.where(both, D[None], 99).min()
        out[key] = g
    np.savez(f"/tmp/bias24/meta/gap_s{seed}.npz", **out)
    print(seed, {k: round(float((v <= 1).mean()), 3) for k, v in out.items()}, flush=True)
