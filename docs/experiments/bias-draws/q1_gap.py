"""Q1/Q4: geometric gender x prop-kind interactions in the p50 training scenes (pixel level): smallest
horizontal gap (pixels) between any person pixel and any prop pixel on the same row, share of scenes where
they touch (gap <= 1: adjacent or overlapping), occluded prop pixels. Gender x kind means."""
import sys, numpy as np
sys.path.insert(0, "/tmp/bias24")
import instr
from igpt_lite import data, scenes as S

instr.REC.clear(); instr.install()
f = S.make_scenes(10_000, 0.5, seed=0)
instr.uninstall()
idx = data.split_indices(10_000, "train")
cols = np.arange(32)
gap, touch, occ, g, kind, pose = [], [], [], [], [], []
for i in idx:
    r, img = instr.REC[i], f.images[i]
    pm = (r["img_prop"] != r["img_bg"]).any(-1); qm = (img != r["img_prop"]).any(-1)
    best = 99
    for row in range(32):
        a, b = cols[pm[row]], cols[qm[row]]
        if len(a) and len(b):
            best = min(best, np.abs(a[:, None] - b[None, :]).min())
    gap.append(best); touch.append(best <= 1); occ.append((pm & qm).sum())
    g.append(r["person"]); kind.append(r["prop"]); pose.append(r["pose"])
gap, touch, occ, g, kind, pose = map(np.array, (gap, touch, occ, g, kind, pose))
print("| prop | man: min gap (px) | woman: min gap | man: touch share | woman: touch share | man: occluded px | woman: occluded px |")
print("|---|---|---|---|---|---|---|")
for k in range(6):
    m, w = (g == 0) & (kind == k), (g == 1) & (kind == k)
    print(f"| {S.PROPS[k]} | {gap[m].mean():.2f} | {gap[w].mean():.2f} | {touch[m].mean():.3f} | {touch[w].mean():.3f} | {occ[m].mean():.3f} | {occ[w].mean():.3f} |")
for c in (0, 1):
    m, w = (g == 0) & (kind // 3 == c), (g == 1) & (kind // 3 == c)
    print(f"| {S.CATEGORIES[c]} (all) | {gap[m].mean():.2f} | {gap[w].mean():.2f} | {touch[m].mean():.3f} | {touch[w].mean():.3f} | {occ[m].mean():.3f} | {occ[w].mean():.3f} |")
print("touch share by pose (man, woman):", [(S.POSES[p], round(touch[(g == 0) & (pose == p)].mean(), 3), round(touch[(g == 1) & (pose == p)].mean(), 3)) for p in range(3)])
