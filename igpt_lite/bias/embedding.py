"""iEAT on every layer of a model: each image embedded by each layer (normalised, mean-pooled), the
test on every layer with Holm's adjustment across them, and the same on a random-weight copy of the
model (same architecture and palette, GPT's own init, seeded by `baseline_seed`), because pixel
statistics alone can look like an association."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..model import random_model
from .sets import SET_NAMES, check_sets
from .stats import BOOTSTRAP, BiasRow, _check_test_options, holm, ieat, rows_html, rows_text

# how images become embeddings: ours (the paper's probe features) or iEAT's own extraction (its
# crop is applied where the images are loaded: `load_ieat_folders(crop=...)`)
EXTRACTIONS = {"ours": dict(crop="center", norm="layernorm"), "ieat": dict(crop="top-left", norm="next")}


def ieat_per_layer(features_X: dict, features_Y: dict, features_A: dict, features_B: dict, *,
                   n_permutations: int = 100_000, seed: int = 0, n_bootstrap: int = 2_000) -> list[BiasRow]:
    """iEAT on every layer's features ({layer: N×d}), with Holm-adjusted p-values across layers: one
    `BiasRow` per layer in the input order. Every layer uses the same seed (Holm holds under any
    dependence between the layers' tests)."""
    layers = list(features_X)
    for name, feats in dict(Y=features_Y, A=features_A, B=features_B).items():
        if list(feats) != layers:
            raise ValueError(f"features_{name} has layers {list(feats)}, features_X has {layers}")
    results = [ieat(features_X[layer], features_Y[layer], features_A[layer], features_B[layer],
                    n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap) for layer in layers]
    adjusted = holm([r.p_value for r in results])
    return [BiasRow.of(layer, r, p) for layer, r, p in zip(layers, results, adjusted)]


@dataclass
class BiasResult:
    """iEAT on every layer of one model: `table` one row per layer, and `baseline_table` the same
    test on a random-weight copy of the model (empty when not run)."""
    table: list[BiasRow]
    norm: str  # how each layer's output was normalised before mean pooling
    n_per_set: dict[str, int]
    n_permutations: int
    seed: int
    features: dict = field(default_factory=dict, repr=False)  # {"X": {layer: N×d}, ...}: what was compared
    baseline_table: list[BiasRow] = field(default_factory=list)
    baseline_seed: int | None = None
    pool: str = "mean"  # "mean" over every position, or "mean over masks" (the positions `masks` chose)
    n_bootstrap: int = 2_000

    def smallest_holm(self) -> BiasRow:
        """The row with the smallest Holm-adjusted p-value."""
        return min(self.table, key=lambda r: r.p_holm)

    def to_records(self, baseline: bool = False) -> list[dict]:
        """The table's rows (or the baseline's) as plain dicts, e.g. for a data frame."""
        return [r.to_dict() for r in (self.baseline_table if baseline else self.table)]

    def to_dict(self) -> dict:
        return {"test": "ieat", "norm": self.norm, "pool": self.pool, "n_per_set": self.n_per_set,
                "n_permutations": self.n_permutations, "seed": self.seed, "n_bootstrap": self.n_bootstrap,
                "bootstrap": BOOTSTRAP, "table": self.to_records(),
                "baseline": {"model": f"random weights, seed {self.baseline_seed}",
                             "table": self.to_records(baseline=True)} if self.baseline_table else None}

    def text(self) -> str:
        """The per-layer table, then the random-weight copy's."""
        parts = [rows_text(self.table)]
        if self.baseline_table:
            parts.append("random-weight copy:\n" + rows_text(self.baseline_table))
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        html = f"<p>iEAT per layer ({self.norm}, pooled: {self.pool})</p>" + rows_html(self.table)
        if self.baseline_table:
            html += "<p>random-weight copy</p>" + rows_html(self.baseline_table)
        return html

    def __repr__(self) -> str:
        low = min(self.table, key=lambda r: r.p_holm) if self.table else None
        most = f"; smallest Holm p {low.p_holm:.3g} at {low.layer} (d {low.effect_size:.2f})" if low else ""
        return f"BiasResult(iEAT on {len(self.table)} layers, n per set {self.n_per_set}{most})"



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
        _, cache = model.run_with_cache(model.image_inputs(batch), names={cache_name(l) for l in layers},
                                        logits=False)
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
    Each row carries a bootstrap interval for d (see `stats.bootstrap_ci`).

    Example::

        sets = scenes.make_test_sets(50, seed=1)        # {"X": men, "Y": women, "A": career, "B": domestic}
        result = bias_test(load_checkpoint("figures-p90"), sets)
        print(result.text())
    """
    from ..features import extract_features, parse_layers
    _check_test_options(n_permutations, seed, n_bootstrap)
    check_sets(checkpoint, sets, SET_NAMES)
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

    def run(model) -> tuple[list[BiasRow], list[dict]]:
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
