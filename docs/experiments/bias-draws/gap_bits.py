"""Pair-level bits residuals (target and attribute main effects removed, within each draw) against the
person-prop gap, per gender and prop kind: does a prop near the skirt cost the model bits?"""
import sys, numpy as np
sys.path.insert(0, "/tmp/bias24")
from analyse import load, full
from igpt_lite import scenes as S
bins = [(0, 1), (2, 2), (3, 4), (5, 99)]
for model in ("p50", "p90", "rand"):
    acc = {}
    nd = 0
    for s in range(20000, 20064):
        z = load(model, s)
        if z is None:
            continue
        nd += 1
        M = full(z[0]); meta = np.load(f"/tmp/bias24/meta/s{s}.npz"); gz = np.load(f"/tmp/bias24/meta/gap_s{s}.npz")
        G = np.block([[gz["XA"][:, :6], gz["XB"][:, :6]], [gz["YA"][:, :6], gz["YB"][:, :6]]])
        R = M - M.mean(1, keepdims=True) - M.mean(0, keepdims=True) + M.mean()
        kinds = np.concatenate([meta["A_prop"][:6], meta["B_prop"][:6]]).astype(int)
        for gi, gname in ((slice(0, 16), "man"), (slice(16, 32), "woman")):
            for k in range(6):
                for lo, hi in bins:
                    sel = (G[gi][:, kinds == k] >= lo) & (G[gi][:, kinds == k] <= hi)
                    acc.setdefault((gname, k, lo), []).extend(R[gi][:, kinds == k][sel].tolist())
    print(f"#### {model} ({nd} draws): mean residual bits (n pairs) by person-prop gap in pixels")
    print("| prop | person | gap 0-1 (touch) | gap 2 | gap 3-4 | gap >= 5 |")
    print("|---|---|---|---|---|---|")
    for k in range(6):
        for gname in ("man", "woman"):
            cells = []
            for lo, hi in bins:
                v = acc.get((gname, k, lo), [])
                cells.append(f"{np.mean(v):+.1f} ({len(v)})" if len(v) >= 5 else f"- ({len(v)})")
            print(f"| {S.PROPS[k]} | {gname} | " + " | ".join(cells) + " |")
