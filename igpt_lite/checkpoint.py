"""Checkpoints: a folder holding model.safetensors, config.json and palette.json. No pickle.

Training state (optimizer moments, step, RNG) lives beside it in `training/` and is only read to
resume. Folders are written under a temporary name and renamed into place, so a kill mid-write
never leaves a broken or half-overwritten checkpoint.

A training run folder holds one checkpoint per saved step (`step-000500/`, ...); loading a run
folder loads its latest complete step.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import validate
from .history import History
from .memory import check_memory, parameter_count
from .model import GPT, GPTConfig
from .model_card import ModelSummary
from .palette import Palette
from .storage import bundled_models_dir, occupied, write_folder_atomically

FORMAT = "igpt-lite/1"
BUNDLED_DIR = bundled_models_dir()
USER_DIR = Path(os.environ.get("IGPT_LITE_MODELS", Path.home() / ".cache" / "igpt-lite" / "models"))


@dataclass
class Checkpoint:
    """A trained model with everything needed to use it: the GPT, its palette (pixels <-> tokens),
    what it was trained on (`meta`: dataset, resolution, training history) and where it lives.

    Example::

        ck = load_checkpoint("mnist")
        tokens = ck.palette.encode(images)          # uint8 N×H×W×C at ck.image_shape -> long N×T
        logits = ck.model(ck.model.image_inputs(tokens))
    """

    model: GPT
    palette: Palette
    meta: dict = field(default_factory=dict)  # dataset, resolution, training history, ...
    path: Path | None = None

    def __repr__(self) -> str:
        cfg, name = self.config, self.path.name if self.path else "unsaved"
        return (f"Checkpoint({name!r}: {cfg.n_layer} layers × {cfg.n_embd}, {cfg.height}×{cfg.width}×"
                f"{self.palette.channels}, {self.palette.n_colors} colours, {cfg.objective}, "
                f"{self.model.num_params() / 1e6:.2f}M parameters)")

    @property
    def config(self) -> GPTConfig:
        return self.model.config

    def dataset_name(self, override: str | None = None) -> str:
        """The dataset this model's images come from: `override` if given, else the one it was
        trained on (a name `data.load_dataset` takes). An imported model (Hugging Face) names none:
        the caller must choose."""
        from .data import check_dataset_name, dataset_names

        name = override or self.meta.get("dataset")
        if not name:
            where = f" ({self.path})" if self.path else ""
            raise ValueError(f"this model{where} names no dataset (imported models do not): choose one of "
                             f"{', '.join(dataset_names())} or folder:PATH (--data NAME), or give your own images")
        return check_dataset_name(name)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the images this model reads: the one home of the image shape."""
        return self.config.height, self.config.width, self.palette.channels

    def square_side(self) -> int:
        """The side of this model's images where images are loaded square (datasets, image sets), or
        the one message saying they cannot be."""
        return validate.square_side(self.config.height, self.config.width)

    def check_images(self, images, *, one: bool = False, name: str = ""):
        """`images` as an array if they are uint8 N×H×W×C (one H×W×C with `one=True`) at this
        model's size and colour channels; else the one message saying what was expected."""
        return validate.images(images, *self.image_shape, one=one, name=name)

    def summary(self) -> ModelSummary:
        return summarize(self)

    def check_palette(self, palette: Palette) -> None:
        """Refuse to run this model with another palette than its own."""
        if palette != self.palette:
            raise ValueError(
                f"palette mismatch: this checkpoint{' (' + str(self.path) + ')' if self.path else ''} was trained "
                f"with palette {self.palette.fingerprint} ({self.palette.n_colors} colours), not "
                f"{palette.fingerprint} ({palette.n_colors} colours); encode images with checkpoint.palette"
            )


def _write_checkpoint_files(folder: Path, model: GPT, palette: Palette, meta: dict,
                            state: dict[str, torch.Tensor] | None = None) -> None:
    """state: the model's weights when not `model.state_dict()` (a sharded model's, gathered whole)."""
    if palette.n_colors != model.config.n_colors:
        raise ValueError(f"palette has {palette.n_colors} colours but the model predicts {model.config.n_colors}")
    state = {k: v.detach().to("cpu", torch.float32).contiguous()
             for k, v in (model.state_dict() if state is None else state).items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": FORMAT})
    config = {"format": FORMAT, "model": model.config.to_dict(), "palette_fingerprint": palette.fingerprint, **meta}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    palette.save(folder / "palette.json")


def save_checkpoint(path: str | Path, model: GPT, palette: Palette, meta: dict | None = None,
                    overwrite: bool = False) -> Path:
    """Write `model`, `palette` and `meta` as a checkpoint folder (model.safetensors, config.json,
    palette.json; no pickle) and return its path. The folder appears whole or not at all; an existing
    one is refused unless `overwrite`, which replaces only the checkpoint's own files.

    Example::

        save_checkpoint("runs/mine", ck.model, ck.palette, {"dataset": "mnist"})
    """
    path = Path(path)
    if occupied(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another path or pass overwrite=True")
    return write_folder_atomically(path, lambda d: _write_checkpoint_files(d, model, palette, meta or {}))


def step_dirs(run_dir: str | Path) -> list[Path]:
    """A run's complete checkpoint folders, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.glob("step-*") if (p / "config.json").exists())


def model_names() -> dict[str, Path]:
    """Checkpoints found by name: bundled ones, then the user's (imported) ones. A user's model
    named like a bundled one is not listed here: `resolve` refuses that name as ambiguous."""
    found = {}
    for root in (BUNDLED_DIR, USER_DIR):
        for name, p in _named_models(root).items():
            found.setdefault(name, p)
    return found


def _named_models(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").exists()}


def check_user_model_name(name: str) -> None:
    """Refuse to save a user's model under a bundled model's name (it could never be found by it)."""
    if name in _named_models(BUNDLED_DIR):
        raise FileExistsError(f"{name!r} is the name of a bundled model; give the import another name "
                              f"(OUT argument), e.g. {name}-imported")


def resolve(path_or_name: str | Path) -> Path:
    """A checkpoint folder from a path, a run folder (its latest step) or a model name."""
    p = Path(path_or_name)
    if not p.exists():
        name = str(path_or_name)
        bundled, user = _named_models(BUNDLED_DIR).get(name), _named_models(USER_DIR).get(name)
        if bundled and user:
            raise ValueError(f"model name {name!r} is ambiguous: bundled {bundled} and yours {user}; "
                             "give the folder's path instead, or rename yours")
        if bundled or user:
            return bundled or user
        names = model_names()
        raise FileNotFoundError(
            f"no checkpoint at {p} and no model named {name!r}; "
            f"known names: {', '.join(names) or 'none'}"
        )
    if p.is_file():
        raise FileNotFoundError(f"{p} is a file; a checkpoint is a folder (config.json, model.safetensors, "
                                "palette.json) or a training run folder")
    if (p / "config.json").exists():
        return p
    steps = step_dirs(p)
    if steps:
        return steps[-1]
    raise FileNotFoundError(f"{p / 'config.json'}: missing; {p} is neither a checkpoint nor a training run folder")


def read_config(path: str | Path) -> tuple[GPTConfig, dict]:
    """(the model config, the rest of the metadata) of the checkpoint folder `path`, from its
    config.json, every field checked (validate.model_config, validate.checkpoint_meta); a damaged
    file gets a ValueError naming it and the field. Reads no weights."""
    cfg_file = Path(path) / "config.json"
    try:
        meta = json.loads(cfg_file.read_text())
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got a {type(meta).__name__}")
        if meta.get("model_type") == "imagegpt":
            raise FileNotFoundError(f"{path} is a Hugging Face ImageGPT folder, not an igpt-lite checkpoint: "
                                    f"convert it once with `igpt-lite import-hf {path}`")
        if "model" not in meta:
            raise ValueError('no "model" settings')
        config = GPTConfig.from_dict(validate.model_config(meta.pop("model")))
        validate.checkpoint_meta(meta)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as e:
        raise ValueError(f"{cfg_file}: not a valid igpt-lite config ({e}); the checkpoint is damaged, re-save it") from e
    return config, meta


META_INIT_ABOVE = 100_000_000  # block weights (12·layers·width²) above which load_checkpoint skips random init


def load_checkpoint(path_or_name: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint folder, a training run folder (its latest complete step) or a model by name
    (bundled, or yours in $IGPT_LITE_MODELS) as a `Checkpoint` in eval mode on `device`. Damaged files
    get a message naming the file.

    Example::

        ck = load_checkpoint("mnist")                 # or "runs/digits", or "runs/digits/step-000500"
        ck.summary().card()                           # the model card `igpt-lite info` prints
    """
    path = resolve(path_or_name)
    cfg_file, weights_file, palette_file = path / "config.json", path / "model.safetensors", path / "palette.json"
    config, meta = read_config(path)
    try:  # before a byte of weights is read: a config of 10⁸ layers is refused, not built
        check_memory(config, device=device)
    except ValueError as e:
        raise ValueError(f"{cfg_file}: {e}") from e
    palette = Palette.load(palette_file)
    if palette.fingerprint != meta.pop("palette_fingerprint", None) or palette.n_colors != config.n_colors:
        raise ValueError(
            f"{palette_file}: this palette ({palette.n_colors} colours, {palette.fingerprint}) is not the one the "
            f"model in {path} was trained with; restore the checkpoint's own palette.json"
        )
    if not weights_file.exists():
        raise FileNotFoundError(f"{weights_file}: missing; the checkpoint folder is incomplete")
    try:
        state = load_file(str(weights_file), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{weights_file}: cannot be read as safetensors ({e}); the file is corrupt, re-save it") from e
    check_finite(state, weights_file)
    held, wanted = sum(t.numel() for t in state.values()), parameter_count(config)
    if held != wanted:  # before building the model: a config that is not these weights' is not built at all
        raise ValueError(f"{weights_file}: weights do not match {cfg_file} (it holds {held:,} weights, the config "
                         f"describes {wanted:,}): config and weights come from different models")
    # The loaded weights replace the random ones (assign=True). Random init costs ~7 ns a weight on
    # CPU; skipping it by building on the meta device imports torch._dynamo (~1.3 s, once a process),
    # which pays only for big models (iGPT-M/L), not for the app's first page of a small one.
    big = 12 * config.n_layer * config.n_embd**2 > META_INIT_ABOVE
    with torch.device("meta" if big else "cpu"):
        model = GPT(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise ValueError(f"{weights_file}: weights do not match {cfg_file} ({str(e).splitlines()[0]} ...): "
                         "config and weights come from different models") from e
    model.eval()
    return Checkpoint(model=model, palette=palette, meta=meta, path=path)


def check_finite(state: dict[str, torch.Tensor], source) -> None:
    """Refuse weights holding NaN or infinity (a diverged training run): nothing they compute means anything."""
    bad = [name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{source}: {len(bad)} weight tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}"
                         f"{' ...' if len(bad) > 3 else ''}): the training that wrote them diverged; use an "
                         "earlier checkpoint or train again with a lower learning rate")


# ---- what a model is (`Checkpoint.summary()`) ----

def _source(path: Path | None, meta: dict) -> str:
    if meta.get("source") == "transformers ImageGPT":
        return "imported"
    if path is not None:
        for root, label in ((BUNDLED_DIR, "bundled"), (USER_DIR, "user")):
            if path.resolve().parent == root.resolve():
                return label
    return "path"


def summarize(ck: Checkpoint) -> ModelSummary:
    """A checkpoint's size, images, palette, objective, data and training history."""
    meta = ck.meta
    training = meta.get("training") or {}  # null: none recorded
    history = History.from_records(training.get("history"))
    name = meta.get("name") or (ck.path.name if ck.path else "unsaved")
    if ck.path is not None and ck.path.name.startswith("step-"):
        name = f"{ck.path.parent.name}/{ck.path.name}"
    return ModelSummary(
        name=name, path=str(ck.path) if ck.path else None, source=_source(ck.path, meta),
        parameters=ck.model.num_params(), config=ck.config.to_dict(), n_colors=ck.palette.n_colors,
        channels=ck.palette.channels, palette_fingerprint=ck.palette.fingerprint, dataset=meta.get("dataset"),
        class_names=list(meta.get("class_names") or []), step=training.get("step"),
        planned_steps=(training.get("config") or {}).get("steps"),
        val_bpd=history.last_val_bpd,
        baseline_bpd=meta.get("baseline_bpd"), history=history)


# ---- training state, kept apart from the model ----

def save_training_state(folder: Path, optimizer_state: dict, state: dict) -> None:
    """Write an optimizer's state dict (`optimizer.state_dict()`'s layout: state keyed by parameter
    index) and the run's `state` (step, history, ...) to `folder`, with the torch RNG state."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"state.{i}.{k}": v.detach().cpu().contiguous()
               for i, s in optimizer_state["state"].items() for k, v in s.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(folder / "optimizer.safetensors"))
    (folder / "state.json").write_text(json.dumps({**state, "param_groups": optimizer_state["param_groups"]}, indent=1))


def load_training_state(folder: Path) -> tuple[dict, dict]:
    """(the optimizer's state dict, the run's state) as `save_training_state` wrote them; restores the
    torch RNG state."""
    state_file, tensors_file = folder / "state.json", folder / "optimizer.safetensors"
    redo = (f"{folder.parent} cannot be resumed from: move it out of the run folder to resume from the checkpoint "
            "before it, or start a new run")
    try:
        state = json.loads(state_file.read_text())
        missing = [k for k in ("step", "history", "running_loss", "param_groups") if k not in state]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        validate.integer("step", state["step"], 0)
    except FileNotFoundError:
        raise FileNotFoundError(f"{state_file}: missing; {redo}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as e:  # TypeError: not an object
        raise ValueError(f"{state_file}: not a valid training state ({e}); {redo}") from None
    try:
        tensors = load_file(str(tensors_file))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{tensors_file}: cannot be read as safetensors ({e}); {redo}") from None
    torch.set_rng_state(tensors.pop("rng.torch"))
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        opt_state.setdefault(int(idx), {})[name] = value
    return {"state": opt_state, "param_groups": state.pop("param_groups")}, state
