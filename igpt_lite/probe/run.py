"""Probing a model: every layer's probes on a dataset's splits, with their baselines, for one
checkpoint or over a run's checkpoints.

The paper's protocol (Chen et al. 2020, section 3.3): features of layer l (layer-normed, mean-pooled
over positions, see features.py), a multinomial logistic regression on them, its regularisation
chosen on a validation split, accuracy reported on a held-out test split.

A probe accuracy means little alone: `probe_model` always returns it with its baselines on the
same splits, in one `ProbeTable` whose rows have a `kind`:
  trained   every layer of the model
  random    every layer of the same architecture with random weights (torch seed `seed`, 0 by default)
  pixels    the raw pixels at the model's resolution
  palette   the pixels after palette quantisation (what the model actually reads), decoded
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import data
from ..checkpoint import Checkpoint, load_checkpoint, step_dirs
from ..features import extract_features, feature_layers, parse_layers
from ..model import GPT, GPTConfig, random_model
from ..palette import Palette
from .estimators import DEFAULT_CS, DEFAULT_MAX_ITER, KNNProbe, LinearProbe, as_checkpoint, stderr
from .table import ProbeRow, ProbeTable

SPLITS = ("train", "val", "test")


def probe_layers(features_by_split: dict, labels_by_split: dict, layers=None, *, Cs=DEFAULT_CS,
                 max_iter: int = DEFAULT_MAX_ITER, knn_k: int | None = 20, knn_temperature: float = 0.07,
                 whiten=True, kind: str = "trained") -> ProbeTable:
    """One row (of `kind`) per layer: the logistic-regression probe (`LinearProbe`, C chosen on val;
    `whiten` is passed to it: True, False or "auto") and beside it the kNN read-out (`KNNProbe`,
    fitted on train; knn_k=None leaves its columns out). See `ProbeRow` for the columns.

    features_by_split: {"train"|"val"|"test": {layer: N×d array}}; labels_by_split: {split: N labels}.
    depth is the layer's position in the features' order (embed 0, blocks.i i+1, ln_f last)."""
    names = list(features_by_split["train"])
    layers = names if layers is None else list(layers)
    y = {s: np.asarray(labels_by_split[s]) for s in SPLITS}
    rows = []
    for layer in layers:
        X = {s: features_by_split[s][layer] for s in SPLITS}
        t0 = time.perf_counter()
        probe = LinearProbe(Cs=Cs, max_iter=max_iter, whiten=whiten).fit(X["train"], y["train"], X_val=X["val"],
                                                                         y_val=y["val"])
        seconds = time.perf_counter() - t0
        test_acc = probe.score(X["test"], y["test"])
        row = ProbeRow(
            kind=kind, layer=layer, depth=names.index(layer) if layer in names else None, dim=int(X["train"].shape[1]),
            train_acc=probe.score(X["train"], y["train"]), val_acc=max(probe.val_scores_),
            test_acc=test_acc, test_stderr=stderr(test_acc, len(y["test"])),
            C=probe.C_, C_at_edge=len(probe.Cs_) > 1 and probe.C_ in (probe.Cs_[0], probe.Cs_[-1]),
            val_acc_by_C=[float(v) for v in probe.val_scores_], converged=probe.converged_,
            n_iter=probe.n_iter_, whitened=probe.whitened_,
            whitened_dim=probe.whitener_.n_components_ if probe.whitener_ is not None else None,
            seconds=seconds, n_train=len(y["train"]), n_val=len(y["val"]), n_test=len(y["test"]))
        if knn_k is not None:
            t0 = time.perf_counter()
            knn = KNNProbe(k=knn_k, temperature=knn_temperature).fit(X["train"], y["train"])
            knn_test = knn.score(X["test"], y["test"])
            row = replace(row, knn_val_acc=knn.score(X["val"], y["val"]), knn_test_acc=knn_test,
                          knn_test_stderr=stderr(knn_test, len(y["test"])), knn_k=knn_k,
                          knn_temperature=knn_temperature, knn_seconds=time.perf_counter() - t0)
        rows.append(row)
    return ProbeTable(rows)


# ---- data for a model ----

def load_split(dataset: str, split: str, palette: Palette, resolution: int, limit: int | None = None, root=None):
    """(images uint8 N×H×W×C at the model's resolution, tokens N×T, labels N) of one split."""
    ds = data.load_dataset(dataset, split, resolution=resolution, limit=limit, channels=palette.channels, root=root)
    return ds.images, palette.encode(ds.images), ds.labels


def _load_splits(dataset: str, ck: Checkpoint, limit: int | None, root=None):
    out = {s: load_split(dataset, s, ck.palette, ck.square_side(), limit, root) for s in SPLITS}
    images, tokens, labels = ({s: v[i] for s, v in out.items()} for i in range(3))
    return images, tokens, labels


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


def _in_network(model: GPT, table: ProbeTable, **columns) -> list[ProbeRow]:
    """The rows with each layer's depth in the whole network (and `columns` set)."""
    return [replace(r, depth=_depth(model, r.layer), **columns) for r in table]


def baselines(images_by_split: dict, labels_by_split: dict, palette: Palette, config: GPTConfig, *,
              tokens_by_split: dict | None = None, layers=None, seed: int = 0, norm: str = "layernorm",
              pool: str = "mean", Cs=DEFAULT_CS, max_iter: int = DEFAULT_MAX_ITER, batch_size: int = 64, device="cpu",
              cache_dir=None, progress: bool = False, on_step=None) -> ProbeTable:
    """The three baselines on the same splits: every layer of a random-weight model (torch seed
    `seed`), raw pixels, palette-decoded pixels. The pixel probes choose on validation whether to
    whiten (`LinearProbe(whiten="auto")`); the random model's layers are probed as the trained
    model's are. on_step(done, total): called after each split's features, the random model's
    probes, the pixels'."""
    tick = _counter(on_step, len(images_by_split) + 2)
    if tokens_by_split is None:
        tokens_by_split = {s: palette.encode(im) for s, im in images_by_split.items()}
    model = random_model(config, seed).to(device)
    layers = feature_layers(model, final_norm=True) if layers is None else list(layers)
    feats = _features_by_split(model, tokens_by_split, layers, tick, norm=norm, pool=pool, batch_size=batch_size,
                               cache_dir=cache_dir, progress=progress)
    rows = _in_network(model, probe_layers(feats, labels_by_split, Cs=Cs, max_iter=max_iter, kind="random"), seed=seed)
    tick()
    h, w = config.height, config.width
    pixel_sets = {
        "pixels": {s: {"pixels": _pixels(im)} for s, im in images_by_split.items()},
        "palette": {s: {"palette": _pixels(palette.decode(tokens_by_split[s], h, w))} for s in images_by_split},
    }
    for kind, feats in pixel_sets.items():  # pixels: whitened or not, chosen on validation (see LinearProbe)
        table = probe_layers(feats, labels_by_split, Cs=Cs, max_iter=max_iter, whiten="auto", kind=kind)
        rows += table.with_columns(depth=None).rows
    tick()
    return ProbeTable(rows)


_TRAINED_STEPS = 4  # progress steps of _trained_rows: three splits' features, then the probes


def _trained_rows(ck: Checkpoint, tokens: dict, labels: dict, layers, *, norm, pool, Cs, max_iter, batch_size,
                  cache_dir, progress, tick, **columns) -> list[ProbeRow]:
    feats = _features_by_split(ck.model, tokens, layers, tick, norm=norm, pool=pool, batch_size=batch_size,
                               cache_dir=cache_dir, progress=progress)
    rows = _in_network(ck.model, probe_layers(feats, labels, Cs=Cs, max_iter=max_iter), **columns)
    tick()
    return rows


def probe_model(checkpoint, dataset: str | None = None, *, layers=None, limit: int | None = None,
                norm: str = "layernorm", pool: str = "mean", Cs=DEFAULT_CS, max_iter: int = DEFAULT_MAX_ITER,
                seed: int = 0, batch_size: int = 64, cache_dir=None, progress: bool = False,
                on_step=None, root=None) -> ProbeTable:
    """Probe every layer of a checkpoint (path, name or Checkpoint) on a dataset's train/val/test
    splits (default: the dataset it was trained on; `limit` images per split; `root`: where real
    datasets live, as in `data.load_dataset`), with the baselines.

    One table: the trained model's rows, then the random-weight model's, then pixels and palette.
    layers: default every layer, embed to ln_f (checked before any data is loaded). Features: one
    pass per split for all layers, cached in `cache_dir` (None: not cached).
    on_step(done, total): progress, called after each split's features and each set of probes.

    Example::

        table = probe_model("mnist", limit=500)
        table.best()                                   # the layer best on validation, its test accuracy
        print(table.text())
    """
    ck = as_checkpoint(checkpoint)
    name = ck.dataset_name(dataset)
    layers = parse_layers(ck.model, layers)
    images, tokens, labels = _load_splits(name, ck, limit, root)
    tick = _counter(on_step, _TRAINED_STEPS + len(images) + 2)
    opts = dict(norm=norm, pool=pool, Cs=Cs, max_iter=max_iter, batch_size=batch_size, cache_dir=cache_dir,
                progress=progress)
    rows = _trained_rows(ck, tokens, labels, layers, tick=tick, **opts)
    base = baselines(images, labels, ck.palette, ck.config, tokens_by_split=tokens, layers=layers, seed=seed,
                     device=ck.model.device, on_step=lambda done, total: tick(), **opts)
    return ProbeTable(rows + base.rows)


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
                      on_step=None) -> ProbeTable:
    """Probe curves over training: the trained rows of every saved step-* checkpoint of a run
    (or those whose step is in `steps`), each with `step`, `checkpoint` and `val_bpd` (the
    validation bits/dim training recorded at that step: `checkpoint_val_bpd`), then the
    baselines once (a run's checkpoints share architecture and palette, so they share baselines).
    on_step(done, total): progress, as in probe_model."""
    dirs = [d for d in step_dirs(run_dir) if steps is None or step_of(d) in set(steps)]
    if not dirs:
        raise FileNotFoundError(f"{run_dir}: no step-* checkpoints{' for steps ' + str(list(steps)) if steps else ''}"
                                " (train with --keep 0 to keep every saved step)")
    last = load_checkpoint(dirs[-1])
    name = last.dataset_name(dataset)
    layers = parse_layers(last.model, layers)
    images, tokens, labels = _load_splits(name, last, limit)
    opts = dict(norm=norm, pool=pool, Cs=Cs, max_iter=max_iter, batch_size=batch_size, cache_dir=cache_dir,
                progress=progress)
    tick = _counter(on_step, _TRAINED_STEPS * len(dirs) + len(images) + 2)
    rows = []
    for d in dirs:
        ck = last if d == dirs[-1] else load_checkpoint(d)
        ck.check_palette(last.palette)  # same tokens for every step
        rows += _trained_rows(ck, tokens, labels, layers, tick=tick, step=step_of(d), checkpoint=str(d),
                              val_bpd=checkpoint_val_bpd(ck, step_of(d)), **opts)
    base = baselines(images, labels, last.palette, last.config, tokens_by_split=tokens, layers=layers, seed=seed,
                     device=last.model.device, on_step=lambda done, total: tick(), **opts)
    return ProbeTable(rows + base.rows)
