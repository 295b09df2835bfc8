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
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

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


def ieat(X, Y, A, B, *, n_permutations: int = 100_000, seed: int = 0) -> IEATResult:
    """The iEAT/WEAT test on four sets of embeddings (rows): targets X, Y; attributes A, B."""
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    X, Y, A, B = (_unit_rows(name, m) for name, m in dict(X=X, Y=Y, A=A, B=B).items())
    widths = {name: m.shape[1] for name, m in dict(X=X, Y=Y, A=A, B=B).items()}
    if len(set(widths.values())) > 1:
        raise ValueError(f"the four sets must have the same embedding width, got {widths}")
    s_x, s_y = ((W @ A.T).mean(1) - (W @ B.T).mean(1) for W in (X, Y))  # unit rows: cosines are dot products
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
    return IEATResult(statistic=statistic, effect_size=effect_size, p_value=float(p_value), n_permutations=used,
                      exact=exact, n_x=n_x, n_y=n_y, n_a=len(A), n_b=len(B))


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
                   n_permutations: int = 100_000, seed: int = 0) -> list[dict]:
    """iEAT on every layer's features ({layer: N×d}), with Holm-adjusted p-values across layers.

    Returns a plain table, one dict per layer in the input order: layer, effect_size, p_value,
    p_holm, statistic, n_permutations, exact, n_x, n_y, n_a, n_b. Every layer uses the same seed
    (Holm holds under any dependence between the layers' tests)."""
    layers = list(features_X)
    for name, feats in dict(Y=features_Y, A=features_A, B=features_B).items():
        if list(feats) != layers:
            raise ValueError(f"features_{name} has layers {list(feats)}, features_X has {layers}")
    rows = []
    for layer in layers:
        r = ieat(features_X[layer], features_Y[layer], features_A[layer], features_B[layer],
                 n_permutations=n_permutations, seed=seed)
        rows.append({"layer": layer, **vars(r)})
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = float(adjusted)
    keys = ["layer", "effect_size", "p_value", "p_holm", "statistic", "n_permutations", "exact",
            "n_x", "n_y", "n_a", "n_b"]
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
        p[t] = ieat(x, y, a, b, n_permutations=n_permutations, seed=seed + 1 + t).p_value
    return NullCalibration(p_values=p, alpha=alpha, rate=float((p < alpha).mean()),
                           stderr=math.sqrt(alpha * (1 - alpha) / n_trials))


# ---- one call: a checkpoint and four sets of images ----

SET_NAMES = ("X", "Y", "A", "B")
# how images become embeddings: ours (the paper's probe features) or iEAT's own extraction
EXTRACTIONS = {"ours": dict(crop="center", norm="layernorm"), "ieat": dict(crop="top-left", norm="next")}


@dataclass
class BiasResult:
    """iEAT on every layer of one model: `table` rows as `ieat_per_layer` gives them."""
    table: list[dict]
    norm: str  # how each layer's output was normalised before mean pooling
    n_per_set: dict[str, int]
    n_permutations: int
    seed: int
    features: dict = field(default_factory=dict, repr=False)  # {"X": {layer: N×d}, ...}: what was compared

    def smallest_holm(self) -> dict:
        """The row with the smallest Holm-adjusted p-value."""
        return min(self.table, key=lambda r: r["p_holm"])

    def to_dict(self) -> dict:
        return {"norm": self.norm, "pool": "mean", "n_per_set": self.n_per_set,
                "n_permutations": self.n_permutations, "seed": self.seed, "table": self.table}


def bias_test(checkpoint, sets: dict, *, layers=None, norm: str = "layernorm", n_permutations: int = 100_000,
              seed: int = 0, batch_size: int = 64) -> BiasResult:
    """iEAT on every layer of `checkpoint` (a Checkpoint) for four sets of images, `sets` = {"X":
    targets, "Y": targets, "A": attributes, "B": attributes}, each uint8 N×H×W×C at the model's
    size (data.load_image_folder or scenes.make_test_sets make them). Features: each layer's output,
    normalised (`norm`, see features.py) and mean-pooled, from one forward pass over all images."""
    from .features import extract_features, parse_layers

    missing = [k for k in SET_NAMES if k not in sets]
    if missing:
        raise ValueError(f"sets must hold X, Y, A and B; missing {', '.join(missing)}")
    cfg, palette = checkpoint.config, checkpoint.palette
    want = (cfg.height, cfg.width, palette.channels)
    for k in SET_NAMES:
        shape = np.shape(sets[k])
        if len(shape) != 4 or tuple(shape[1:]) != want:
            raise ValueError(f"set {k}: expected images shaped N×{want[0]}×{want[1]}×{want[2]} (this model's size "
                             f"and colour channels), got {shape}; load them with data.load_image_folder")
    images = np.concatenate([sets[k] for k in SET_NAMES])
    feats = extract_features(checkpoint.model, palette.encode(images), parse_layers(checkpoint.model, layers, False),
                             norm=norm, batch_size=batch_size)
    ends = np.cumsum([len(sets[k]) for k in SET_NAMES])[:-1]
    parts = [{layer: part for layer, part in zip(feats, split)}
             for split in zip(*(np.split(v, ends) for v in feats.values()))]
    table = ieat_per_layer(*parts, n_permutations=n_permutations, seed=seed)
    return BiasResult(table=table, norm=norm, n_per_set={k: len(sets[k]) for k in SET_NAMES},
                      n_permutations=n_permutations, seed=seed, features=dict(zip(SET_NAMES, parts)))


# ---- users' image folders ----

def load_ieat_folders(x, y, a, b, resolution: int, channels: int, crop: str = "center",
                      alpha: float = 0.05) -> dict:
    """The four folders of an iEAT run, checked: each holds at least two images, and X and Y
    together are large enough that the permutation test could ever give p < alpha (two images
    each, for instance, allow only 6 partitions: p is never below 1/6)."""
    from .data import load_image_folder

    folders = {name: load_image_folder(p, resolution, channels, crop) for name, p in dict(x=x, y=y, a=a, b=b).items()}
    n_x, n_y = len(folders["x"].files), len(folders["y"].files)
    if smallest_p_value(n_x, n_y) >= alpha:
        raise ValueError(f"{folders['x'].path} and {folders['y'].path} hold {n_x} and {n_y} images: they split "
                         f"only {n_partitions(n_x, n_y)} ways, so the smallest possible p-value is "
                         f"{smallest_p_value(n_x, n_y):.3g} and no result could be significant at {alpha}; "
                         "add target images (4 per set is the least for equal sets; 20 or more is advisable)")
    return folders
