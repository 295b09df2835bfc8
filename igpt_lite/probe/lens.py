"""The logit lens: how well each layer already predicts the next pixel.

A layer's residual stream is put through the model's own final norm and head, as if the blocks
above it were skipped, and scored in bits/dim on held-out images (the convention of
`scoring.evaluate_bits_per_dim`: mean negative log-likelihood per pixel, in bits). At the last block
this is the model itself. The paper explains its probe curve by two phases: the lower layers gather
context into image features, the upper ones turn them into a next-pixel prediction. The lens shows
the second phase directly: if prediction happens late, bits/dim stays poor through the middle and
drops at the end.

The tuned lens (Belrose et al. 2023) first maps each layer's stream by one affine map fitted on
training images; here the map is the least-squares fit of the last block's stream (accumulated
normal equations, a small ridge), a closed-form variant of their fit by KL divergence. It separates
"the information is not there yet" from "it is there, in another basis".

Layers: the feature vocabulary (`features.feature_layers`): embed, blocks.0 ... blocks.{L-1}, ln_f
(ln_f's read-out is the model's own output, as is the last block's).

It lives in the probe package because it is a per-layer read-out on the same depth axis as the
probes, drawn in the same figure (`probe.probe_depth_chart(table, lens=...)`) and page.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from ..features import cache_name, feature_layers
from ..model import GPT
from ..storage import write_file_atomically
from ..tables import aligned_text
from .estimators import as_checkpoint
from .report import features_dir, model_hash
from .run import _counter, load_split

LENS_FORMAT = "igpt-lite-lens/1"
LENS_FILE = "lens.json"  # a lens shipped inside a checkpoint folder: data/models/<name>/lens.json
LENS_LIMIT = 200  # test images scored (and train images the tuned maps are fitted on) by default
RIDGE = 1e-4  # of the tuned lens's least squares, relative to the mean diagonal of XᵀX


@dataclass
class LensRow:
    """One layer: its place (embed 0, blocks.i i+1, ln_f L+1) and the bits/dim of its read-out on
    held-out images, plain and (when fitted) tuned."""
    layer: str
    depth: int
    bits_per_dim: float
    tuned_bits_per_dim: float | None = None


@dataclass
class LensCurve:
    """The logit lens of every layer (`logit_lens`), and how it was made: dataset and split scored,
    images scored, images the tuned maps were fitted on (None: no tuned lens), the checkpoint."""
    rows: list[LensRow]
    dataset: str | None = None
    split: str = "test"
    n_images: int = 0
    n_train: int | None = None
    model: str | None = None
    seconds: float | None = None
    created: str | None = None
    source: str = "computed"
    path: str | None = None
    identity: dict = field(default_factory=dict, repr=False)

    @property
    def tuned(self) -> bool:
        return any(r.tuned_bits_per_dim is not None for r in self.rows)

    def layers(self) -> list[str]:
        return [r.layer for r in self.rows]

    def row(self, layer: str) -> LensRow:
        for r in self.rows:
            if r.layer == layer:
                return r
        raise KeyError(f"layer {layer!r} is not in the lens: it has {', '.join(self.layers())}")

    def to_dict(self) -> dict:
        return {"format": LENS_FORMAT, "model": self.model, "dataset": self.dataset, "split": self.split,
                "n_images": self.n_images, "n_train": self.n_train, "seconds": self.seconds,
                "created": self.created, "identity": self.identity, "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d: dict, source: str = "cached", path: str | None = None) -> "LensCurve":
        rows = [LensRow(**r) for r in d["rows"]]
        return cls(rows=rows, **{k: d[k] for k in ("dataset", "split", "n_images", "n_train", "model", "seconds",
                                                  "created", "identity")}, source=source, path=path)

    def save(self, path) -> Path:
        """Write the curve as JSON (whole or not at all)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1)
        return write_file_atomically(path, lambda tmp: tmp.write_text(text))

    def text(self) -> str:
        head = (f"logit lens of {self.model or 'a model'}: bits/dim on {self.n_images} {self.dataset} {self.split} "
                f"images" + (f"; tuned maps fitted on {self.n_train} train images" if self.tuned else ""))
        cols = ["layer", "bits_per_dim"] + (["tuned_bits_per_dim"] if self.tuned else [])
        return head + "\n" + aligned_text([asdict(r) for r in self.rows], cols)


def _read_out(model: GPT, layer: str, affine=None):
    """The function from a layer's cached activation to logits: ln_f straight into the head, any
    other layer (first through its tuned map `affine` = (W, b), when given) through the final norm,
    then the head."""
    if layer == "ln_f":
        return model.lm_head
    if affine is None:
        return lambda h: model.lm_head(model.ln_f(h))
    W, b = affine
    return lambda h: model.lm_head(model.ln_f(h @ W + b))


def _check_ar(model: GPT):
    if model.config.objective != "ar":
        raise ValueError("the logit lens needs an ar model: it reads a next-pixel prediction from each layer "
                         "(a bert model predicts masked pixels)")


@torch.inference_mode()
def _bits(model: GPT, tokens, readers: dict, batch_size: int, tick=None) -> dict:
    """{key: mean bits/dim} of readers {key: (layer, read-out)}, all from one forward pass per batch."""
    total = dict.fromkeys(readers, 0.0)
    names = {cache_name(layer) for layer, _ in readers.values()}
    for i in range(0, len(tokens), batch_size):
        batch = torch.as_tensor(tokens[i : i + batch_size]).to(model.device)
        _, cache = model.run_with_cache(model.image_inputs(batch), names=names, logits=False)
        for key, (layer, read) in readers.items():
            logits = read(cache[cache_name(layer)])
            total[key] += F.cross_entropy(logits.flatten(0, 1).float(), batch.flatten(), reduction="sum").item()
        if tick is not None:
            tick()
    n = len(tokens) * model.config.block_size
    return {key: t / n / math.log(2) for key, t in total.items()}


def lens_bits(model: GPT, tokens: torch.Tensor, layers: list[str] | None = None, maps: dict | None = None,
              batch_size: int = 32) -> dict[str, float]:
    """{layer: mean bits/dim of its read-out on `tokens` (N×T)} (default: every layer, embed to
    ln_f); `maps` {layer: (W d×d, b d)}: the tuned lens (`fit_tuned_lens`). The last block's and
    ln_f's equal `scoring.evaluate_bits_per_dim`."""
    _check_ar(model)
    layers = feature_layers(model, final_norm=True) if layers is None else list(layers)
    return _bits(model, tokens, {l: (l, _read_out(model, l, (maps or {}).get(l))) for l in layers}, batch_size)


@torch.inference_mode()
def fit_tuned_lens(model: GPT, tokens: torch.Tensor, layers: list[str] | None = None, batch_size: int = 32,
                   ridge: float = RIDGE, tick=None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{layer: (W, b)}: per layer, the affine map h ↦ h W + b closest in least squares to the last
    block's residual stream at the same positions of `tokens` (train images), with a ridge of
    `ridge` × the mean diagonal of XᵀX. The last block (the target) and ln_f get no map. tick(): called after each batch."""
    _check_ar(model)
    last = f"blocks.{model.config.n_layer - 1}"
    layers = [l for l in (feature_layers(model) if layers is None else layers) if l not in ("ln_f", last)]
    target = cache_name(last)
    d = model.config.n_embd
    xtx = {l: torch.zeros(d + 1, d + 1, dtype=torch.float64) for l in layers}
    xty = {l: torch.zeros(d + 1, d, dtype=torch.float64) for l in layers}
    for i in range(0, len(tokens), batch_size):
        batch = torch.as_tensor(tokens[i : i + batch_size]).to(model.device)
        _, cache = model.run_with_cache(model.image_inputs(batch), names={cache_name(l) for l in layers} | {target},
                                        logits=False)
        y = cache[target].reshape(-1, d).double().cpu()
        for layer in layers:
            x = cache[cache_name(layer)].reshape(-1, d).double().cpu()
            x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
            xtx[layer] += x.T @ x
            xty[layer] += x.T @ y
        if tick is not None:
            tick()
    maps = {}
    dtype = model.lm_head.weight.dtype
    for layer in layers:
        a = xtx[layer]
        a = a + ridge * a.diagonal()[:d].mean() * torch.eye(d + 1, dtype=a.dtype)
        sol = torch.linalg.solve(a, xty[layer])
        maps[layer] = (sol[:d].to(model.device, dtype), sol[d].to(model.device, dtype))
    return maps


def _lens_key(identity: dict) -> str:
    return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=16).hexdigest()


def logit_lens(checkpoint, dataset: str | None = None, *, limit: int | None = LENS_LIMIT, tuned: bool = True,
               batch_size: int = 32, reuse: bool = True, compute: bool = True, cache_dir=None, on_step=None,
               root=None) -> LensCurve:
    """The logit lens of every layer of a checkpoint (path, name or Checkpoint), scored in bits/dim
    on up to `limit` test images of a dataset (default: its own); with `tuned`, also the tuned
    lens, its maps fitted on up to `limit` train images.

    A curve shipped beside the checkpoint (`LENS_FILE`) or kept under `cache_dir`/lens (default
    `cache_root()`) is used when it belongs to the same weights and palette, dataset and settings;
    a computed one is kept there. reuse=False remakes it. Without `compute`
    and nothing stored, LookupError. on_step(done, total): progress, one step per batch.

    Example::

        curve = logit_lens("mnist-small", limit=200)
        print(curve.text())                            # bits/dim per layer; the last equals the model's
    """
    ck = as_checkpoint(checkpoint)
    _check_ar(ck.model)
    name = ck.dataset_name(dataset)
    identity = {"format": LENS_FORMAT, "model": model_hash(ck), "dataset": name, "limit": limit, "tuned": tuned,
                "ridge": RIDGE if tuned else None}
    path = features_dir(cache_dir).parent / "lens" / f"{_lens_key(identity)}.json"
    stored = ([("shipped", ck.path / LENS_FILE)] if ck.path is not None else []) + [("cached", path)]
    for source, where in stored if reuse else []:
        try:
            d = json.loads(where.read_text())
            if d.get("identity") == identity:
                return LensCurve.from_dict(d, source=source, path=str(where))
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass  # missing, unreadable or another model's: computed again
    if not compute:
        raise LookupError(f"no logit lens is stored for {ck.path or 'this model'} on {name} with these settings: "
                          "compute it")
    t0 = time.perf_counter()
    side = ck.square_side()
    splits = ["test"] + (["train"] if tuned else [])
    tokens = {s: load_split(name, s, ck.palette, side, limit, root)[1] for s in splits}
    tick = _counter(on_step, sum(math.ceil(len(t) / batch_size) for t in tokens.values()))

    layers = feature_layers(ck.model, final_norm=True)
    maps = fit_tuned_lens(ck.model, tokens["train"], batch_size=batch_size, tick=tick) if tuned else {}
    readers = {(l, False): (l, _read_out(ck.model, l)) for l in layers}
    readers |= {(l, True): (l, _read_out(ck.model, l, m)) for l, m in maps.items()}
    bits = _bits(ck.model, tokens["test"], readers, batch_size, tick)
    rows = [LensRow(layer, depth, bits[layer, False], bits.get((layer, True), bits[layer, False]) if tuned else None)
            for depth, layer in enumerate(layers)]
    curve = LensCurve(rows=rows, dataset=name, n_images=len(tokens["test"]),
                      n_train=len(tokens["train"]) if tuned else None, model=str(ck.path) if ck.path else None,
                      seconds=time.perf_counter() - t0, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      identity=identity)
    curve.save(path)
    curve.path = str(path)
    return curve
