"""Q4: the person-prop gap interaction in pixel statistics, scenes.py as is vs a patched _person whose skirt
is no wider than the trousers (polygon corners cx +- 6k -> cx +- 3k at fy - 3.5k). 8,000 scenes each at p = 0.5
(make_scenes seed 0, the p50 train split) ; gender x category table of min gap / touch share."""
import inspect, sys, textwrap, numpy as np
sys.path.insert(0, "/tmp/bias24")
from igpt_lite import data, scenes as S

D = np.abs(np.arange(32)[:, None] - np.arange(32)[None, :])

def table(label):
    import instr
    instr.REC.clear(); instr.install()
    f = S.make_scenes(10_000, 0.5, seed=0)
    instr.uninstall()
    idx = data.split_indices(10_000, "train")
    gap, g, kind = [], [], []
    for i in idx:
        r, img = instr.REC[i], f.images[i]
        pm = (r["img_prop"] != r["img_bg"]).any(-1); qm = (img != r["img_prop"]).any(-1)
        gap.append(np.where(pm[:, :, None] & qm[:, None, :], D[None], 99).min()); g.append(r["person"]); kind.append(r["prop"])
    gap, g, kind = map(np.array, (gap, g, kind)); touch = gap <= 1
    print(f"#### {label}")
    print("| | man+career | woman+career | man+domestic | woman+domestic | gender x category interaction |")
    print("|---|---|---|---|---|---|")
    for name, v in (("mean min gap (px)", gap.astype(float)), ("touch share (gap <= 1 px)", touch.astype(float))):
        cell = {(a, c): v[(g == a) & (kind // 3 == c)] for a in (0, 1) for c in (0, 1)}
        m = {k: x.mean() for k, x in cell.items()}
        se = np.sqrt(sum(x.var(ddof=1) / len(x) for x in cell.values()))
        inter = m[(1, 0)] - m[(0, 0)] - m[(1, 1)] + m[(0, 1)]
        print(f"| {name} | {m[(0,0)]:.3f} | {m[(1,0)]:.3f} | {m[(0,1)]:.3f} | {m[(1,1)]:.3f} | {inter:+.3f} (s.e. {se:.3f}) |")
    print("per kind, touch share man / woman: " + ", ".join(f"{S.PROPS[k]} {touch[(g==0)&(kind==k)].mean():.3f}/{touch[(g==1)&(kind==k)].mean():.3f}" for k in range(6)))
    return f

orig = S._person
table("scenes.py as is")
src = textwrap.dedent(inspect.getsource(orig))
new = src.replace("(cx + 6 * k, fy - 3.5 * k),", "(cx + 3 * k, fy - 3.5 * k),").replace("(cx - 6 * k, fy - 3.5 * k)]", "(cx - 3 * k, fy - 3.5 * k)]")
assert new != src and new.count("3 * k, fy - 3.5 * k") == 2
ns = dict(vars(S)); exec(new, ns)
import instr
instr._orig["person"] = ns["_person"]
table("patched: skirt hem half-width 6k -> 3k (as wide as the trousers)")
instr._orig["person"] = orig
