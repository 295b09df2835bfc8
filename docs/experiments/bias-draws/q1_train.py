"""Q1: the p50 (and p90) training split as the model sees it: co-occurrence by side / prop kind, and
every other drawn feature's mean per class, with the gender x category interaction contrast."""
import sys, json
import numpy as np
sys.path.insert(0, "/tmp/bias24")
import instr
from igpt_lite import data, scenes as S

res = {}
for p in (0.5, 0.9):
    name = S.dataset_name(p)
    ds = data.load_dataset(name, "train")
    instr.REC.clear(); instr.install()
    f = S.make_scenes(10_000, p, seed=0)
    instr.uninstall()
    assert len(instr.REC) == 10_000
    idx = data.split_indices(10_000, "train")
    assert np.array_equal(f.images[idx], ds.images), "instrumented scenes differ from load_dataset"
    lab = 2 * f.person + f.category
    assert np.array_equal(lab[idx], ds.labels)
    feats = [instr.finish(r, im) for r, im in zip(instr.REC, f.images)]
    feats = [feats[i] for i in idx]
    g = np.array([r["person"] for r in feats]); c = np.array([r["prop"] // 3 for r in feats])
    kind = np.array([r["prop"] for r in feats]); left = np.array([r["left"] for r in feats])
    cong = (g == c)
    out = {"n": len(feats), "class_names": ds.class_names,
           "class_counts": np.bincount(ds.labels, minlength=4).tolist(), "rate": float(cong.mean())}
    out["rate_by_side"] = {("left" if s else "right"): [float(cong[left == s].mean()), int((left == s).sum())] for s in (0, 1)}
    out["rate_by_gender"] = {S.PEOPLE[v]: [float(cong[g == v].mean()), int((g == v).sum())] for v in (0, 1)}
    out["kind_counts"] = {S.PROPS[q]: [int(((kind == q) & (g == 0)).sum()), int(((kind == q) & (g == 1)).sum())] for q in range(6)}
    out["rate_by_side_gender"] = {f"{('left' if s else 'right')}/{S.PEOPLE[v]}": float(cong[(left == s) & (g == v)].mean()) for s in (0, 1) for v in (0, 1)}
    # share of the woman = 1 among scenes with each prop kind
    out["woman_share_by_kind"] = {S.PROPS[q]: float(g[kind == q].mean()) for q in range(6)}
    # other features: mean per class (MC, MD, WC, WD) and interaction contrast (MC - MD - WC + WD) with s.e.
    keys = ["left", "person_x", "prop_x", "dist", "fy", "wall", "floor", "person_k", "prop_k", "prop_m", "prop_body",
            "skin", "hair", "top", "bottom", "pose", "wave_side", "prop_area", "person_area", "occluded"]
    tab = {}
    for key in keys:
        v = np.array([r[key] for r in feats], dtype=float)
        cells = [v[(g == a) & (c == b)] for a in (0, 1) for b in (0, 1)]
        means = [float(x.mean()) for x in cells]
        inter = means[0] - means[1] - means[2] + means[3]
        se = float(np.sqrt(sum(x.var(ddof=1) / len(x) for x in cells)))
        tab[key] = {"MC": means[0], "MD": means[1], "WC": means[2], "WD": means[3], "interaction": inter, "se": se, "z": inter / se}
    out["features"] = tab
    # categorical features: chi-square-ish check of colour/pose distributions by congruence
    cat = {}
    for key, n in (("wall", 6), ("floor", 5), ("prop_body", 6), ("skin", 6), ("hair", 6), ("top", 9), ("bottom", 9), ("pose", 3)):
        v = np.array([r[key] for r in feats])
        tabc = np.array([[((v == q) & cong).sum(), ((v == q) & ~cong).sum()] for q in range(n)], dtype=float)
        exp = tabc.sum(1, keepdims=True) * tabc.sum(0, keepdims=True) / tabc.sum()
        chi2 = float(((tabc - exp) ** 2 / exp).sum())
        cat[key] = {"chi2_vs_congruent": chi2, "df": n - 1}
    out["categorical"] = cat
    # occlusion per gender and kind (mean occluded prop pixels) - a pixel-level gender x kind interaction
    out["occluded_by_gender_kind"] = {S.PROPS[q]: [float(np.mean([r["occluded"] for r, gg, kk in zip(feats, g, kind) if gg == a and kk == q])) for a in (0, 1)] for q in range(6)}
    out["visible_prop_by_gender_kind"] = {S.PROPS[q]: [float(np.mean([r["prop_area"] - r["occluded"] for r, gg, kk in zip(feats, g, kind) if gg == a and kk == q])) for a in (0, 1)] for q in range(6)}
    res[name] = out
    print(name, json.dumps({k: v for k, v in out.items() if k not in ("features",)}, indent=1))
    for key, t in out["features"].items():
        print(f"  {key:12s} MC {t['MC']:8.3f} MD {t['MD']:8.3f} WC {t['WC']:8.3f} WD {t['WD']:8.3f}  inter {t['interaction']:+.3f} (se {t['se']:.3f}, z {t['z']:+.2f})")
json.dump(res, open("/tmp/bias24/q1_train.json", "w"), indent=1)
