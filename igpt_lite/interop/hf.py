"""Hugging Face ImageGPT <-> igpt-lite: run the official iGPT weights in our model, and back.

`load_hf(folder)` reads a saved transformers `ImageGPTForCausalImageModeling` folder (config.json,
model.safetensors or pytorch_model.bin, preprocessor_config.json with the colour `clusters`) into
our GPT + Palette; `export_hf(checkpoint, folder)` writes one that transformers loads. Neither needs
transformers installed. The mapping (see docs/interop.md):

  HF ImageGPT                                   igpt-lite
  ImageGPTLayerNorm (x/sqrt(mean x² + eps)·g)   norm="rms", norm_eps=layer_norm_epsilon (no bias)
  activation_function quick_gelu | gelu         activation="quick_gelu" | "gelu"
  Conv1D weight stored (in, out)                nn.Linear weight (out, in): transposed
  attn.c_attn columns [q | k | v]               attn.qkv rows [q | k | v]
  biases (zero in the official weights)         bias=True, or bias=False when every one is zero
  n_inner                                       mlp_ratio = n_inner / n_embd
  scale_attn_by_inverse_layer_idx               the same flag
  wte: colours + 1 rows, start token = last id  wte: n_colors + 1 rows, special_id = n_colors
  lm_head: colours only, untied                 lm_head: colours only, untied
  n_positions + the processor's size            height × width
  clusters (HF order)                           Palette centres, same order, so token ids match

Tensors are read one at a time (safetensors lazily, .bin memory-mapped) into a model built on the
meta device, so importing iGPT-L never holds two full copies of its weights in memory. `.bin` files
are read only with torch.load(weights_only=True, mmap=True): no pickle code runs.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from .. import checkpoint, validate
from ..checkpoint import Checkpoint
from ..storage import check_folder_output, occupied, write_folder_atomically
from ..model import GPT, GPTConfig
from ..palette import Palette

# ImageGPTConfig's defaults (transformers 4.x-5.x): keys a config.json may leave out.
HF_DEFAULTS = dict(vocab_size=513, n_positions=1024, n_embd=512, n_layer=24, n_head=8, n_inner=None,
                   activation_function="quick_gelu", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
                   layer_norm_epsilon=1e-5, scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
                   reorder_and_upcast_attn=False, add_cross_attention=False, tie_word_embeddings=False)
ACTIVATIONS = ("quick_gelu", "gelu")  # HF's "gelu" is the exact erf GELU, as ours; gelu_new (tanh) is not

# our parameter name -> (HF name, stored transposed): HF's Conv1D keeps weights as (in, out)
_GLOBAL = {"wte.weight": "transformer.wte.weight", "wpe.weight": "transformer.wpe.weight",
           "ln_f.weight": "transformer.ln_f.weight", "lm_head.weight": "lm_head.weight"}
_BLOCK = {
    "ln_1.weight": ("ln_1.weight", False),
    "attn.qkv.weight": ("attn.c_attn.weight", True),
    "attn.qkv.bias": ("attn.c_attn.bias", False),
    "attn.proj.weight": ("attn.c_proj.weight", True),
    "attn.proj.bias": ("attn.c_proj.bias", False),
    "ln_2.weight": ("ln_2.weight", False),
    "mlp.fc.weight": ("mlp.c_fc.weight", True),
    "mlp.fc.bias": ("mlp.c_fc.bias", False),
    "mlp.proj.weight": ("mlp.c_proj.weight", True),
    "mlp.proj.bias": ("mlp.c_proj.bias", False),
}
# causal-mask buffers that old exports saved with the weights; we build our mask on the fly
_OLD_BUFFERS = ("attn.bias", "attn.masked_bias")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def name_map(n_layer: int) -> dict[str, tuple[str, bool]]:
    """Every parameter of a bias=True model: our name -> (HF name, whether HF stores it transposed)."""
    m = {ours: (theirs, False) for ours, theirs in _GLOBAL.items()}
    for i in range(n_layer):
        for ours, (theirs, transposed) in _BLOCK.items():
            m[f"blocks.{i}.{ours}"] = (f"transformer.h.{i}.{theirs}", transposed)
    return m


def _is_old_buffer(hf_name: str) -> bool:
    parts = hf_name.split(".")  # transformer.h.{i}.attn.bias
    return len(parts) == 5 and parts[:2] == ["transformer", "h"] and ".".join(parts[3:]) in _OLD_BUFFERS


# ---- reading a transformers folder ----

def _read_json(path: Path) -> dict:
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object of settings, got a {type(d).__name__}")
    return d


def config_from_hf(hf: dict, processor: dict) -> GPTConfig:
    """Our GPTConfig for an ImageGPT config.json + preprocessor_config.json, or a ValueError naming
    every setting our model cannot express."""
    hf = {**HF_DEFAULTS, **hf}
    if hf.get("model_type", "imagegpt") != "imagegpt":
        raise ValueError(f"model_type is {hf['model_type']!r}, not 'imagegpt'")
    for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
        validate.integer(key, hf[key], 2 if key == "vocab_size" else 1)
    if hf["n_inner"] is not None:
        validate.integer("n_inner", hf["n_inner"], 1)
    for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        if not 0 <= validate.non_negative(key, hf[key]) <= 1:
            raise ValueError(f"{key} must be between 0 and 1, got {hf[key]!r}")
    validate.positive("layer_norm_epsilon", hf["layer_norm_epsilon"])
    for key in ("scale_attn_weights", "scale_attn_by_inverse_layer_idx", "add_cross_attention", "tie_word_embeddings"):
        if not isinstance(hf[key], bool):
            raise ValueError(f"{key} must be true or false, got {hf[key]!r}")
    n_embd = hf["n_embd"]
    n_inner = hf["n_inner"] or 4 * n_embd
    problems = []
    if not hf["scale_attn_weights"]:
        problems.append("scale_attn_weights=False (attention scores not divided by sqrt(head_dim))")
    if hf["add_cross_attention"]:
        problems.append("add_cross_attention=True (cross-attention layers)")
    if hf["activation_function"] not in ACTIVATIONS:
        problems.append(f"activation_function={hf['activation_function']!r} (supported: {', '.join(ACTIVATIONS)})")
    if n_inner % n_embd:
        problems.append(f"n_inner={n_inner} is not a whole multiple of n_embd={n_embd}")
    if hf["tie_word_embeddings"]:
        problems.append("tie_word_embeddings=True (our output head is untied, over the colours only)")
    if problems:
        raise ValueError("this ImageGPT uses settings igpt-lite's model cannot express: " + "; ".join(problems))

    n_colors = hf["vocab_size"] - 1  # the last id is the start token
    clusters = processor.get("clusters")
    if clusters is not None and not isinstance(clusters, list):
        raise ValueError(f"preprocessor_config.json: \"clusters\" must be a list of [r, g, b] colour centres, got "
                         f"{type(clusters).__name__} {clusters!r:.60}")
    if clusters is None or len(clusters) != n_colors:
        raise ValueError(f"preprocessor_config.json has {0 if clusters is None else len(clusters)} clusters but "
                         f"the model has {n_colors} colours (vocab_size {hf['vocab_size']} = colours + start token)")
    height, width = _image_size(hf["n_positions"], processor.get("size"))
    # one dropout rate in our model; it only matters for fine-tuning (imports are put in eval mode)
    dropout = max(hf["resid_pdrop"], hf["embd_pdrop"], hf["attn_pdrop"])
    return GPTConfig(n_colors=n_colors, height=height, width=width, n_layer=hf["n_layer"], n_head=hf["n_head"],
                     n_embd=n_embd, objective="ar", norm="rms", activation=hf["activation_function"], bias=True,
                     norm_eps=hf["layer_norm_epsilon"], mlp_ratio=n_inner // n_embd, dropout=dropout,
                     scale_attn_by_inverse_layer_idx=hf["scale_attn_by_inverse_layer_idx"])


def _image_size(n_positions: int, size) -> tuple[int, int]:
    """height, width: the processor's size when it fits the context (it may be non-square), else the
    square root of n_positions (a processor saved with the default size of 256 does not fit)."""
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if isinstance(size, dict) and "height" in size and "width" in size:
        h, w = (validate.integer(f"preprocessor_config.json size {k}", size[k], 1) for k in ("height", "width"))
        if h * w == n_positions:
            return h, w
    side = math.isqrt(n_positions)
    if side * side != n_positions:
        raise ValueError(f"n_positions={n_positions} is not a square and the processor's size {size} does not "
                         "match it: cannot tell the image's height and width")
    return side, side


def _weight_files(folder: Path) -> list[Path]:
    """The weight files, in transformers' order of preference: one safetensors file, its shards,
    one .bin file, its shards."""
    for name in WEIGHT_FILES:
        if (folder / name).exists():
            return [folder / name]
        index = folder / f"{name}.index.json"
        if index.exists():  # sharded checkpoints
            weight_map = _read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ValueError(f"{index}: no \"weight_map\" (tensor name -> shard file); the index is damaged, "
                                 "re-save the model with save_pretrained")
            shards = [folder / shard for shard in sorted(set(weight_map.values()))]
            missing = [f.name for f in shards if not f.exists()]
            if missing:
                raise FileNotFoundError(f"{index} names shard(s) that are not there: {', '.join(missing[:3])}")
            return shards
    raise FileNotFoundError(f"{folder}: no {' or '.join(WEIGHT_FILES)} found")


def _tensors(files: list[Path]):
    """(name, tensor) one at a time, so the caller can convert and drop each before the next."""
    for f in files:
        if f.name.endswith(".safetensors"):
            try:
                with safe_open(str(f), framework="pt") as sf:
                    for name in sf.keys():
                        yield name, sf.get_tensor(name)
            except SafetensorError as e:  # a truncated or damaged download
                raise ValueError(f"{f}: cannot be read as safetensors ({e}); the file is truncated or corrupt: "
                                 "download or save it again") from None
        else:
            try:  # tensors only (weights_only), and file-backed pages (mmap) rather than a copy in memory
                state = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
            except Exception as e:
                raise ValueError(f"{f}: cannot be read as a plain PyTorch state dict with weights_only=True "
                                 f"and mmap=True ({e}); re-save it with safetensors") from e
            yield from state.items()
            del state


def load_hf(path: str | Path, dtype: torch.dtype = torch.float32) -> Checkpoint:
    """A Checkpoint (our GPT + Palette, eval mode) from a saved transformers ImageGPT folder.

    Outputs equal transformers' ImageGPTForCausalImageModeling on the same token ids (start token
    = n_colors), and `checkpoint.palette.encode` gives ImageGPTImageProcessor's token ids.

    Example::

        ck = load_hf("imagegpt-small/")              # a folder saved by transformers' save_pretrained
        save_checkpoint("models/imagegpt-small", ck.model, ck.palette, ck.meta)
    """
    folder = Path(path)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder / 'config.json'}: missing; expected a folder saved by transformers' "
                                "save_pretrained (config.json, model.safetensors, preprocessor_config.json)")
    if not (folder / "preprocessor_config.json").exists():
        raise FileNotFoundError(f"{folder / 'preprocessor_config.json'}: missing; it holds the colour clusters "
                                "(save the ImageGPTImageProcessor beside the model)")
    processor = _read_json(folder / "preprocessor_config.json")
    try:
        cfg = config_from_hf(_read_json(folder / "config.json"), processor)
    except ValueError as e:
        raise ValueError(f"{folder}: {e}") from e
    try:
        palette = Palette(processor["clusters"])  # HF order: token ids match
    except ValueError as e:
        raise ValueError(f"{folder / 'preprocessor_config.json'}: its clusters are not a colour palette ({e})") from None

    theirs = {hf: (ours, transposed) for ours, (hf, transposed) in name_map(cfg.n_layer).items()}
    state, unexpected = {}, []
    for hf_name, t in _tensors(_weight_files(folder)):
        if hf_name not in theirs:
            if not _is_old_buffer(hf_name):
                unexpected.append(hf_name)
            continue
        ours, transposed = theirs[hf_name]
        src = t.t() if transposed else t
        state[ours] = torch.empty(src.shape, dtype=dtype).copy_(src)  # own, contiguous memory
        del t, src
    if "lm_head.weight" not in state:
        raise ValueError(f"{folder}: no lm_head.weight: this is an ImageGPTModel or ImageGPTForImageClassification "
                         "export; igpt-lite needs ImageGPTForCausalImageModeling (as the official weights are)")
    if unexpected:
        raise ValueError(f"{folder}: weights igpt-lite does not know: {', '.join(unexpected[:5])}"
                         f"{' ...' if len(unexpected) > 5 else ''}")

    checkpoint.check_finite(state, folder)
    # the official weights carry all-zero biases: drop them (exactly the same outputs, less work)
    biases = [k for k in state if k.endswith(".bias")]
    if all(not state[k].any() for k in biases):
        for k in biases:
            del state[k]
        cfg = replace(cfg, bias=False)
    with torch.device("meta"):
        model = GPT(cfg)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise ValueError(f"{folder}: weights do not match config.json ({str(e).splitlines()[0]} ...)") from e
    model.eval()
    meta = {"source": "transformers ImageGPT", "imported_from": str(folder.resolve())}
    return Checkpoint(model=model, palette=palette, meta=meta, path=folder)


# ---- writing a transformers folder ----

def hf_config(cfg: GPTConfig) -> dict:
    """ImageGPTConfig (config.json) for our config, or a ValueError if HF's ImageGPT cannot run it."""
    problems = []
    if cfg.objective != "ar":
        problems.append(f"objective={cfg.objective!r} (ImageGPT is autoregressive only)")
    if cfg.norm != "rms":
        problems.append(f"norm={cfg.norm!r} (ImageGPTLayerNorm neither centres nor has a bias: it is our "
                        "norm='rms'; a layernorm model cannot be exported exactly)")
    if cfg.activation not in ACTIVATIONS:
        problems.append(f"activation={cfg.activation!r}")
    if problems:
        raise ValueError("this model cannot be written as a Hugging Face ImageGPT: " + "; ".join(problems))
    return {
        "architectures": ["ImageGPTForCausalImageModeling"], "model_type": "imagegpt",
        "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": cfg.mlp_ratio * cfg.n_embd,
        "activation_function": cfg.activation, "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "initializer_range": 0.02, "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": cfg.scale_attn_by_inverse_layer_idx,
        "reorder_and_upcast_attn": False, "add_cross_attention": False, "tie_word_embeddings": False,
        "use_cache": True, "dtype": "float32",
    }


def hf_processor_config(palette: Palette, height: int, width: int) -> dict:
    # HF's processor quantises RGB only: a grey palette becomes (c, c, c), which gives the same token
    # ids for grey images presented as RGB
    centers = np.repeat(palette.centers, 3, axis=1) if palette.channels == 1 else palette.centers
    return {"image_processor_type": "ImageGPTImageProcessor", "clusters": centers.tolist(),
            "do_color_quantize": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "rescale_factor": 1 / 255,
            "resample": 2, "size": {"height": height, "width": width}}


def _write_safetensors(path: Path, entries: list[tuple[str, tuple, callable]]) -> None:
    """Write a .safetensors file one float32 tensor at a time: `entries` are (name, shape, make)
    and `make()` builds the tensor only when its turn comes, so the transposed copies of a big
    model never exist all at once (safetensors' save_file needs them all in a dict)."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in entries:
        size = 4 * math.prod(shape)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format pads its header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape, make in entries:
            t = make().detach().to("cpu", torch.float32).contiguous()
            assert tuple(t.shape) == tuple(shape), name
            f.write(memoryview(t.numpy()).cast("B"))


def export_hf(ck: Checkpoint, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write `ck` as a transformers folder (config.json, model.safetensors, preprocessor_config.json)
    that ImageGPTForCausalImageModeling / ImageGPTImageProcessor.from_pretrained load.
    `load_hf` of it gives back the same model and palette (a grey palette comes back as RGB)."""
    out_dir = Path(out_dir)
    cfg = ck.config
    config = hf_config(cfg)
    if ck.palette.n_colors != cfg.n_colors:
        raise ValueError(f"palette has {ck.palette.n_colors} colours but the model predicts {cfg.n_colors}")
    if occupied(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; choose another folder or pass overwrite=True "
                              "(--overwrite: replaces the files export writes, leaves any other file alone)")
    check_folder_output(out_dir)
    if ck.path is not None and Path(ck.path).resolve().is_relative_to(out_dir.resolve()):
        raise ValueError(f"{out_dir} holds the model being exported ({ck.path}); writing the Hugging Face files there "
                         "would overwrite its own: choose another folder")
    params = dict(ck.model.named_parameters())

    def make(ours, transposed, shape):
        if ours not in params:  # bias=False: HF's Conv1D always has a bias, and ours are all zero
            return lambda: torch.zeros(shape)
        return lambda: params[ours].t() if transposed else params[ours]

    entries = []
    for ours, (theirs, transposed) in name_map(cfg.n_layer).items():
        if ours.endswith(".bias") and ours not in params:
            shape = params[ours.replace(".bias", ".weight")].shape[:1]
        else:
            shape = params[ours].shape[::-1] if transposed else params[ours].shape
        entries.append((theirs, tuple(shape), make(ours, transposed, tuple(shape))))

    def write(folder: Path):
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        (folder / "preprocessor_config.json").write_text(
            json.dumps(hf_processor_config(ck.palette, cfg.height, cfg.width), indent=2))
        with torch.no_grad():
            _write_safetensors(folder / "model.safetensors", entries)

    return write_folder_atomically(out_dir, write)


# ---- the official weights from the Hub (optional, needs internet) ----

def fetch_and_convert(repo_id: str = "openai/imagegpt-small", out: str | Path | None = None, *,
                      revision: str | None = None, overwrite: bool = False) -> Path:
    """Download a Hub ImageGPT (e.g. openai/imagegpt-small, -medium, -large) with huggingface_hub and
    save it as an igpt-lite checkpoint, by default under checkpoint.USER_DIR/<repo name> so that
    `load_checkpoint("imagegpt-small")` finds it. Needs `pip install huggingface_hub` and internet."""
    try:
        from huggingface_hub import list_repo_files, snapshot_download
    except ImportError as e:
        raise ImportError("fetch_and_convert needs huggingface_hub: pip install huggingface_hub") from e
    if out is None:
        checkpoint.check_user_model_name(repo_id.split("/")[-1])
    out = Path(out) if out is not None else checkpoint.USER_DIR / repo_id.split("/")[-1]
    if occupied(out) and not overwrite:
        raise FileExistsError(f"{out} already exists; choose another folder or pass overwrite=True")
    files = set(list_repo_files(repo_id, revision=revision))
    # one weight format only (iGPT-L is 5.6 GB each): safetensors when the repo has it
    weights = next(([n, n + ".index.json"] for n in WEIGHT_FILES if n in files or n + ".index.json" in files), None)
    if weights is None:
        raise FileNotFoundError(f"{repo_id}: no {' or '.join(WEIGHT_FILES)} in the repository")
    stem = weights[0].split(".")[0]  # shards are named like model-00001-of-00002.safetensors
    patterns = ["config.json", "preprocessor_config.json", *weights, f"{stem}-*{Path(weights[0]).suffix}"]
    folder = snapshot_download(repo_id, revision=revision, allow_patterns=patterns)
    ck = load_hf(folder)
    ck.meta.update(hub_repo=repo_id, hub_revision=revision)
    return checkpoint.save_checkpoint(out, ck.model, ck.palette, ck.meta, overwrite=overwrite)
