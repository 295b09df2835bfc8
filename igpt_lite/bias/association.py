"""Bias probes: the Image Embedding Association Test (iEAT, Steed & Caliskan, FAccT 2021), per layer.

Definitions follow iEAT/WEAT/SEAT exactly, so numbers are comparable with published tables:

- s(w, A, B) = mean_a cos(w, a) - mean_b cos(w, b)
- statistic  = sum_{x in X} s(x, A, B) - sum_{y in Y} s(y, A, B)
- effect size d = (mean_X s - mean_Y s) / std_{X u Y}(s), sample standard deviation (ddof = 1)
- one-sided p-value: the share of re-partitions (X_i, Y_i) of X u Y, with |X_i| = |X| and
  |Y_i| = |Y|, whose statistic is >= the observed one. Exact (every partition, the observed one
  included) when there are at most `n_permutations` partitions; otherwise `n_permutations` seeded
  random partitions and p = (1 + count) / (1 + draws). (iEAT's own sampler is unseeded.)

Picking "the most biased layer" is multiple testing: `ieat_per_layer` adds Holm-Bonferroni
adjusted p-values across layers.

Confidence interval for d (`bootstrap_ci`): a stratified percentile bootstrap. Each of
`n_bootstrap` seeded resamples draws |X| scores from s_X and |Y| from s_Y with replacement (the
attribute sets, and so each score's definition, held fixed) and recomputes d; the interval is the
(1 - confidence)/2 and (1 + confidence)/2 quantiles of those d (numpy's linear interpolation).
Resamples whose scores are all equal (d undefined) are dropped.

The likelihood association test (`likelihood_association`, `likelihood_test`) asks a generative
model what it expects instead of comparing embeddings. Every target x in X u Y is composed with
every attribute (a scene holding both: `scenes.TestSets.composed` for the figures scenes,
`compose_halves` for users' images), each composed image is scored by the model's negative
log-likelihood in bits, and

- s(x) = mean_{b in B} bits(x with b) - mean_{a in A} bits(x with a)

(positive: the model finds x with A's attributes likelier). The statistic, effect size d, one-sided
permutation p-value and bootstrap interval are then exactly iEAT's above, on these s. There are no
layers: it is one test per model.

Baselines: `bias_test` and `likelihood_test` run the same test on a random-weight copy of the
model (same architecture and palette, GPT's own init, seeded by `baseline_seed`), because pixel
statistics alone can look like an association.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import validate
from ..model import random_model

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


def ieat_per_layer(features_X: dict, features_Y: dict, features_A: dict, features_B: dict, *,
                   n_permutations: int = 100_000, seed: int = 0, n_bootstrap: int = 2_000) -> list[dict]:
    """iEAT on every layer's features ({layer: N×d}), with Holm-adjusted p-values across layers.

    Returns a plain table, one dict per layer in the input order: layer, effect_size, p_value,
    p_holm, ci_low, ci_high, statistic, n_permutations, exact, n_x, n_y, n_a, n_b. Every layer uses the same seed
    (Holm holds under any dependence between the layers' tests)."""
    layers = list(features_X)
    for name, feats in dict(Y=features_Y, A=features_A, B=features_B).items():
        if list(feats) != layers:
            raise ValueError(f"features_{name} has layers {list(feats)}, features_X has {layers}")
    rows = []
    for layer in layers:
        r = ieat(features_X[layer], features_Y[layer], features_A[layer], features_B[layer],
                 n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap)
        rows.append({"layer": layer, **vars(r)})
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = float(adjusted)
    keys = ["layer", "effect_size", "p_value", "p_holm", "ci_low", "ci_high", "statistic", "n_permutations",
            "exact", "n_x", "n_y", "n_a", "n_b"]
    return [{k: row[k] for k in keys} for row in rows]


@dataclass
class NullCalibration:
    p_values: np.ndarray  # one per random re-partition
    alpha: float
    rate: float  # share of p < alpha; about alpha (a little under, p-values are discrete) if calibrated
    stderr: float  # binomial standard error of `rate` at the nominal alpha


def null_calibration(X, Y, A, B, *, n_trials: int = 200, n_permutations: int = 1_000, alpha: float = 0.05,
                     seed: int = 0) -> NullCalibration:
    """Check that the test is calibrated on these embeddings: pool X u Y u A u B, split it at random
    into four sets of the original sizes `n_trials` times, test each split. With no association by
    construction, p < alpha should happen about alpha of the time."""
    pool = np.concatenate([np.asarray(m, dtype=np.float64) for m in (X, Y, A, B)])
    sizes = np.cumsum([len(X), len(Y), len(A), len(B)])[:-1]
    rng = np.random.default_rng(seed)
    p = np.empty(n_trials)
    for t in range(n_trials):
        x, y, a, b = np.split(pool[rng.permutation(len(pool))], sizes)
        p[t] = ieat(x, y, a, b, n_permutations=n_permutations, seed=seed + 1 + t, n_bootstrap=0).p_value
    return NullCalibration(p_values=p, alpha=alpha, rate=float((p < alpha).mean()),
                           stderr=math.sqrt(alpha * (1 - alpha) / n_trials))


# ---- one call: a checkpoint and four sets of images ----

SET_NAMES = ("X", "Y", "A", "B")
# how images become embeddings: ours (the paper's probe features) or iEAT's own extraction
EXTRACTIONS = {"ours": dict(crop="center", norm="layernorm"), "ieat": dict(crop="top-left", norm="next")}


@dataclass
class BiasResult:
    """iEAT on every layer of one model: `table` rows as `ieat_per_layer` gives them, and
    `baseline_table` the same test on a random-weight copy of the model (empty when not run)."""
    table: list[dict]
    norm: str  # how each layer's output was normalised before mean pooling
    n_per_set: dict[str, int]
    n_permutations: int
    seed: int
    features: dict = field(default_factory=dict, repr=False)  # {"X": {layer: N×d}, ...}: what was compared
    baseline_table: list[dict] = field(default_factory=list)
    baseline_seed: int | None = None
    pool: str = "mean"  # "mean" over every position, or "mean over masks" (the positions `masks` chose)
    n_bootstrap: int = 2_000

    def smallest_holm(self) -> dict:
        """The row with the smallest Holm-adjusted p-value."""
        return min(self.table, key=lambda r: r["p_holm"])

    def to_dict(self) -> dict:
        return {"test": "ieat", "norm": self.norm, "pool": self.pool, "n_per_set": self.n_per_set,
                "n_permutations": self.n_permutations, "seed": self.seed, "n_bootstrap": self.n_bootstrap,
                "bootstrap": BOOTSTRAP, "table": self.table,
                "baseline": {"model": f"random weights, seed {self.baseline_seed}", "table": self.baseline_table}
                if self.baseline_table else None}


BOOTSTRAP = "stratified percentile bootstrap over targets (X and Y resampled separately), 95%"


def _check_images(checkpoint, sets: dict, keys) -> None:
    missing = [k for k in keys if k not in sets]
    if missing:
        raise ValueError(f"sets must hold {', '.join(keys)}; missing {', '.join(missing)}")
    for k in keys:  # a composed set is n_targets×n_attributes×H×W×C
        images = np.asarray(sets[k])
        checkpoint.check_images(images.reshape(-1, *images.shape[-3:]) if images.ndim > 4 else images, name=f"set {k}")


@torch.inference_mode()
def _masked_mean_features(model, tokens, layers, norm: str, masks: np.ndarray, batch_size: int) -> dict:
    """{layer: N×d}: each layer's output (normalised as features.py does) averaged over the
    positions where `masks` (bool N×H×W, raster order) is set."""
    from ..features import _normalise, cache_name

    weights = torch.as_tensor(np.asarray(masks).reshape(len(masks), -1), dtype=torch.float32)
    if (weights.sum(1) == 0).any():
        raise ValueError("every mask must select at least one position")
    out = {l: [] for l in layers}
    for i in range(0, len(tokens), batch_size):
        batch = torch.as_tensor(tokens[i : i + batch_size]).to(model.device)
        w = weights[i : i + batch_size].to(model.device)
        _, cache = model.run_with_cache(model.image_inputs(batch), names={cache_name(l) for l in layers})
        for l in layers:
            x = _normalise(model, l, cache[cache_name(l)], norm)
            out[l].append(((x * w[..., None]).sum(1) / w.sum(1, keepdim=True)).float().cpu().numpy())
    return {l: np.concatenate(v) for l, v in out.items()}


def _split_features(feats: dict, sizes: list[int]) -> list[dict]:
    ends = np.cumsum(sizes)[:-1]
    return [{layer: part for layer, part in zip(feats, split)}
            for split in zip(*(np.split(v, ends) for v in feats.values()))]


def bias_test(checkpoint, sets: dict, *, layers=None, norm: str = "layernorm", n_permutations: int = 100_000,
              seed: int = 0, batch_size: int = 64, masks: dict | None = None, baseline: bool = True,
              baseline_seed: int = 0, n_bootstrap: int = 2_000) -> BiasResult:
    """iEAT on every layer of `checkpoint` (a Checkpoint) for four sets of images, `sets` = {"X":
    targets, "Y": targets, "A": attributes, "B": attributes}, each uint8 N×H×W×C at the model's
    size (data.load_image_folder or scenes.make_test_sets make them). Features: each layer's output,
    normalised (`norm`, see features.py) and mean-pooled, from one forward pass over all images;
    with `masks` ({"X": bool N×H×W, ...}) pooled over the chosen positions only (e.g.
    `scenes.TestSets.prop_side()`: where the prop stands or would stand).
    `baseline`: the same test on a random-weight copy (`model.random_model`, seed `baseline_seed`).
    Each row carries a bootstrap interval for d (see `bootstrap_ci`)."""
    from ..features import extract_features, parse_layers
    _check_test_options(n_permutations, seed, n_bootstrap)
    _check_images(checkpoint, sets, SET_NAMES)
    for k in SET_NAMES:
        if np.ndim(sets[k]) != 4:
            raise ValueError(f"set {k}: expected a stack of images N×H×W×C, got shape {np.shape(sets[k])}")
    if masks is not None:
        for k in SET_NAMES:
            if np.shape(masks.get(k)) != np.shape(sets[k])[:3]:
                raise ValueError(f"masks[{k!r}] must be bool N×H×W matching set {k}, got {np.shape(masks.get(k))}")
    palette = checkpoint.palette
    tokens = palette.encode(np.concatenate([sets[k] for k in SET_NAMES]))
    names = parse_layers(checkpoint.model, layers, False)
    sizes = [len(sets[k]) for k in SET_NAMES]

    def run(model) -> tuple[list[dict], list[dict]]:
        if masks is None:
            feats = extract_features(model, tokens, names, norm=norm, batch_size=batch_size)
        else:
            feats = _masked_mean_features(model, tokens, names, norm, np.concatenate([masks[k] for k in SET_NAMES]),
                                          batch_size)
        parts = _split_features(feats, sizes)
        return ieat_per_layer(*parts, n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap), parts

    table, parts = run(checkpoint.model)
    baseline_table = run(random_model(checkpoint.config, baseline_seed).to(checkpoint.model.device))[0] if baseline else []
    return BiasResult(table=table, norm=norm, n_per_set=dict(zip(SET_NAMES, sizes)), n_permutations=n_permutations,
                      seed=seed, features=dict(zip(SET_NAMES, parts)), baseline_table=baseline_table,
                      baseline_seed=baseline_seed if baseline else None,
                      pool="mean" if masks is None else "mean over masks", n_bootstrap=n_bootstrap)


# ---- the likelihood association test ----

PAIRS = ("XA", "XB", "YA", "YB")


def likelihood_scores(bits: dict) -> tuple[np.ndarray, np.ndarray]:
    """s(x) = mean_b bits(x with b) - mean_a bits(x with a) for every target, from bits = {"XA":
    n_x×n_a, "XB": n_x×n_b, "YA": n_y×n_a, "YB": n_y×n_b} (entry [i, j]: target i with attribute j)."""
    missing = [k for k in PAIRS if k not in bits]
    if missing:
        raise ValueError(f"bits must hold {', '.join(PAIRS)}; missing {', '.join(missing)}")
    b = {k: np.asarray(v, dtype=np.float64) for k, v in bits.items()}
    if any(v.ndim != 2 or v.size == 0 for v in b.values()):
        raise ValueError(f"each bits entry must be a non-empty 2-D table, got shapes { {k: v.shape for k, v in b.items()} }")
    if b["XA"].shape[0] != b["XB"].shape[0] or b["YA"].shape[0] != b["YB"].shape[0] \
            or b["XA"].shape[1] != b["YA"].shape[1] or b["XB"].shape[1] != b["YB"].shape[1]:
        raise ValueError(f"bits tables disagree on the set sizes: { {k: v.shape for k, v in b.items()} }")
    return b["XB"].mean(1) - b["XA"].mean(1), b["YB"].mean(1) - b["YA"].mean(1)


def likelihood_association(bits: dict, *, n_permutations: int = 100_000, seed: int = 0,
                           n_bootstrap: int = 2_000) -> IEATResult:
    """The likelihood association test on a table of bits (see `likelihood_scores`): iEAT's statistic,
    d, permutation p-value and bootstrap interval on s(x)."""
    s_x, s_y = likelihood_scores(bits)
    return permutation_test(s_x, s_y, n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap,
                            n_a=np.shape(bits["XA"])[1], n_b=np.shape(bits["XB"])[1])


def composed_bits(model, palette, composed: dict, batch_size: int = 64) -> dict:
    """{"XA": n_x×n_a, ...} bits of every composed image under an ar model (scoring.bits_per_image)."""
    from ..scoring import bits_per_image

    out = {}
    with torch.inference_mode():
        for k in PAIRS:
            images = np.asarray(composed[k])
            flat = images.reshape(-1, *images.shape[2:])
            out[k] = bits_per_image(model, palette.encode(flat), batch_size=batch_size).numpy().reshape(images.shape[:2])
    return out


@dataclass
class LikelihoodResult:
    """The likelihood association test on one model: `row` its numbers (the keys of an
    `ieat_per_layer` row, with layer "bits" and p_holm = p_value: one test, nothing to adjust),
    `baseline` the same on a random-weight copy (None when not run)."""
    row: dict
    baseline: dict | None
    bits: dict = field(repr=False)  # {"XA": n_x×n_a, ...}: each composed image's bits
    baseline_bits: dict | None = field(default=None, repr=False)
    n_permutations: int = 100_000
    seed: int = 0
    baseline_seed: int | None = 0
    n_bootstrap: int = 2_000

    @property
    def table(self) -> list[dict]:
        return [self.row]

    def to_dict(self) -> dict:
        return {"test": "likelihood", "score": "s(x) = mean bits with B - mean bits with A",
                "n_permutations": self.n_permutations, "seed": self.seed, "n_bootstrap": self.n_bootstrap,
                "bootstrap": BOOTSTRAP, "table": [self.row],
                "baseline": {"model": f"random weights, seed {self.baseline_seed}", "table": [self.baseline]}
                if self.baseline else None}


def _likelihood_row(bits: dict, **kw) -> dict:
    r = vars(likelihood_association(bits, **kw))
    return {"layer": "bits", "effect_size": r["effect_size"], "p_value": r["p_value"], "p_holm": r["p_value"],
            **{k: r[k] for k in ("ci_low", "ci_high", "statistic", "n_permutations", "exact", "n_x", "n_y",
                                 "n_a", "n_b")}}


def likelihood_test(checkpoint, composed: dict, *, n_permutations: int = 100_000, seed: int = 0,
                    baseline: bool = True, baseline_seed: int = 0, n_bootstrap: int = 2_000,
                    batch_size: int = 64) -> LikelihoodResult:
    """The likelihood association test on `checkpoint` (an ar Checkpoint). `composed` = {"XA":
    uint8 n_x×n_a×H×W×C (target i of X with attribute j of A), "XB", "YA", "YB"}, e.g.
    `scenes.TestSets(...).composed()` or `compose_halves`. Every image is scored once by the model
    (and once by a random-weight copy when `baseline`)."""
    _check_test_options(n_permutations, seed, n_bootstrap)
    if checkpoint.config.objective != "ar":
        raise ValueError("the likelihood test needs an ar model: a bert model gives no likelihood of a whole "
                         "image; use bias_test (iEAT) instead")
    _check_images(checkpoint, composed, PAIRS)
    for k in PAIRS:
        if np.ndim(composed[k]) != 5:
            raise ValueError(f"composed[{k!r}] must be targets × attributes × H×W×C, got shape {np.shape(composed[k])}")
    likelihood_scores({k: np.zeros(np.shape(composed[k])[:2]) for k in PAIRS})  # the sizes agree
    kw = dict(n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap)
    bits = composed_bits(checkpoint.model, checkpoint.palette, composed, batch_size)
    base_bits = None
    if baseline:
        rand = random_model(checkpoint.config, baseline_seed).to(checkpoint.model.device)
        base_bits = composed_bits(rand, checkpoint.palette, composed, batch_size)
    return LikelihoodResult(row=_likelihood_row(bits, **kw), baseline=_likelihood_row(base_bits, **kw) if baseline
                            else None, bits=bits, baseline_bits=base_bits, n_permutations=n_permutations, seed=seed,
                            baseline_seed=baseline_seed if baseline else None, n_bootstrap=n_bootstrap)


def likelihood_null_calibration(bits: dict, *, n_trials: int = 1_000, n_permutations: int = 1_000,
                                alpha: float = 0.05, seed: int = 0) -> NullCalibration:
    """The likelihood test's null check on one bits table: pool the targets X u Y and the attributes
    A u B, split both at random into sets of the original sizes `n_trials` times and test each split
    (no association by construction); p < alpha should happen about alpha of the time."""
    full = np.block([[bits["XA"], bits["XB"]], [bits["YA"], bits["YB"]]])  # targets × attributes
    n_x, n_a = np.shape(bits["XA"])
    rng = np.random.default_rng(seed)
    p = np.empty(n_trials)
    for t in range(n_trials):
        m = full[rng.permutation(full.shape[0])][:, rng.permutation(full.shape[1])]
        split = {"XA": m[:n_x, :n_a], "XB": m[:n_x, n_a:], "YA": m[n_x:, :n_a], "YB": m[n_x:, n_a:]}
        p[t] = likelihood_association(split, n_permutations=n_permutations, seed=seed + 1 + t, n_bootstrap=0).p_value
    return NullCalibration(p_values=p, alpha=alpha, rate=float((p < alpha).mean()),
                           stderr=math.sqrt(alpha * (1 - alpha) / n_trials))


def compose_sets(sets: dict, split: str = "rows") -> dict:
    """{"XA", "XB", "YA", "YB"}: `compose_halves` of each target set of `sets` (X, Y) with each
    attribute set (A, B): the `composed` argument of `likelihood_test` for users' images."""
    return {t + a: compose_halves(sets[t], sets[a], split=split) for t in "XY" for a in "AB"}


def compose_halves(targets, attributes, split: str = "rows") -> np.ndarray:
    """Users' images composed for the likelihood test: uint8 n_t×n_a×H×W×C, entry [i, j] target i's
    top half over attribute j's bottom half (split="rows"), or target i's left half beside attribute
    j's right half (split="columns"). With rows, an ar model reads the whole target half first, so
    the score compares how likely each attribute half is after that target. It only means something
    when the targets' subject sits in their top (left) half and the attributes' in their bottom
    (right) half, as in images the model was trained on."""
    t, a = np.asarray(targets), np.asarray(attributes)
    if t.ndim != 4 or a.ndim != 4 or t.shape[1:] != a.shape[1:]:
        raise ValueError(f"targets and attributes must be image stacks of one size, got {t.shape} and {a.shape}")
    if split not in ("rows", "columns"):
        raise ValueError(f"split must be 'rows' or 'columns', got {split!r}")
    out = np.repeat(t[:, None], len(a), axis=1).copy()
    if split == "rows":
        h = t.shape[1] // 2
        out[:, :, h:] = a[None, :, h:]
    else:
        w = t.shape[2] // 2
        out[:, :, :, w:] = a[None, :, :, w:]
    return out


# ---- users' image folders ----

def load_ieat_folders(x, y, a, b, resolution: int, channels: int, crop: str = "center",
                      alpha: float = 0.05) -> dict:
    """The four folders of an iEAT run, checked: each holds at least two images, and X and Y
    together are large enough that the permutation test could ever give p < alpha (two images
    each, for instance, allow only 6 partitions: p is never below 1/6)."""
    from ..data import load_image_folder

    folders = {name: load_image_folder(p, resolution, channels, crop) for name, p in dict(x=x, y=y, a=a, b=b).items()}
    check_target_sizes(len(folders["x"].files), len(folders["y"].files), alpha,
                       f"{folders['x'].path} and {folders['y'].path}")
    return folders


def check_target_sizes(n_x: int, n_y: int, alpha: float = 0.05, what: str = "X and Y") -> None:
    """Refuse target sets too small for the permutation test ever to give p < alpha (two images
    each, for instance, allow only 6 partitions: p is never below 1/6)."""
    if smallest_p_value(n_x, n_y) >= alpha:
        raise ValueError(f"{what} hold {n_x} and {n_y} images: they split only {n_partitions(n_x, n_y)} ways, so the "
                         f"smallest possible p-value is {smallest_p_value(n_x, n_y):.3g} and no result could be "
                         f"significant at {alpha}; add target images (4 per set is the least for equal sets; 20 or "
                         "more is advisable)")
