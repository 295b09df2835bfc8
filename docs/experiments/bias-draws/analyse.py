"""Q2/Q3 analysis of the saved bits (/tmp/bias24/bits) and metadata (/tmp/bias24/meta).
Per draw (seed) and model: iEAT's d and target-only permutation p (bias.likelihood_association, 10,000
draws), an attribute-only permutation p (exact, all C(12,6) splits of A u B), a two-way permutation p
(targets and attributes re-partitioned together, 10,000 draws), and a crossed variance-components
t-test (Var_T + Var_A - Var_E, Satterthwaite df). Breakdowns by prop kind, target side, distance,
colours, and by image region from the per-token bits maps."""
import glob, itertools, json, re, sys
import numpy as np
from scipy import stats
from igpt_lite import bias, scenes as S

BITS, META = "/tmp/bias24/bits", "/tmp/bias24/meta"
NA = int(sys.argv[1]) if len(sys.argv) > 1 else 6
ALPHA = 0.05


def load(model, seed, na=NA):
    parts = sorted(glob.glob(f"{BITS}/{model}_s{seed}_a*.npz"), key=lambda f: int(re.search(r"_a(\d+)-", f)[1]))
    if not parts or not parts[0].endswith("_a0-6.npz"):
        return None
    out, maps = {k: [] for k in bias.PAIRS}, {k: [] for k in bias.PAIRS}
    got = 0
    for f in parts:
        z = np.load(f)
        for k in bias.PAIRS:
            out[k].append(z[k]); maps[k].append(z["map_" + k])
        got = int(re.search(r"-(\d+)\.npz", f)[1])
    if got < na:
        return None
    return ({k: np.concatenate(v, 1)[:, :na] for k, v in out.items()},
            {k: np.concatenate(v, 1)[:, :na].astype(np.float32) for k, v in maps.items()})


def full(b):  # targets (X then Y) x attributes (A then B)
    return np.block([[b["XA"], b["XB"]], [b["YA"], b["YB"]]])


SPLITS = {}


def attr_splits(n):
    if n not in SPLITS:
        if n <= 24:
            rows = np.array(list(itertools.combinations(range(n), n // 2)))
        else:
            rng = np.random.default_rng(1)
            rows = rng.random((20000, n)).argsort(1)[:, : n // 2]
        SPLITS[n] = rows
    return SPLITS[n]


def tests(b, seed=0):
    M = full(b)
    nt, na = b["XA"].shape
    r = bias.likelihood_association(b, n_permutations=10_000, seed=seed, n_bootstrap=0)
    s_x, s_y = bias.likelihood_scores(b)
    D = s_x.mean() - s_y.mean()
    # attribute-only: c_j = mean_X - mean_Y of column j; D = mean_B c - mean_A c
    c = M[:nt].mean(0) - M[nt:].mean(0)
    rows = attr_splits(2 * na)
    sumB = c.sum() - c[rows].sum(1) if 2 * na <= 24 else None
    if 2 * na <= 24:  # subsets of size na play "A": stat = sum_B - sum_A = total - 2 sum_A
        stat_perm = c.sum() - 2 * c[rows].sum(1)
        p_attr = float((stat_perm >= (c[na:].sum() - c[:na].sum()) - 1e-9).mean())
    else:
        stat_perm = c.sum() - 2 * c[rows].sum(1)
        p_attr = float((1 + (stat_perm >= (c[na:].sum() - c[:na].sum()) - 1e-9).sum()) / (1 + len(rows)))
    # two-way: random target split x random attribute split
    rng = np.random.default_rng(seed + 12345)
    K = 10_000
    ti = rng.random((K, 2 * nt)).argsort(1) < nt  # True: plays X
    aj = rng.random((K, 2 * na)).argsort(1) < na  # True: plays A
    a = np.where(ti, 1.0, -1.0); bb = np.where(aj, -1.0, 1.0)
    obs = np.concatenate([np.ones(nt), -np.ones(nt)]) @ M @ np.concatenate([-np.ones(na), np.ones(na)])
    perm = np.einsum("ki,ij,kj->k", a, M, bb)
    p_2way = float((1 + (perm >= obs - 1e-9).sum()) / (1 + K))
    # crossed variance components
    VT = s_x.var(ddof=1) / nt + s_y.var(ddof=1) / nt
    VA = c[:na].var(ddof=1) / na + c[na:].var(ddof=1) / na
    VE = 0.0
    for k in bias.PAIRS:
        m = b[k]
        e = m - m.mean(1, keepdims=True) - m.mean(0, keepdims=True) + m.mean()
        VE += (e ** 2).sum() / ((nt - 1) * (na - 1)) / (nt * na)
    V = max(VT + VA - VE, VT, VA)
    dfT, dfA, dfE = 2 * nt - 2, 2 * na - 2, 4 * (nt - 1) * (na - 1)
    df = (VT + VA - VE) ** 2 / (VT ** 2 / dfT + VA ** 2 / dfA + VE ** 2 / dfE)
    t = D / np.sqrt(V)
    p_cross = float(stats.t.sf(t, df))
    # two-way (pigeonhole) bootstrap: resample targets within X and Y and attributes within A and B
    rb = np.random.default_rng(seed + 777)
    B = 2000
    ix = rb.integers(0, nt, (B, nt)); iy = nt + rb.integers(0, nt, (B, nt))
    ja = rb.integers(0, na, (B, na)); jb = na + rb.integers(0, na, (B, na))
    rows_ = np.concatenate([ix, iy], 1); cols_ = np.concatenate([ja, jb], 1)
    Mb = M[rows_[:, :, None], cols_[:, None, :]]  # B x 2nt x 2na
    Db = (Mb[:, :nt, na:].mean((1, 2)) - Mb[:, :nt, :na].mean((1, 2)) - Mb[:, nt:, na:].mean((1, 2)) + Mb[:, nt:, :na].mean((1, 2)))
    sd_boot = Db.std(ddof=1)
    p_boot = float(stats.norm.sf(D / sd_boot))
    return dict(p_boot=p_boot, sd_boot=sd_boot, d=r.effect_size, p_target=r.p_value, p_attr=p_attr, p_2way=p_2way, p_cross=p_cross, D=D,
                sd=np.concatenate([s_x, s_y]).std(ddof=1), VT=VT, VA=VA, VE=VE, df=df, t=t)


def mean_se(v):
    v = np.asarray(v, float)
    return v.mean(), v.std(ddof=1) / np.sqrt(len(v)), len(v)


def fpr_row(rows, keys=("p_target", "p_attr", "p_2way", "p_cross", "p_boot")):
    n = len(rows)
    out = []
    for k in keys:
        r = np.mean([x[k] < ALPHA for x in rows])
        out.append(f"{r:.3f} ({int(round(r * n))}/{n})")
    return out


if __name__ == "__main__":
    seeds = range(20000, 20064)
    res, nul = {}, {}
    for model in ("p50", "p90", "rand"):
        rows, nrows = [], []
        for s in seeds:
            z = load(model, s)
            if z is None:
                continue
            b = z[0]
            rows.append(dict(seed=s, **tests(b, seed=s)))
            if NA == 6:  # within-category nulls: attributes 0-2 vs 3-5 of one set (same kinds, other instances)
                for cat in "AB":
                    bn = {"XA": b["X" + cat][:, :3], "XB": b["X" + cat][:, 3:], "YA": b["Y" + cat][:, :3], "YB": b["Y" + cat][:, 3:]}
                    nrows.append(dict(seed=s, cat=cat, **tests(bn, seed=s)))
        res[model], nul[model] = rows, nrows
    print(f"### Tests per draw: 16 targets a set, {NA} attributes a set (seeds {min(r['seed'] for r in res['p50'])}-{max(r['seed'] for r in res['p50'])})")
    print("| model | draws | mean d (s.e.) | SD of d over draws | share p<.05: target-only (iEAT) | attribute-only | two-way perm | crossed (VC t) | two-way bootstrap z | mean V_A/V_T | mean V_E/V_T | mean SD_boot^2 / observed Var(D) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model, rows in res.items():
        if not rows:
            continue
        d = [r["d"] for r in rows]
        m, se, n = mean_se(d)
        print(f"| {model} | {n} | {m:+.3f} ({se:.3f}) | {np.std(d, ddof=1):.3f} | " + " | ".join(fpr_row(rows)) +
              f" | {np.mean([r['VA']/r['VT'] for r in rows]):.2f} | {np.mean([r['VE']/r['VT'] for r in rows]):.2f} | {np.mean([r['sd_boot']**2 for r in rows]) / np.var([r['D'] for r in rows], ddof=1):.2f} |")
    if NA == 6:
        print()
        print("### Within-category nulls (no association by construction): X/Y x (attributes 0-2 vs 3-5 of A, and of B), 3 a side")
        print("| model | null tests | mean d (s.e.) | SD of d | share p<.05: target-only | attribute-only (20 splits) | two-way | crossed | two-way bootstrap |")
        print("|---|---|---|---|---|---|---|---|---|")
        for model, rows in nul.items():
            if not rows:
                continue
            d = [r["d"] for r in rows]
            m, se, n = mean_se(d)
            print(f"| {model} | {n} | {m:+.3f} ({se:.3f}) | {np.std(d, ddof=1):.3f} | " + " | ".join(fpr_row(rows)) + " |")
        # variance components and predicted rates of p_target < .05 for more attributes
        print()
        print("### Variance of D (bits^2) per draw and the predicted share of target-only p < .05 with more attributes")
        print("(V_T: target-only variance, V_A: attribute-only, V_E: residual; between-draw variance ~ V_T + V_A - V_E;"
              " attribute part (V_A - V_E) and V_E scale as 6/n_a; mu = mean D over draws)")
        print("| model | mean V_T | mean V_A | mean V_E | observed Var(D) over draws | mu (s.e.) | predicted P(p_target<.05), n_a=6 | 24 | 48 | crossed test's power/size at 6 (normal approx) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for model, rows in res.items():
            if not rows:
                continue
            VT, VA, VE = (np.mean([r[k] for r in rows]) for k in ("VT", "VA", "VE"))
            Dv = np.array([r["D"] for r in rows]); mu, mse, _ = mean_se(Dv)
            preds = []
            for na in (6, 24, 48):
                f = 6 / na
                vt = (VT - VE) + VE * f
                vtot = (VT - VE) + (VA - VE) * f + VE * f
                preds.append(stats.norm.sf((1.645 * np.sqrt(vt) - mu) / np.sqrt(vtot)))
            pc = stats.norm.sf((1.645 * np.sqrt(VT + VA - VE) - mu) / np.sqrt(VT + VA - VE))
            print(f"| {model} | {VT:.2f} | {VA:.2f} | {VE:.2f} | {Dv.var(ddof=1):.2f} | {mu:+.2f} ({mse:.2f}) | " +
                  " | ".join(f"{p:.3f}" for p in preds) + f" | {pc:.3f} |")
    json.dump({"tests": res, "nulls": nul}, open(f"/tmp/bias24/tests_na{NA}.json", "w"), indent=1, default=float)
