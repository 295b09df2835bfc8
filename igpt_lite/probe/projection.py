"""2-D projections of layer features (UMAP, or PCA for speed): every layer's at once for a
layer slider, or one layer's on held-out images for a scatter coloured by class."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .. import data
from ..features import extract_features, parse_layers
from .estimators import as_checkpoint

UMAP_PRECOMPUTED_BELOW = 4096  # umap-learn's own distance path is a slow Python loop below this
UMAP_POINTS = 400  # test images in the app's UMAP of a layer


def umap_embedding(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """N×2 float32 UMAP projection (umap-learn), deterministic for a given seed.

    Below 4,096 points umap-learn computes exact distances in a slow Python loop: we pass sklearn's
    pairwise_distances as a precomputed metric instead (same neighbours, seconds instead of minutes).
    The first call in a process pays umap-learn's import and numba compile (tens of seconds)."""
    import umap
    from sklearn.metrics import pairwise_distances

    X = np.asarray(features, dtype=np.float32)
    if len(X) < 3:
        raise ValueError(f"UMAP needs at least 3 points, got {len(X)}")
    n_neighbors = min(n_neighbors, len(X) - 1)
    with warnings.catch_warnings():  # precomputed metric: "inverse_transform unavailable"; seeded: "n_jobs=1"
        warnings.simplefilter("ignore", UserWarning)
        if len(X) < UMAP_PRECOMPUTED_BELOW:
            reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="precomputed", random_state=seed)
            out = reducer.fit_transform(pairwise_distances(X))
        else:
            reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed)
            out = reducer.fit_transform(X)
    return np.asarray(out, dtype=np.float32)


def layer_projections(features: dict, seed: int = 0, method: str = "umap") -> dict:
    """{layer: N×2} projections of every layer's features (extract_features' dict), computed once
    so a layer slider only looks them up. method "umap" (`umap_embedding`) or "pca" (scikit-learn,
    deterministic and instant: the notebooks' fast mode, which skips UMAP's ~20 s numba compile)."""
    if method not in ("umap", "pca"):
        raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
    if method == "umap":
        return {layer: umap_embedding(X, seed=seed) for layer, X in features.items()}
    from sklearn.decomposition import PCA

    return {layer: PCA(2, random_state=seed).fit_transform(np.asarray(X, dtype=np.float32)).astype(np.float32)
            for layer, X in features.items()}


@dataclass
class LayerMap:
    """A 2-D UMAP of one layer's features on held-out images, for a scatter coloured by class."""
    layer: str
    dataset: str
    split: str
    embedding: np.ndarray  # N×2 float32
    labels: np.ndarray  # N
    class_names: list[str]
    seed: int

    def to_dict(self) -> dict:
        """The plain form `igpt-lite probe --umap --json` prints."""
        return {"layer": self.layer, "split": self.split, "seed": self.seed, "x": self.embedding[:, 0].tolist(),
                "y": self.embedding[:, 1].tolist(), "labels": self.labels.tolist()}


def layer_umap(checkpoint, layer: str, dataset: str | None = None, *, n: int | None = UMAP_POINTS,
               split: str = "test", norm: str = "layernorm", pool: str = "mean", seed: int = 0, cache_dir=None,
               root=None) -> LayerMap:
    """UMAP (`umap_embedding`) of one layer's features (as probes read them) on `n` images (None:
    all) of a split of the dataset (default the model's own; `root` as in `data.load_dataset`);
    features cached in `cache_dir` (None: not cached). The first call in a process pays
    umap-learn's import and compile."""
    ck = as_checkpoint(checkpoint)
    name = ck.dataset_name(dataset)
    layer = parse_layers(ck.model, [layer])[0]
    ds = data.load_dataset(name, split, resolution=ck.square_side(), limit=n, channels=ck.palette.channels, root=root)
    feats = extract_features(ck.model, ck.palette.encode(ds.images), [layer], norm=norm, pool=pool,
                             cache_dir=cache_dir)
    return LayerMap(layer=layer, dataset=name, split=split, embedding=umap_embedding(feats[layer], seed=seed),
                    labels=ds.labels, class_names=ds.class_names, seed=seed)
