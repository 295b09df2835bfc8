"""Argument checks, one rule and one message each: the CLI applies them where it parses its
arguments (argparse names the flag), the library's public functions apply the same ones to their
parameters (the message names the parameter). Every failure is a ValueError saying what is allowed.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds stop here; torch's accept it too


def _message(name: str, rule: str, value) -> str:
    return f"{name + ' ' if name else ''}must be {rule}, got {value!r}"


def integer(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int in [low, high] (either end may be open)."""
    if low is not None and high is not None:
        rule = f"between {low} and {high}"
    elif low is not None:
        rule = f"≥ {low}"
    elif high is not None:
        rule = f"≤ {high}"
    else:
        rule = "a whole number"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(_message(name, "a whole number" + (f" ({rule})" if rule != "a whole number" else ""), value))
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(_message(name, rule, value))
    return int(value)


def positive(name: str, value, at_most: float | None = None) -> float:
    """`value` as a finite float > 0 (and ≤ at_most)."""
    rule = "> 0" + (f" and ≤ {at_most:g}" if at_most is not None else " and finite")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(_message(name, rule, value))
    value = float(value)
    if not math.isfinite(value) or value <= 0 or (at_most is not None and value > at_most):
        raise ValueError(_message(name, rule, value))
    return value


def non_negative(name: str, value) -> float:
    """`value` as a finite float ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(_message(name, "≥ 0 and finite", value))
    return float(value)


def seed(name: str, value) -> int:
    return integer(name, value, 0, MAX_SEED)


def sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """The sampling filters shared by sampling, completion and the app (greedy: top_k=1)."""
    positive("temperature", temperature)
    if top_k is not None:
        integer("top_k", top_k, 1)
    if top_p is not None:
        positive("top_p", top_p, at_most=1.0)


MODEL_SIZES = ("n_colors", "height", "width", "n_layer", "n_head", "n_embd", "mlp_ratio")


def model_config(d) -> dict:
    """A model config as stored in config.json (a dict of GPTConfig fields): sizes are whole
    numbers ≥ 1 and the width divides into the heads. Returns it unchanged."""
    if not isinstance(d, dict):
        raise ValueError(f"the model config must be a JSON object of settings, got {type(d).__name__}")
    for key in MODEL_SIZES:
        if key in d:
            integer(key, d[key], 1)
    if "n_embd" in d and "n_head" in d and d["n_embd"] % d["n_head"]:
        raise ValueError(f"n_embd={d['n_embd']} must be divisible by n_head={d['n_head']}")
    for key in ("norm_eps", "dropout", "mask_rate"):
        if key in d:
            non_negative(key, d[key])
    if d.get("dropout", 0) >= 1:
        raise ValueError(_message("dropout", "≥ 0 and below 1", d["dropout"]))
    if "mask_rate" in d and not 0 < d["mask_rate"] <= 1:
        raise ValueError(_message("mask_rate", "> 0 and ≤ 1", d["mask_rate"]))
    for key in ("objective", "norm", "activation"):
        if key in d and not isinstance(d[key], str):
            raise ValueError(_message(key, "a name (text)", d[key]))
    for key in ("bias", "scale_attn_by_inverse_layer_idx"):
        if key in d and not isinstance(d[key], bool):
            raise ValueError(_message(key, "true or false", d[key]))
    return d


def _optional(name: str, value, kind, rule: str):
    if value is not None and (isinstance(value, bool) and kind is not bool or not isinstance(value, kind)):
        raise ValueError(_message(name, rule, value))
    return value


def checkpoint_meta(meta: dict) -> dict:
    """What a checkpoint's config.json records beside the model (dataset, class names, training
    step and history, ...): each field that igpt-lite reads has its type, or is absent or null.
    Returns it unchanged; a ValueError names the first field that is wrong."""
    for key in ("format", "dataset", "name", "source", "source_step", "palette_fingerprint"):
        _optional(key, meta.get(key), str, "text")
    for key in ("resolution", "channels"):
        if meta.get(key) is not None:
            integer(key, meta[key], 1)
    for key in ("baseline_bpd", "palette_error"):
        if meta.get(key) is not None:
            non_negative(key, meta[key])
    names = _optional("class_names", meta.get("class_names"), list, "a list of names")
    if names is not None and not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names):
        raise ValueError(_message("class_names", "a list of names", names))
    training = _optional("training", meta.get("training"), dict, "a JSON object (step, config, history)") or {}
    if training.get("step") is not None:
        integer("training.step", training["step"], 0)
    config = _optional("training.config", training.get("config"), dict, "a JSON object of settings") or {}
    if config.get("steps") is not None:
        integer("training.config.steps", config["steps"], 1)
    history = _optional("training.history", training.get("history"), list, "a list of evaluations") or []
    for i, row in enumerate(history):
        where = f"training.history[{i}]"
        _optional(where, row, dict, "a JSON object (step, train_bpd, val_bpd, lr, tokens_per_s)")
        if row is None or row.get("step") is None:
            raise ValueError(_message(f"{where}.step", "a whole number", None if row is None else row.get("step")))
        integer(f"{where}.step", row["step"], 0)
        for key in ("train_bpd", "val_bpd", "lr", "tokens_per_s"):
            if row.get(key) is not None:
                non_negative(f"{where}.{key}", row[key])
    return meta


def device(value: str, name: str = "device") -> str:
    """A torch device this machine has: auto, cpu, cuda, cuda:N or mps."""
    import torch

    if value == "auto":
        return value
    try:
        dev = torch.device(value)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(_message(name, "auto, cpu, cuda, cuda:N or mps", value))
    where = f"{name + ' ' if name else ''}{value!r}"
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{where}: CUDA is not available on this machine (torch {torch.__version__} sees no GPU); "
                         "use cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"{where}: this machine has {torch.cuda.device_count()} GPU(s), "
                         f"cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{where}: MPS (Apple GPU) is not available on this machine; use cpu or auto")
    return value


def images(value, height: int, width: int, channels: int, *, one: bool = False, name: str = "") -> np.ndarray:
    """The one check of images against a model: uint8 N×H×W×C (or one H×W×C image with `one=True`)
    at the model's height, width and colour channels. `name` ("set X") starts the message."""
    arr = np.asarray(value)
    want = (height, width, channels)
    if arr.shape != want if one else (arr.ndim != 4 or arr.shape[1:] != want):
        raise ValueError(f"{name + ': ' if name else ''}expected {'one image' if one else 'images'} shaped "
                         f"{'' if one else 'N×'}{height}×{width}×{channels} (this model's size and colour channels), "
                         f"got {arr.shape}; data.prepare_image crops and resizes an image to it")
    return arr


def square_side(height: int, width: int) -> int:
    """The side of a square image size: datasets and image sets are loaded square."""
    if height != width:
        raise ValueError(f"datasets are loaded square (image sets too), but this model reads {height}×{width} images; "
                         "give it your own images at that size")
    return height
