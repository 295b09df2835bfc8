"""Linear probes of every layer, next to their baselines; UMAP of a layer; probes over training.

The paper's protocol (Chen et al. 2020, section 3.3): features of layer l (layer-normed, mean-pooled
over positions, see features.py), a multinomial logistic regression on them, its regularisation
chosen on a validation split, accuracy reported on a held-out test split.

A probe accuracy means little alone: `probe_model` always returns it with its baselines on the
same splits, in one plain table with a `kind` column:
  trained   every layer of the model
  random    every layer of the same architecture with random weights (torch seed `seed`, 0 by default)
  pixels    the raw pixels at the model's resolution
  palette   the pixels after palette quantisation (what the model actually reads), decoded
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .. import data, validate
from ..checkpoint import Checkpoint, load_checkpoint, step_dirs
from ..storage import cache_root
from ..features import extract_features, feature_layers, features_key, parse_layers
from ..model import GPT, GPTConfig, random_model
from ..palette import Palette

# inverse regularisation strengths, weakest last; wide on purpose: a chosen C at either end of
# the grid (flagged `C_at_edge` in the table) means the grid should be widened. On whitened
# features (below) the mnist-canvas probes chose C between 0.01 and 0.1, far inside this grid.
DEFAULT_CS = tuple(float(c) for c in np.logspace(-5, 5, 11))
# lbfgs iterations per C: whitened, every fit measured converged in < 200 (`converged` in the table)
DEFAULT_MAX_ITER = 5000
# whitening keeps the principal directions whose variance is above this share of the largest:
# below it a direction's standard deviation is < 1e-4 of the largest, float32 rounding level
# (layer-normed, mean-pooled features have one exactly null direction and many near it)
WHITEN_RCOND = 1e-8
UMAP_PRECOMPUTED_BELOW = 4096  # umap-learn's own distance path is a slow Python loop below this


def _accuracy(pred, y) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(y)))


class Whitener:
    """PCA whitening of (already standardised) features: centre, rotate onto the principal
    directions whose variance is above `rcond` times the largest, divide each by its standard
    deviation. The result has identity covariance on the training features."""

    def __init__(self, rcond: float = WHITEN_RCOND):
        self.rcond = rcond

    def fit(self, X) -> "Whitener":
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(0)
        _, sv, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        var = sv ** 2 / max(len(X) - 1, 1)
        keep = var > self.rcond * var[0] if len(var) and var[0] > 0 else np.zeros(len(var), bool)
        self.n_components_ = int(keep.sum())
        self.components_ = vt[keep]
        self.scale_ = np.sqrt(var[keep])
        return self

    def transform(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean_) @ self.components_.T / self.scale_


class LinearProbe:
    """Standardised, then whitened features -> multinomial logistic regression (scikit-learn,
    lbfgs), with C chosen on a validation split: the C whose model scores best there (ties: the
    smaller C, the simpler model). Each C is fitted from scratch, so the chosen model is exactly
    scikit-learn's LogisticRegression(C=C_) on the transformed training features.

    Why whiten (issue 16): standardised layer-normed features are nearly collinear (condition
    number ~1e14 on mnist-canvas), so lbfgs crawled: with 1000 iterations most fits at C >= 10 had
    not converged and their validation accuracy was ~9 points below the converged value, which
    took ~5000 iterations. Whitened (`Whitener`, dropping the null directions), every C converged
    in < 200 iterations, 10x faster, at the same or better validation accuracy. An unregularised
    logistic regression is unchanged by any invertible linear map of the features, so whitening
    changes only what the L2 penalty prefers. whiten=False gives the plain standardised probe;
    whiten="auto" fits both and keeps the better on validation (ties: whitened), which is what the
    pixel baselines need: on mnist-canvas raw pixels (1,024 dimensions, most pixels nearly always
    blank) the standardised probe read 27.4% and the whitened one 20.8%.

    After fit: C_, whitened_ (the chosen preprocessing), val_scores_ (one per C in Cs_, of the
    chosen preprocessing), scaler_, whitener_ (None when not whitened), classifier_, converged_, n_iter_."""

    def __init__(self, Cs=DEFAULT_CS, max_iter: int = DEFAULT_MAX_ITER, tol: float = 1e-4, whiten: bool = True,
                 rcond: float = WHITEN_RCOND):
        self.Cs = Cs
        self.max_iter = max_iter
        self.tol = tol
        self.whiten = whiten
        self.rcond = rcond

    def transform(self, X) -> np.ndarray:
        """The features the classifier reads: standardised, then whitened."""
        Xs = self.scaler_.transform(X)
        return self.whitener_.transform(Xs) if self.whitener_ is not None else Xs

    def fit(self, X, y, X_val=None, y_val=None) -> "LinearProbe":
        if self.whiten == "auto":
            if X_val is None or y_val is None:
                raise ValueError('whiten="auto" chooses on validation: pass X_val and y_val')
            kw = dict(Cs=self.Cs, max_iter=self.max_iter, tol=self.tol, rcond=self.rcond)
            fits = [LinearProbe(whiten=w, **kw).fit(X, y, X_val, y_val) for w in (True, False)]
            best = max(fits, key=lambda p: max(p.val_scores_))  # first of equals: whitened
            self.__dict__.update({k: v for k, v in best.__dict__.items() if k.endswith("_")})
            return self
        if self.whiten not in (True, False):
            raise ValueError(f'whiten must be True, False or "auto", got {self.whiten!r}')
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        Cs = sorted(float(c) for c in np.atleast_1d(self.Cs))
        if len(Cs) > 1 and (X_val is None or y_val is None):
            raise ValueError("choosing C needs a validation split: pass X_val and y_val, or a single C")
        # One BLAS thread: lbfgs here multiplies small matrices, and with torch's OpenMP pool
        # also loaded, OpenBLAS's spinning threads made every fit ~8x slower on 2 cores
        # (mnist, 8 layers: 174 s with 2 BLAS threads, 21 s with 1; benchmarks/probe.py).
        with threadpool_limits(1, user_api="blas"):
            self.scaler_ = StandardScaler().fit(X)
            self.whitener_ = Whitener(self.rcond).fit(self.scaler_.transform(X)) if self.whiten else None
            Xs = self.transform(X)
            Xv = self.transform(X_val) if X_val is not None else None
        self.Cs_, self.val_scores_, best = Cs, [], None
        for C in Cs:
            clf = LogisticRegression(C=C, max_iter=self.max_iter, tol=self.tol)
            with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
                warnings.simplefilter("ignore", ConvergenceWarning)  # recorded in converged_ instead
                clf.fit(Xs, y)
            score = _accuracy(clf.predict(Xv), y_val) if Xv is not None else np.nan
            self.val_scores_.append(score)
            if best is None or score > best[0]:  # strictly better: ties keep the smaller C
                best = (score, C, clf)
        _, self.C_, self.classifier_ = best
        self.whitened_ = bool(self.whiten)
        self.n_iter_ = int(np.max(self.classifier_.n_iter_))
        self.converged_ = bool(self.n_iter_ < self.max_iter)
        return self

    def predict(self, X) -> np.ndarray:
        return self.classifier_.predict(self.transform(X))

    def predict_proba(self, X) -> np.ndarray:
        return self.classifier_.predict_proba(self.transform(X))

    def score(self, X, y) -> float:
        return _accuracy(self.predict(X), y)


class KNNProbe:
    """The weighted k-nearest-neighbour read-out of DINO's evaluation (Caron et al. 2021,
    eval_knn.py): features L2-normalised, cosine similarity to every training feature, the k most
    similar vote for their class with weight exp(similarity / temperature), the class with the
    largest summed weight wins (ties: the smallest class label). No parameter is fitted, so nothing
    is chosen on validation: fit only stores the normalised training features.

    After fit: classes_ (sorted labels), X_ (normalised training features), y_ (their class indices)."""

    def __init__(self, k: int = 20, temperature: float = 0.07, batch_size: int = 256):
        self.k = k
        self.temperature = temperature
        self.batch_size = batch_size

    @staticmethod
    def _normalise(X) -> np.ndarray:
        # float64: in float32 the similarity sums depended on the BLAS thread count (a 1- and a
        # 2-thread run of one mnist-canvas layer differed by 3 of 500 test predictions)
        X = np.asarray(X, dtype=np.float64)
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)

    def fit(self, X, y) -> "KNNProbe":
        if self.k < 1 or self.temperature <= 0:
            raise ValueError(f"k must be >= 1 and the temperature > 0, got k={self.k}, temperature={self.temperature}")
        self.X_ = self._normalise(X)
        self.classes_, self.y_ = np.unique(np.asarray(y), return_inverse=True)
        return self

    def votes(self, X) -> np.ndarray:
        """N×classes summed vote weights (the unnormalised class scores)."""
        from threadpoolctl import threadpool_limits

        Q = self._normalise(X)
        k = min(self.k, len(self.X_))
        out = np.zeros((len(Q), len(self.classes_)))
        # One BLAS thread, as LinearProbe.fit: measured, the products are small (500 queries × 4,000
        # training features × 64: 0.05 s with one thread or two), and OpenBLAS's spinning
        # threads beside torch's pool only add contention on this machine's 2 cores.
        with threadpool_limits(1, user_api="blas"):
            for i in range(0, len(Q), self.batch_size):
                sim = Q[i:i + self.batch_size] @ self.X_.T
                top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
                weight = np.exp(np.take_along_axis(sim, top, axis=1) / self.temperature)
                block = out[i:i + self.batch_size]
                for c in range(len(self.classes_)):
                    block[:, c] = (weight * (self.y_[top] == c)).sum(1)
        return out

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.votes(X), axis=1)]

    def score(self, X, y) -> float:
        return _accuracy(self.predict(X), y)


def _stderr(acc: float, n: int) -> float:
    """Binomial standard error of an accuracy on n images: differences below ~2 of these are noise."""
    return float(np.sqrt(acc * (1 - acc) / n))


def probe_layers(features_by_split: dict, labels_by_split: dict, layers=None, *, Cs=DEFAULT_CS,
                 max_iter: int = DEFAULT_MAX_ITER, knn_k: int | None = 20, knn_temperature: float = 0.07,
                 whiten=True) -> list[dict]:
    """One row per layer: {layer, depth, dim, train_acc, val_acc, test_acc, test_stderr, C,
    C_at_edge, val_acc_by_C, converged, n_iter (the chosen C's lbfgs iterations), whitened and
    whitened_dim (whether `LinearProbe` whitened, and the directions it kept; `whiten` is passed to
    it: True, False or "auto"), seconds (fit, search included), n_train, n_val, n_test}
    for the logistic-regression probe (`LinearProbe`), and beside it the kNN read-out (`KNNProbe`, fitted on
    train): {knn_val_acc, knn_test_acc, knn_test_stderr, knn_k, knn_temperature, knn_seconds}.
    knn_k=None leaves the kNN columns out.

    features_by_split: {"train"|"val"|"test": {layer: N×d array}}; labels_by_split: {split: N labels}.
    depth is the layer's position in the features' order (embed 0, blocks.i i+1, ln_f last)."""
    names = list(features_by_split["train"])
    layers = names if layers is None else list(layers)
    y = {s: np.asarray(labels_by_split[s]) for s in ("train", "val", "test")}
    rows = []
    for layer in layers:
        X = {s: features_by_split[s][layer] for s in ("train", "val", "test")}
        t0 = time.perf_counter()
        probe = LinearProbe(Cs=Cs, max_iter=max_iter, whiten=whiten).fit(X["train"], y["train"], X["val"], y["val"])
        seconds = time.perf_counter() - t0
        test_acc = probe.score(X["test"], y["test"])
        row = {
            "layer": layer, "depth": names.index(layer) if layer in names else None, "dim": int(X["train"].shape[1]),
            "train_acc": probe.score(X["train"], y["train"]), "val_acc": max(probe.val_scores_),
            "test_acc": test_acc, "test_stderr": _stderr(test_acc, len(y["test"])),
            "C": probe.C_, "C_at_edge": len(probe.Cs_) > 1 and probe.C_ in (probe.Cs_[0], probe.Cs_[-1]),
            "val_acc_by_C": [float(v) for v in probe.val_scores_], "converged": probe.converged_,
            "n_iter": probe.n_iter_, "whitened": probe.whitened_,
            "whitened_dim": probe.whitener_.n_components_ if probe.whitener_ is not None else None,
            "seconds": seconds, "n_train": len(y["train"]), "n_val": len(y["val"]), "n_test": len(y["test"]),
        }
        if knn_k is not None:
            t0 = time.perf_counter()
            knn = KNNProbe(k=knn_k, temperature=knn_temperature).fit(X["train"], y["train"])
            knn_test = knn.score(X["test"], y["test"])
            row.update(knn_val_acc=knn.score(X["val"], y["val"]), knn_test_acc=knn_test,
                       knn_test_stderr=_stderr(knn_test, len(y["test"])), knn_k=knn_k,
                       knn_temperature=knn_temperature, knn_seconds=time.perf_counter() - t0)
        rows.append(row)
    return rows


# ---- data for a model ----

def load_split(dataset: str, split: str, palette: Palette, resolution: int, limit: int | None = None, root=None):
    """(images uint8 N×H×W×C at the model's resolution, tokens N×T, labels N) of one split."""
    ds = data.load_dataset(dataset, split, resolution=resolution, limit=limit, channels=palette.channels, root=root)
    return ds.images, palette.encode(ds.images), ds.labels


def _model_resolution(config: GPTConfig) -> int:
    validate.square_side(config.height, config.width)
    return config.height


def _load_splits(dataset: str, palette: Palette, config: GPTConfig, limit: int | None, root=None):
    res = _model_resolution(config)
    out = {s: load_split(dataset, s, palette, res, limit, root) for s in ("train", "val", "test")}
    images, tokens, labels = ({s: v[i] for s, v in out.items()} for i in range(3))
    return images, tokens, labels


def _check_layers(model: GPT, layers) -> list[str]:
    """The layers to probe (default: all, embed to ln_f), checked before any data is loaded."""
    return parse_layers(model, layers)


def _depth(model: GPT, layer: str) -> int:
    """A layer's place in the network (embed 0, blocks.i i+1, ln_f L+1), whatever subset is probed."""
    return feature_layers(model, final_norm=True).index(layer)


def _features_by_split(model: GPT, tokens: dict, layers, tick=None, **kw) -> dict:
    out = {}
    for s, t in tokens.items():
        out[s] = extract_features(model, t, layers, **kw)
        if tick is not None:
            tick()
    return out


def _counter(on_step, total: int):
    """tick(): one more of `total` steps done, reported as on_step(done, total) (nothing without on_step)."""
    done = 0

    def tick():
        nonlocal done
        done += 1
        if on_step is not None:
            on_step(done, total)
    return tick


def _pixels(images: np.ndarray) -> np.ndarray:
    return (np.asarray(images, dtype=np.float32) / 127.5 - 1).reshape(len(images), -1)


def baselines(images_by_split: dict, labels_by_split: dict, palette: Palette, config: GPTConfig, *,
              tokens_by_split: dict | None = None, layers=None, seed: int = 0, norm: str = "layernorm",
              pool: str = "mean", Cs=DEFAULT_CS, max_iter: int = DEFAULT_MAX_ITER, batch_size: int = 64, device="cpu",
              cache_dir=None, progress: bool = False, on_step=None) -> list[dict]:
    """Rows (probe_layers' columns plus `kind`) for the three baselines on the same splits: every
    layer of a random-weight model (torch seed `seed`), raw pixels, palette-decoded pixels. The
    pixel probes choose on validation whether to whiten (`LinearProbe(whiten="auto")`); the random
    model's layers are probed as the trained model's are.
    on_step(done, total): called after each split's features, the random model's probes, the pixels'."""
    tick = _counter(on_step, len(images_by_split) + 2)
    if tokens_by_split is None:
        tokens_by_split = {s: palette.encode(im) for s, im in images_by_split.items()}
    model = random_model(config, seed).to(device)
    layers = feature_layers(model, final_norm=True) if layers is None else list(layers)
    feats = _features_by_split(model, tokens_by_split, layers, tick, norm=norm, pool=pool, batch_size=batch_size,
                               cache_dir=cache_dir, progress=progress)
    rows = [{"kind": "random", **r, "depth": _depth(model, r["layer"]), "seed": seed}
            for r in probe_layers(feats, labels_by_split, Cs=Cs, max_iter=max_iter)]
    tick()
    h, w = config.height, config.width
    pixel_sets = {
        "pixels": {s: {"pixels": _pixels(im)} for s, im in images_by_split.items()},
        "palette": {s: {"palette": _pixels(palette.decode(tokens_by_split[s], h, w))} for s in images_by_split},
    }
    for kind, feats in pixel_sets.items():  # pixels: whitened or not, chosen on validation (see LinearProbe)
        rows += [{"kind": kind, **r, "depth": None}
                 for r in probe_layers(feats, labels_by_split, Cs=Cs, max_iter=max_iter, whiten="auto")]
    tick()
    return rows


def _as_checkpoint(checkpoint) -> Checkpoint:
    return checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)


_TRAINED_STEPS = 4  # progress steps of _trained_rows: three splits' features, then the probes


def _trained_rows(ck: Checkpoint, tokens: dict, labels: dict, layers, *, norm, pool, Cs, max_iter, batch_size,
                  cache_dir, progress, tick) -> list[dict]:
    feats = _features_by_split(ck.model, tokens, layers, tick, norm=norm, pool=pool, batch_size=batch_size,
                               cache_dir=cache_dir, progress=progress)
    rows = [{"kind": "trained", **r, "depth": _depth(ck.model, r["layer"])}
            for r in probe_layers(feats, labels, Cs=Cs, max_iter=max_iter)]
    tick()
    return rows


def probe_model(checkpoint, dataset: str | None = None, *, layers=None, limit: int | None = None,
                norm: str = "layernorm", pool: str = "mean", Cs=DEFAULT_CS, max_iter: int = DEFAULT_MAX_ITER,
                seed: int = 0, batch_size: int = 64, cache_dir=None, progress: bool = False,
                on_step=None, root=None) -> list[dict]:
    """Probe every layer of a checkpoint (path, name or Checkpoint) on a dataset's train/val/test
    splits (default: the dataset it was trained on; `limit` images per split; `root`: where real
    datasets live, as in `data.load_dataset`), with the baselines.

    One table: the trained model's rows, then the random-weight model's, then pixels and palette;
    the columns of `probe_layers` plus `kind` (and `seed` for the random rows).
    layers: default every layer, embed to ln_f. Features: one pass per split for all layers.
    on_step(done, total): progress, called after each split's features and each set of probes."""
    ck = _as_checkpoint(checkpoint)
    name = ck.dataset_name(dataset)
    layers = _check_layers(ck.model, layers)
    images, tokens, labels = _load_splits(name, ck.palette, ck.config, limit, root)
    tick = _counter(on_step, _TRAINED_STEPS + len(images) + 2)
    opts = dict(norm=norm, pool=pool, Cs=Cs, max_iter=max_iter, batch_size=batch_size, cache_dir=cache_dir,
                progress=progress)
    rows = _trained_rows(ck, tokens, labels, layers, tick=tick, **opts)
    return rows + baselines(images, labels, ck.palette, ck.config, tokens_by_split=tokens, layers=layers, seed=seed,
                            device=ck.model.device, on_step=lambda done, total: tick(), **opts)


def step_of(path: Path) -> int:
    """The training step of a run's checkpoint folder: step-000500 -> 500."""
    return int(path.name.split("-", 1)[1])


def checkpoint_val_bpd(ck: Checkpoint, step: int) -> float | None:
    """The validation bits/dim that training recorded at this step (the run's evaluation on its
    first `eval_images` validation images), from the checkpoint's own history; None if that step
    was not evaluated."""
    history = (ck.meta.get("training") or {}).get("history") or []
    return next((float(h["val_bpd"]) for h in history if h.get("step") == step and h.get("val_bpd") is not None),
                None)


def probe_checkpoints(run_dir, dataset: str | None = None, *, layers=None, steps=None, limit: int | None = None,
                      norm: str = "layernorm", pool: str = "mean", Cs=DEFAULT_CS, max_iter: int = DEFAULT_MAX_ITER,
                      seed: int = 0, batch_size: int = 64, cache_dir=None, progress: bool = False,
                      on_step=None) -> list[dict]:
    """Probe curves over training: the trained rows of every saved step-* checkpoint of a run
    (or those whose step is in `steps`), each with `step`, `checkpoint` and `val_bpd` (the
    validation bits/dim training recorded at that step: `checkpoint_val_bpd`) columns, then the
    baselines once (a run's checkpoints share architecture and palette, so they share baselines).
    on_step(done, total): progress, as in probe_model."""
    dirs = [d for d in step_dirs(run_dir) if steps is None or step_of(d) in set(steps)]
    if not dirs:
        raise FileNotFoundError(f"{run_dir}: no step-* checkpoints{' for steps ' + str(list(steps)) if steps else ''}"
                                " (train with --keep 0 to keep every saved step)")
    last = load_checkpoint(dirs[-1])
    name = last.dataset_name(dataset)
    layers = _check_layers(last.model, layers)
    images, tokens, labels = _load_splits(name, last.palette, last.config, limit)
    opts = dict(norm=norm, pool=pool, Cs=Cs, max_iter=max_iter, batch_size=batch_size, cache_dir=cache_dir,
                progress=progress)
    tick = _counter(on_step, _TRAINED_STEPS * len(dirs) + len(images) + 2)
    rows = []
    for d in dirs:
        ck = last if d == dirs[-1] else load_checkpoint(d)
        ck.check_palette(last.palette)  # same tokens for every step
        extra = {"step": step_of(d), "checkpoint": str(d), "val_bpd": checkpoint_val_bpd(ck, step_of(d))}
        rows += [{**r, **extra} for r in _trained_rows(ck, tokens, labels, layers, tick=tick, **opts)]
    return rows + baselines(images, labels, last.palette, last.config, tokens_by_split=tokens, layers=layers,
                            seed=seed, device=last.model.device, on_step=lambda done, total: tick(), **opts)


def best_row(table: list[dict], kind: str = "trained", by: str = "val_acc") -> dict:
    """The row of `kind` with the best validation accuracy (choose layers on val, report test)."""
    rows = [r for r in table if r["kind"] == kind]
    if not rows:
        raise ValueError(f"no {kind!r} rows in the table")
    return max(rows, key=lambda r: r[by])


def probe_summary(table: list[dict]) -> dict:
    """The headline of a probe table, chosen the honest way (each layer on validation, reported on
    test): the best trained layer, the best random-weight layer, the pixel baselines, and how far
    the trained layer is above each, in points and in units of the difference's standard error
    sqrt(se_a² + se_b²). `beats_all` is True when it is above every baseline by more than that.
    Tables over several checkpoints use the latest step."""
    steps = [r["step"] for r in table if r["kind"] == "trained" and r.get("step") is not None]
    if steps:
        table = [r for r in table if r["kind"] != "trained" or r.get("step") == max(steps)]
    best = best_row(table, "trained")
    out = {"trained": {k: best[k] for k in ("layer", "val_acc", "test_acc", "test_stderr")}, "margins": {}}
    for kind in ("random", "pixels", "palette"):
        if not any(r["kind"] == kind for r in table):
            continue
        base = best_row(table, kind)
        out[kind] = {k: base[k] for k in ("layer", "val_acc", "test_acc", "test_stderr")}
        diff = best["test_acc"] - base["test_acc"]
        se = float(np.hypot(best["test_stderr"], base["test_stderr"]))
        out["margins"][kind] = {"points": 100 * diff, "stderr": 100 * se, "z": diff / se if se else float("inf")}
    out["beats_all"] = bool(out["margins"]) and all(m["z"] > 1 for m in out["margins"].values())
    return out


def depth_shape(table: list[dict], read_out: str = "linear", step: int | None = None) -> dict:
    """Does the trained model's curve rise to a peak inside the network and fall at the end, as the
    paper's does? The peak is the layer best on validation (first of equals); every number
    compared is a test accuracy, and each difference is measured in standard errors of the
    difference sqrt(se_a² + se_b²) (the test split is the same for both, so this is conservative).

    read_out "linear" (test_acc, val_acc) or "knn" (knn_test_acc, knn_val_acc). Tables over several
    checkpoints use `step` (default: the latest). Returns {peak, peak_depth, last, first, peak_test,
    first_test, last_test, rise_points, rise_z, fall_points, fall_z, inside, shape}: `inside` is True
    when the peak is neither the first nor the last layer, `shape` when it is inside, above the first
    layer by more than 2 s.e. and above the last by more than 2 s.e."""
    acc, val = {"linear": ("test_acc", "val_acc"), "knn": ("knn_test_acc", "knn_val_acc")}[read_out]
    se = acc.replace("_acc", "_stderr")
    rows = [r for r in table if r["kind"] == "trained"]
    steps = [r["step"] for r in rows if r.get("step") is not None]
    if steps:
        rows = [r for r in rows if r.get("step") == (max(steps) if step is None else step)]
    if not rows:
        raise ValueError("no trained rows" + (f" at step {step}" if step is not None else ""))
    rows = sorted(rows, key=lambda r: r["depth"])
    peak = max(rows, key=lambda r: r[val])
    first, last = rows[0], rows[-1]

    def diff(a, b):
        d, e = a[acc] - b[acc], float(np.hypot(a[se], b[se]))
        return 100 * d, (d / e if e else float("inf"))

    rise, rise_z = diff(peak, first)
    fall, fall_z = diff(peak, last)
    inside = peak is not first and peak is not last
    return {"read_out": read_out, "peak": peak["layer"], "peak_depth": peak["depth"], "first": first["layer"],
            "last": last["layer"], "peak_test": peak[acc], "first_test": first[acc], "last_test": last[acc],
            "rise_points": rise, "rise_z": rise_z, "fall_points": fall, "fall_z": fall_z, "inside": inside,
            "shape": bool(inside and rise_z > 2 and fall_z > 2)}


# ---- UMAP ----

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


# ---- a published curve to draw beside ours ----

IGPT_S_CIFAR10 = {
    "name": "iGPT-S on CIFAR-10 (validation accuracy)",
    "source": "NielsRogge/Transformers-Tutorials, ImageGPT/Linear_probing_with_ImageGPT.ipynb",
    "protocol": "openai/imagegpt-small, mean-pooled hidden states, logistic regression",
    "n_layers": 24,  # hidden-state index 0 = embeddings, 1..23 = blocks 0..22, 24 = ln_f(block 23)
    "accuracy": {0: 0.333, 4: 0.495, 8: 0.653, 12: 0.778, 16: 0.786, 20: 0.758, 23: 0.724, 24: 0.678},
}


# ---- the probe report of a checkpoint: shipped beside it, cached on disk, or computed ----

REPORT_FORMAT = "igpt-lite-probe-report/1"
# bump when the probes compute something else for the same settings (2: pixel baselines choose on
# validation whether to whiten), so stored reports of the old computation read as stale
PROBE_VERSION = 2
REPORT_FILE = "probe.json"  # a report shipped inside a checkpoint folder: data/models/<name>/probe.json
# images per split (train, val, test) of the shipped reports and of those the app computes: all the
# bundled models' tables are made in ~15 min on one thread (scripts/probe_tables.py)
REPORT_LIMIT = 500
UMAP_POINTS = 400  # test images in the app's UMAP of a layer


def model_hash(ck: Checkpoint) -> str:
    """What a probe table depends on in a checkpoint: its config and every weight (`features_key`
    with no tokens, which also changes with the feature code's version), and its palette."""
    return f"{features_key(ck.model, torch.zeros(0, dtype=torch.long), [], 'none', 'mean')}-{ck.palette.fingerprint}"


def run_steps(checkpoint) -> list[Path]:
    """The saved step-* checkpoints of the training run a checkpoint belongs to (oldest first),
    or [] for one outside a run (bundled, imported, exported models)."""
    path = _as_checkpoint(checkpoint).path
    if path is None or not path.name.startswith("step-"):
        return []
    return step_dirs(path.parent)


@dataclass
class ProbeReport:
    """A probe table, its headline, and what it belongs to.

    table: `probe_model`'s rows (`probe_checkpoints`' for a report over training); summary:
    `probe_summary(table)`; dataset and settings (limit, norm, pool, Cs, max_iter, seed): how it was
    made; models: `model_hash` of the checkpoint (of every step, over training); steps: the run's
    steps or None. A stored report is used only when all of these match: a retrained model, another
    palette, dataset or setting never shows a stale table. source: "shipped" (beside the checkpoint),
    "cached" or "computed"; path: the file it was read from or written to."""
    table: list[dict]
    summary: dict
    dataset: str
    settings: dict
    models: list[str]
    steps: list[int] | None = None
    model: str | None = None  # the checkpoint folder it was computed from (for people; not checked)
    seconds: float | None = None  # time to compute it
    created: str | None = None  # UTC, ISO 8601
    source: str = "computed"
    path: str | None = None

    @property
    def over_training(self) -> bool:
        return self.steps is not None

    @property
    def key(self) -> str:
        """A hash of what the report belongs to (its cache file name)."""
        return _report_key(self.identity())

    def identity(self) -> dict:
        return {"format": REPORT_FORMAT, "models": self.models, "dataset": self.dataset, "settings": self.settings,
                "steps": self.steps}

    def to_dict(self) -> dict:
        return {**self.identity(), "model": self.model, "seconds": self.seconds, "created": self.created,
                "summary": self.summary, "table": self.table}

    def save(self, path) -> Path:
        """Write the report as JSON (written aside, then renamed into place: never half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, default=_json_scalar))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path


def _json_scalar(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _report_key(identity: dict) -> str:
    return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=16).hexdigest()


def _settings(limit, norm, pool, Cs, max_iter, seed) -> dict:
    """probe_model's arguments, and the probes' own defaults that the table depends on too."""
    knn = inspect.signature(probe_layers).parameters
    linear = {k: v for k, v in vars(LinearProbe()).items() if k not in ("Cs", "max_iter")}
    return {"version": PROBE_VERSION, "limit": limit, "norm": norm, "pool": pool, "Cs": sorted(float(c) for c in np.atleast_1d(Cs)),
            "max_iter": int(max_iter), "seed": int(seed), "linear_probe": linear,
            "knn": {k: knn[k].default for k in ("knn_k", "knn_temperature") if k in knn}}


_MISMATCH = {"format": "was written in another format", "models": "was made from other weights or another palette "
             "(the model changed since)", "dataset": "was made on another dataset", "settings": "was made with "
             "other settings", "steps": "covers other training steps"}


def load_probe_report(path, wanted: dict, source: str = "cached") -> ProbeReport:
    """A stored report, if it belongs to `wanted` (a `ProbeReport.identity()`); ValueError naming
    what differs otherwise, or when the file cannot be read."""
    path = Path(path)
    try:
        stored = json.loads(path.read_text())
        report = ProbeReport(**{k: stored[k] for k in ("table", "summary", "dataset", "settings", "models", "steps",
                                                       "model", "seconds", "created")}, source=source, path=str(path))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable probe report ({e}); delete it or remake it") from e
    for field_, what in _MISMATCH.items():
        if stored.get(field_) != wanted[field_]:
            detail = "" if field_ in ("models", "format") else f": {stored.get(field_)} instead of {wanted[field_]}"
            raise ValueError(f"{path}: this probe table {what}{detail}; it is not used")
    return report


def probe_report(checkpoint, dataset: str | None = None, *, limit: int | None = REPORT_LIMIT,
                 over_training: bool = False, norm: str = "layernorm", pool: str = "mean", Cs=DEFAULT_CS,
                 max_iter: int = DEFAULT_MAX_ITER, seed: int = 0, reuse: bool = True, compute: bool = True,
                 cache_dir=None, on_step=None) -> ProbeReport:
    """The probe report of a checkpoint (path, name or Checkpoint) on a dataset (default: its own):
    the table shipped beside it (`REPORT_FILE` in its folder) if it belongs to this model and these
    settings, else the one cached under `cache_dir`/probes (default `cache_root()`), else, with
    `compute`, a new one from `probe_model` (over_training: `probe_checkpoints` over the run the
    checkpoint belongs to), cached there, with the features cached under `cache_dir`/features.

    reuse=False skips stored reports (to remake one). Without `compute` and with nothing stored,
    LookupError says why (none stored, or the stored one is stale and how). on_step(done, total):
    progress while computing."""
    ck = _as_checkpoint(checkpoint)
    name = ck.dataset_name(dataset)
    settings = _settings(limit, norm, pool, Cs, max_iter, seed)
    steps = run_steps(ck) if over_training else None
    if over_training and not steps:
        raise ValueError(f"{ck.path}: not a checkpoint of a training run (a run folder's step-* checkpoints, kept "
                         "with `igpt-lite train --keep 0`): there is nothing to probe over training")
    models = [model_hash(ck if d == ck.path else load_checkpoint(d)) for d in steps] if steps else [model_hash(ck)]
    wanted = {"format": REPORT_FORMAT, "models": models, "dataset": name, "settings": settings,
              "steps": [step_of(d) for d in steps] if steps else None}
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    cached = root / "probes" / f"{_report_key(wanted)}.json"
    stored = [] if over_training or ck.path is None else [("shipped", ck.path / REPORT_FILE)]
    stored.append(("cached", cached))
    problems = []
    for source, path in stored if reuse else []:
        if path.exists():
            try:
                return load_probe_report(path, wanted, source)
            except ValueError as e:
                problems.append(str(e))
    if not compute:
        raise LookupError(" ".join(problems) or f"no probe table is stored for {ck.path or 'this model'} on {name} "
                          f"with these settings: compute it")
    t0 = time.perf_counter()
    opts = dict(limit=limit, norm=norm, pool=pool, Cs=settings["Cs"], max_iter=max_iter, seed=seed,
                cache_dir=root / "features", on_step=on_step)
    table = (probe_checkpoints(steps[0].parent, name, steps=wanted["steps"], **opts) if over_training
             else probe_model(ck, name, **opts))
    report = ProbeReport(table=table, summary=probe_summary(table), dataset=name, settings=settings, models=models,
                         steps=wanted["steps"], model=str(ck.path) if ck.path else None,
                         seconds=time.perf_counter() - t0,
                         created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    report.save(cached)
    report.path = str(cached)
    return report


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


def layer_umap(checkpoint, layer: str, dataset: str | None = None, *, n: int = UMAP_POINTS, split: str = "test",
               norm: str = "layernorm", pool: str = "mean", seed: int = 0, cache_dir=None) -> LayerMap:
    """UMAP (`umap_embedding`) of one layer's features (as probes read them) on `n` images of a split
    of the dataset (default the model's own); features cached under `cache_dir`/features
    (default `cache_root()`). The first call in a process pays umap-learn's import and compile."""
    ck = _as_checkpoint(checkpoint)
    name = ck.dataset_name(dataset)
    layer = parse_layers(ck.model, [layer])[0]
    ds = data.load_dataset(name, split, resolution=_model_resolution(ck.config), limit=n, channels=ck.palette.channels)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    feats = extract_features(ck.model, ck.palette.encode(ds.images), [layer], norm=norm, pool=pool,
                             cache_dir=root / "features")
    return LayerMap(layer=layer, dataset=name, split=split, embedding=umap_embedding(feats[layer], seed=seed),
                    labels=ds.labels, class_names=ds.class_names, seed=seed)
