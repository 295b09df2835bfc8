"""The statistics of the bias tests: the Image Embedding Association Test (iEAT, Steed & Caliskan,
FAccT 2021) on embeddings, its permutation test and bootstrap interval, and Holm's adjustment.

Definitions follow iEAT/WEAT/SEAT exactly, so numbers are comparable with published tables:

- s(w, A, B) = mean_a cos(w, a) - mean_b cos(w, b)
- statistic  = sum_{x in X} s(x, A, B) - sum_{y in Y} s(y, A, B)
- effect size d = (mean_X s - mean_Y s) / std_{X u Y}(s), sample standard deviation (ddof = 1)
- one-sided p-value: the share of re-partitions (X_i, Y_i) of X u Y, with |X_i| = |X| and
  |Y_i| = |Y|, whose statistic is >= the observed one. Exact (every partition, the observed one
  included) when there are at most `n_permutations` partitions; otherwise `n_permutations` seeded
  random partitions and p = (1 + count) / (1 + draws). (iEAT's own sampler is unseeded.)

Picking "the most biased layer" is multiple testing: `embedding.ieat_per_layer` adds Holm-Bonferroni
adjusted p-values across layers (`holm`).

Confidence interval for d (`bootstrap_ci`): a stratified percentile bootstrap. Each of
`n_bootstrap` seeded resamples draws |X| scores from s_X and |Y| from s_Y with replacement (the
attribute sets, and so each score's definition, held fixed) and recomputes d; the interval is the
(1 - confidence)/2 and (1 + confidence)/2 quantiles of those d (numpy's linear interpolation).
Resamples whose scores are all equal (d undefined) are dropped.

Every test's numbers end in a `BiasRow`: one layer of iEAT, or the one row of the likelihood test.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .. import validate
from ..tables import aligned_text, html_table

# Partition sums that differ by less than this (relative to sum |s|) are ties: the same partition
# summed in another order can differ in the last bits, and it must still count as ">= observed".
_TIE_TOLERANCE = 1e-10
_CHUNK = 20_000  # partitions scored per numpy block: bounds memory at any n_permutations


@dataclass
class IEATResult:
    statistic: float  # sum_X s - sum_Y s
    effect_size: float  # d (nan when every s is equal)
    p_value: float  # one-sided: X more associated with A (and Y with B) than chance
    n_permutations: int  # partitions enumerated (exact) or random partitions drawn (sampled)
    exact: bool
    n_x: int = 0
    n_y: int = 0
    n_a: int = 0
    n_b: int = 0
    ci_low: float = float("nan")  # bootstrap interval for d (see bootstrap_ci)
    ci_high: float = float("nan")


def _unit_rows(name: str, m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or len(m) == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array of embeddings (rows), got shape {m.shape}")
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name} holds an all-zero embedding: its cosine similarity is undefined")
    return m / norms


def association(W, A, B) -> np.ndarray:
    """s(w, A, B) for every row w of W: mean cosine to A minus mean cosine to B."""
    W, A, B = _unit_rows("W", W), _unit_rows("A", A), _unit_rows("B", B)
    return (W @ A.T).mean(1) - (W @ B.T).mean(1)


def n_partitions(n_x: int, n_y: int) -> int:
    """How many ways X u Y splits into sets of sizes |X|, |Y| (the observed split included)."""
    return math.comb(n_x + n_y, n_x)


def smallest_p_value(n_x: int, n_y: int) -> float:
    """The smallest p-value an exact permutation test on sets of these sizes can give."""
    return 1 / n_partitions(n_x, n_y)


def _count_at_least(s: np.ndarray, index_blocks, threshold: float) -> int:
    """How many index sets (rows of each block) have a sum of s >= threshold."""
    return sum(int((s[block].sum(1) >= threshold).sum()) for block in index_blocks)


def _all_subsets(n: int, k: int):
    """Every k-subset of range(n), as int arrays of at most _CHUNK rows."""
    combos = itertools.combinations(range(n), k)
    while True:
        flat = np.fromiter(itertools.chain.from_iterable(itertools.islice(combos, _CHUNK)), dtype=np.intp)
        if flat.size == 0:
            return
        yield flat.reshape(-1, k)


def _random_subsets(n: int, k: int, draws: int, rng: np.random.Generator):
    """`draws` uniformly random k-subsets of range(n) (independent draws, as iEAT samples)."""
    for start in range(0, draws, _CHUNK):
        rows = min(_CHUNK, draws - start)
        # argsort of uniform keys is a uniform random permutation; its first k entries a random subset
        yield rng.random((rows, n)).argsort(1)[:, :k]


def bootstrap_ci(s_x, s_y, *, n_bootstrap: int = 2_000, confidence: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Stratified percentile bootstrap interval for d = (mean s_x - mean s_y) / std(s_x u s_y, ddof=1):
    resample s_x and s_y separately, with replacement, `n_bootstrap` times (seeded). (nan, nan)
    when n_bootstrap is 0 or no resample has a defined d."""
    s_x, s_y = np.asarray(s_x, dtype=np.float64), np.asarray(s_y, dtype=np.float64)
    if n_bootstrap < 1 or len(s_x) + len(s_y) < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    bx = s_x[rng.integers(0, len(s_x), (n_bootstrap, len(s_x)))]
    by = s_y[rng.integers(0, len(s_y), (n_bootstrap, len(s_y)))]
    std = np.concatenate([bx, by], axis=1).std(axis=1, ddof=1)
    ok = std > 0
    if not ok.any():
        return float("nan"), float("nan")
    d = (bx.mean(1) - by.mean(1))[ok] / std[ok]
    low, high = np.quantile(d, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


BOOTSTRAP = "stratified percentile bootstrap over targets (X and Y resampled separately), 95%"


def _check_test_options(n_permutations, seed, n_bootstrap) -> None:
    """The options every test takes, checked before any model runs (the messages the CLI gives)."""
    validate.integer("n_permutations", n_permutations, low=1)
    validate.seed("seed", seed)
    validate.integer("n_bootstrap", n_bootstrap, low=0)


def permutation_test(s_x, s_y, *, n_permutations: int = 100_000, seed: int = 0, n_bootstrap: int = 2_000,
                     n_a: int = 0, n_b: int = 0) -> IEATResult:
    """The statistic, d, one-sided permutation p-value and bootstrap interval of iEAT (see the module
    docstring) from the association scores of the targets, s_x and s_y; ieat and the likelihood
    test both end here."""
    _check_test_options(n_permutations, seed, n_bootstrap)
    s_x, s_y = np.asarray(s_x, dtype=np.float64), np.asarray(s_y, dtype=np.float64)
    n_x, n_y = len(s_x), len(s_y)
    s = np.concatenate([s_x, s_y])
    statistic = float(s_x.sum() - s_y.sum())
    std = s.std(ddof=1)
    effect_size = float((s_x.mean() - s_y.mean()) / std) if std > 0 else float("nan")

    # statistic(X_i) = 2 sum_{X_i} s - sum s, so comparing the sums over X_i is the same test
    threshold = s_x.sum() - _TIE_TOLERANCE * np.abs(s).sum()
    total = n_partitions(n_x, n_y)
    if total <= n_permutations:
        count = _count_at_least(s, _all_subsets(n_x + n_y, n_x), threshold)
        p_value, used, exact = count / total, total, True
    else:
        rng = np.random.default_rng(seed)
        count = _count_at_least(s, _random_subsets(n_x + n_y, n_x, n_permutations, rng), threshold)
        p_value, used, exact = (1 + count) / (1 + n_permutations), n_permutations, False
    low, high = bootstrap_ci(s_x, s_y, n_bootstrap=n_bootstrap, seed=seed)
    return IEATResult(statistic=statistic, effect_size=effect_size, p_value=float(p_value), n_permutations=used,
                      exact=exact, n_x=n_x, n_y=n_y, n_a=n_a, n_b=n_b, ci_low=low, ci_high=high)


@dataclass
class CrossedResult:
    """The crossed test of a likelihood table: a t-test of D = mean s_X - mean s_Y whose variance
    counts targets and attributes as both drawn at random (see `crossed_test`)."""
    difference: float  # D, in bits: mean over X of s(x) minus mean over Y of s(y)
    t: float
    df: float  # Satterthwaite's degrees of freedom
    p_value: float  # one-sided: X more associated with A (and Y with B) than chance
    var_targets: float  # V_T: D's variance if only the targets were drawn (what iEAT's permutation sees)
    var_attributes: float  # V_A: D's variance if only the attributes were drawn
    var_residual: float  # V_E: the target × attribute part, counted in both


def crossed_test(bits: dict) -> CrossedResult:
    """Targets and attributes both as samples (a crossed random-effects design, as in
    psycholinguistics' "subjects and items"), on bits = {"XA": n_x×n_a, "XB", "YA", "YB"} (entry
    [i, j]: target i composed with attribute j).

    D = mean_X s - mean_Y s equals mean_B c - mean_A c, with c_j = mean_X bits[:, j] - mean_Y
    bits[:, j] for each attribute j. Its variance over new draws of both is estimated as V = V_T +
    V_A - V_E: V_T = var(s_X)/n_x + var(s_Y)/n_y, V_A = var(c_A)/n_a + var(c_B)/n_b, and V_E the
    sum over the four blocks of their double-centred residual variance / (rows × columns), which V_T
    and V_A both contain. V is floored at max(V_T, V_A) (the sum can fall below either by chance);
    t = D / sqrt(V) with Satterthwaite's degrees of freedom (those of V_T or V_A where the floor
    applies), one-sided p = P(T >= t). iEAT's permutation p re-partitions targets only: it holds
    the attributes fixed, so its p speaks only for those particular attribute images."""
    from scipy.stats import t as student_t

    b = {k: np.asarray(bits[k], dtype=np.float64) for k in ("XA", "XB", "YA", "YB")}
    (n_x, n_a), n_y, n_b = b["XA"].shape, b["YA"].shape[0], b["XB"].shape[1]
    if min(n_x, n_y, n_a, n_b) < 2:
        raise ValueError(f"the crossed test needs at least 2 targets and 2 attributes in each set, got X {n_x}, "
                         f"Y {n_y}, A {n_a}, B {n_b}")
    s_x, s_y = b["XB"].mean(1) - b["XA"].mean(1), b["YB"].mean(1) - b["YA"].mean(1)
    c_a, c_b = b["XA"].mean(0) - b["YA"].mean(0), b["XB"].mean(0) - b["YB"].mean(0)
    difference = float(s_x.mean() - s_y.mean())
    v_t = s_x.var(ddof=1) / n_x + s_y.var(ddof=1) / n_y
    v_a = c_a.var(ddof=1) / n_a + c_b.var(ddof=1) / n_b
    v_e, df_e = 0.0, 0
    for m in b.values():
        r, c = m.shape
        residual = m - m.mean(1, keepdims=True) - m.mean(0, keepdims=True) + m.mean()
        v_e += (residual ** 2).sum() / ((r - 1) * (c - 1)) / (r * c)
        df_e += (r - 1) * (c - 1)
    df_t, df_a = n_x + n_y - 2, n_a + n_b - 2
    v = v_t + v_a - v_e
    if v >= max(v_t, v_a) and v > 0:
        df = v ** 2 / (v_t ** 2 / df_t + v_a ** 2 / df_a + v_e ** 2 / df_e)
    elif v_t >= v_a:
        v, df = v_t, df_t
    else:
        v, df = v_a, df_a
    if v > 0:
        t = difference / math.sqrt(v)
    else:  # every composed image scored alike
        t = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return CrossedResult(difference=difference, t=float(t), df=float(df), p_value=float(student_t.sf(t, df)),
                         var_targets=float(v_t), var_attributes=float(v_a), var_residual=float(v_e))


@dataclass
class QuadsResult:
    """The quads test of counterfactual quads (`scenes.TestSets.quads`): a one-sample t-test of
    q_i = s(x_i) - s(y_i), each quad's man-minus-woman difference in how much likelier its domestic
    prop makes the scene than its career prop (see `quads_test`)."""
    difference: float  # D = mean q, in bits: mean over X of s(x) minus mean over Y of s(y), as the crossed test's
    t: float
    df: float  # quads - 1
    p_value: float  # one-sided: X more associated with A (and Y with B) than chance
    sd: float  # q's standard deviation over the quads, in bits


def quad_differences(bits: dict) -> np.ndarray:
    """Each counterfactual quad's q = (XB - XA) - (YB - YA) in bits (see `quads_test`): positive
    where the man goes better with the career prop and the woman with the domestic one."""
    b = {k: np.asarray(bits[k], dtype=np.float64) for k in ("XA", "XB", "YA", "YB")}
    if any(v.ndim != 1 or v.shape != b["XA"].shape for v in b.values()):
        raise ValueError(f"quads' bits are four 1-D arrays of one length, got shapes { {k: v.shape for k, v in b.items()} }")
    return (b["XB"] - b["XA"]) - (b["YB"] - b["YA"])


def quads_test(bits: dict) -> QuadsResult:
    """Targets and attributes both as samples, on counterfactual quads: bits = {"XA", "XB", "YA",
    "YB"}, 1-D, entry i quad i's man with its career prop, with its domestic prop, and the same
    for its woman (one room, pose and colours; one prop slot). Every quad draws a new room, person
    and prop pair, so the q_i = (XB_i - XA_i) - (YB_i - YA_i) are independent and identically
    distributed, and a one-sample t-test of their mean is the test; what a scene's room, person or
    prop costs on its own cancels inside each quad, which is why it needs far fewer scenes than the
    crossed test (docs/experiments/bias-draws.md)."""
    from scipy.stats import t as student_t

    q = quad_differences(bits)
    n = len(q)
    if n < 2:
        raise ValueError(f"the quads test needs at least 2 quads, got {n}")
    difference, sd = float(q.mean()), float(q.std(ddof=1))
    if sd > 0:
        t = difference / (sd / math.sqrt(n))
    else:  # every quad scored alike
        t = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return QuadsResult(difference=difference, t=float(t), df=float(n - 1), p_value=float(student_t.sf(t, n - 1)),
                       sd=sd)


def bits_test(bits: dict) -> "CrossedResult | QuadsResult":
    """The likelihood test's p-value behind it: `quads_test` for counterfactual quads (1-D bits), the
    `crossed_test` for tables of every target with every attribute (2-D)."""
    return quads_test(bits) if np.ndim(bits["XA"]) == 1 else crossed_test(bits)


def ieat(X, Y, A, B, *, n_permutations: int = 100_000, seed: int = 0, n_bootstrap: int = 2_000) -> IEATResult:
    """The iEAT/WEAT test on four sets of embeddings (rows): targets X, Y; attributes A, B."""
    X, Y, A, B = (_unit_rows(name, m) for name, m in dict(X=X, Y=Y, A=A, B=B).items())
    widths = {name: m.shape[1] for name, m in dict(X=X, Y=Y, A=A, B=B).items()}
    if len(set(widths.values())) > 1:
        raise ValueError(f"the four sets must have the same embedding width, got {widths}")
    s_x, s_y = ((W @ A.T).mean(1) - (W @ B.T).mean(1) for W in (X, Y))  # unit rows: cosines are dot products
    return permutation_test(s_x, s_y, n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap,
                            n_a=len(A), n_b=len(B))


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order: the i-th smallest p times (m - i + 1),
    made non-decreasing along the sorted order and capped at 1. Reject where adjusted p < alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


@dataclass
class BiasRow:
    """One test's numbers: iEAT on one layer (`p_holm` adjusted across the layers), or the likelihood
    test (layer "bits", p_holm = p_value: one test, nothing to adjust). `to_dict()` is the row of the
    JSON tables (`igpt-lite bias --json`, bias_table.json)."""
    layer: str
    effect_size: float  # d
    p_value: float  # one-sided permutation p
    p_holm: float
    ci_low: float  # bootstrap interval for d
    ci_high: float
    statistic: float
    n_permutations: int
    exact: bool
    n_x: int
    n_y: int
    n_a: int
    n_b: int
    p_targets: float = float("nan")  # iEAT's permutation p (targets re-partitioned, attributes held fixed)

    @classmethod
    def of(cls, layer: str, result: IEATResult, p_holm: float) -> "BiasRow":
        """`result`'s numbers as the row of `layer` (p_value and p_targets both iEAT's p)."""
        same = {f.name: getattr(result, f.name) for f in fields(cls) if f.name not in ("layer", "p_holm", "p_targets")}
        return cls(layer=layer, p_holm=float(p_holm), p_targets=result.p_value, **same)

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        return f"d {self.effect_size:.2f} (95% CI {self.ci_low:.2f} to {self.ci_high:.2f}), p {self.p_value:.2g}"


TEXT_COLUMNS = ("layer", "effect_size", "ci_low", "ci_high", "p_value", "p_holm", "n_permutations")


def rows_text(rows: list[BiasRow]) -> str:
    """The rows as an aligned table, one line each (the columns a reader needs; the rest is in to_dict)."""
    return aligned_text([r.to_dict() for r in rows], TEXT_COLUMNS)


def rows_html(rows: list[BiasRow]) -> str:
    """The rows as an HTML table (a notebook's view of a result)."""
    return html_table([r.to_dict() for r in rows], (*TEXT_COLUMNS, "exact"))
