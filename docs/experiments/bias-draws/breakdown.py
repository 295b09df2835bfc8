"""Q2 breakdown of the likelihood test's lean by prop kind, target side, distance, colours, pose, prop
mirroring and image region (per-token bits maps), per model, averaged over the available draws
(16 targets, first NA attributes a set). All in bits unless said; 'lean' = contribution to
D = mean_X s - mean_Y s (d = D / sd(s)); positive = the man-career / woman-domestic direction."""
import sys, json
import numpy as np
sys.path.insert(0, "/tmp/bias24")
from analyse import load, full, mean_se
from igpt_lite import bias, scenes as S

NA = int(sys.argv[1]) if len(sys.argv) > 1 else 6
seeds = range(20000, 20064)
out = {}
for model in ("p50", "p90", "rand"):
    acc = {}
    def add(key, v):
        acc.setdefault(key, []).append(float(v))
    n = 0
    for s in seeds:
        z = load(model, s, NA)
        if z is None:
            continue
        b, maps = z
        meta = np.load(f"/tmp/bias24/meta/s{s}.npz")
        n += 1
        nt = 16
        M = full(b)
        s_x, s_y = bias.likelihood_scores(b)
        sd = np.concatenate([s_x, s_y]).std(ddof=1)
        D = s_x.mean() - s_y.mean()
        add("d", D / sd); add("D", D)
        kinds = np.concatenate([meta["A_prop"][:NA], meta["B_prop"][:NA]]).astype(int)
        c = M[:nt].mean(0) - M[nt:].mean(0)          # bits more with men than with women, per attribute
        cc = c - c.mean()
        for k in range(6):  # per-kind gender gap and its contribution to d (sums to d over the kinds)
            sign = 1 if k >= 3 else -1
            add(f"gap_{S.PROPS[k]}", cc[kinds == k].mean())
            add(f"dcontrib_{S.PROPS[k]}", sign * cc[kinds == k].mean() / 3 / sd)
        # by target side: D within left-standing targets and within right-standing ones
        for side, name in ((1, "person left"), (0, "person right")):
            mx, my = meta["X_left"] == side, meta["Y_left"] == side
            if mx.any() and my.any():
                add(f"d_side_{name}", (s_x[mx].mean() - s_y[my].mean()) / sd)
        # by distance (median split within draw), pose
        dist = np.concatenate([meta["X_dist"], meta["Y_dist"]]); med = np.median(dist)
        for lab, sel in (("near", dist <= med), ("far", dist > med)):
            if sel[:nt].any() and sel[nt:].any():
                add(f"d_dist_{lab}", (s_x[sel[:nt]].mean() - s_y[sel[nt:]].mean()) / sd)
        # per-kind gap by side
        for side, name in ((1, "L"), (0, "R")):
            mx, my = meta["X_left"] == side, meta["Y_left"] == side
            if mx.any() and my.any():
                cs = M[:nt][mx].mean(0) - M[nt:][my].mean(0); cs = cs - cs.mean()
                for k in range(6):
                    add(f"gap_{S.PROPS[k]}_{name}", cs[kinds == k].mean())
        # prop mirroring m: does the lean depend on which way the prop faces the person?
        m = np.concatenate([meta["A_prop_m"][:NA], meta["B_prop_m"][:NA]])
        left = np.concatenate([meta["X_left"], meta["Y_left"]])
        # pair-level residuals r_ij (target and attribute main effects removed)
        R = M - M.mean(1, keepdims=True) - M.mean(0, keepdims=True) + M.mean()
        faces = np.where(left[:, None] == 1, -1, 1) * m[None, :]  # +1: m points towards the person
        g = np.r_[np.zeros(nt), np.ones(nt)][:, None] * np.ones((1, 2 * NA))
        cat = (kinds // 3)[None, :] * np.ones((2 * nt, 1))
        for f in (-1, 1):
            sel = faces == f
            cell = lambda gg, cg: R[sel & (g == gg) & (cat == cg)].mean()
            add(f"inter_faces{f:+d}", cell(0, 1) - cell(0, 0) - cell(1, 1) + cell(1, 0))
        # occlusion
        occ = np.block([[meta["occ_XA"][:, :NA], meta["occ_XB"][:, :NA]], [meta["occ_YA"][:, :NA], meta["occ_YB"][:, :NA]]])
        add("occluded_pixels_mean", occ.mean())
        # touching pairs (gap <= 1 px): OLS with target and attribute fixed effects, M_ij = a_i + b_j + gamma*touch_ij
        gz = np.load(f"/tmp/bias24/meta/gap_s{s}.npz")
        G = np.block([[gz["XA"][:, :NA], gz["XB"][:, :NA]], [gz["YA"][:, :NA], gz["YB"][:, :NA]]])
        T = (G <= 1).astype(float)
        def dc(Z):  # double-centre
            return Z - Z.mean(1, keepdims=True) - Z.mean(0, keepdims=True) + Z.mean()
        Tc, Mc = dc(T), dc(M)
        gamma = (Tc * Mc).sum() / max((Tc * Tc).sum(), 1e-12)
        add("touch_gamma_bits", gamma)
        wD = np.zeros((2 * nt, 2 * NA)); wD[:nt, NA:] = 1; wD[:nt, :NA] = -1; wD[nt:, NA:] = -1; wD[nt:, :NA] = 1
        wD /= nt * NA
        tcontrast = (wD * T).sum()
        add("touch_contrast", tcontrast)
        add("d_from_touch", gamma * tcontrast / sd)
        add("d_without_touch", (D - gamma * tcontrast) / sd)
        for lab, sel in (("touch", T == 1), ("apart", T == 0)):
            for gg, gname in ((0, "X"), (1, "Y")):
                for cg, cname in ((0, "A"), (1, "B")):
                    ss = sel & (g == gg) & (cat == cg)
                    if ss.any():
                        add(f"resid_{lab}_{gname}{cname}", R[ss].mean())
        # regions from per-token maps, mirrored so the person always stands on the right half
        Mp = np.concatenate([np.concatenate([maps["XA"], maps["XB"]], 1), np.concatenate([maps["YA"], maps["YB"]], 1)], 0)
        Mp = np.where(left[:, None, None, None] == 1, Mp[..., ::-1], Mp)  # (32 targets, 2NA, 32, 32)
        w = np.zeros((2 * nt, 2 * NA)); w[:nt, NA:] = 1 / (nt * NA); w[:nt, :NA] = -1 / (nt * NA)
        w[nt:, NA:] = -1 / (nt * NA); w[nt:, :NA] = 1 / (nt * NA)
        Dmap = np.einsum("ij,ijhw->hw", w, Mp)  # per-pixel contribution to D (sums to D)
        acc.setdefault("Dmap", []).append(Dmap / sd)
        for name, box in {"prop half (cols 0-15)": (0, 32, 0, 16), "person half (cols 16-31)": (0, 32, 16, 32),
                                       "rows 0-15": (0, 16, 0, 32), "rows 16-25": (16, 26, 0, 32), "rows 26-31 (floor)": (26, 32, 0, 32),
                                       "between, low (rows 20-31, cols 10-21)": (20, 32, 10, 22),
                                       "prop half without the between-low box": None}.items():
            if box is not None:
                r0, r1, c0, c1 = box
            if name.startswith("prop half without"):
                add(f"region_{name}", (Dmap[:, :16].sum() - Dmap[20:32, 10:16].sum()) / sd)
                continue
            add(f"region_{name}", Dmap[r0:r1, c0:c1].sum() / sd)
        # same, but by where the person stands (not mirrored): D from each side's draws
        for side, name in ((1, "L"), (0, "R")):
            sel_t = left == side
            ww = w * sel_t[:, None]
            ww[:nt] /= max(sel_t[:nt].mean(), 1e-9); ww[nt:] /= max(sel_t[nt:].mean(), 1e-9)
            Dm = np.einsum("ij,ijhw->hw", ww, Mp)
            add(f"region_prop_half_person{name}", Dm[:, :16].sum() / sd)
            add(f"region_person_half_person{name}", Dm[:, 16:].sum() / sd)
    if n == 0:
        continue
    res = {}
    for key, v in acc.items():
        if key == "Dmap":
            res[key] = np.mean(v, 0).tolist()
            continue
        res[key] = mean_se(v)
    out[model] = res

models = [m for m in ("p50", "p90", "rand") if m in out]
print(f"| quantity (16 targets x {NA} attributes a set) | " + " | ".join(f"{m} ({out[m]['d'][2]} draws)" for m in models) + " |")
print("|---|" + "---|" * len(models))
for key in out[models[0]]:
    if key == "Dmap":
        continue
    print(f"| {key} | " + " | ".join(f"{out[m][key][0]:+.3f} ({out[m][key][1]:.3f})" if key in out[m] else "" for m in models) + " |")
print()
print("D map (person mirrored to the right half), 4x4-pixel block sums in units of d (mean over draws), rows top to bottom:")
for m in models:
    Dm = np.array(out[m]["Dmap"])
    sdm = np.mean([1.0])
    blocks = Dm.reshape(8, 4, 8, 4).sum((1, 3))
    print(f"{m}:")
    for row in blocks:
        print("  " + " ".join(f"{v:+.3f}" for v in row))
json.dump(out, open(f"/tmp/bias24/breakdown_na{NA}.json", "w"), default=float)
