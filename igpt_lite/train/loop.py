"""Pretraining: AdamW, warm-up then cosine decay, clipping, accumulation, bf16 autocast on GPU,
validation bits/dim, atomic periodic checkpoints and exact resume.

The data order and BERT masks are functions of (seed, step), and the optimizer state and RNG are
saved with each checkpoint, so a run killed and resumed ends with the same weights as one that was
never interrupted (on CPU).
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .. import validate
from ..checkpoint import (_write_checkpoint_files, load_checkpoint, load_training_state,
                         save_training_state, step_dirs)
from ..model import GPT, GPTConfig
from ..palette import Palette
from ..scoring import evaluate_bits_per_dim
from ..storage import write_folder_atomically
from ..data.tokens import encoded_split, token_batch


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_images: int = 256
    save_every: int | None = None  # None: scaled to the run (`checkpoint_every`)
    keep_checkpoints: int = 2  # 0 keeps every saved step (for probes over training)
    seed: int = 0
    device: str = "auto"
    compile: bool = False  # torch.compile the loss (measured: no gain on CPU; for GPUs)
    fsdp: bool = False  # under torchrun: shard weights, gradients and Adam moments (FSDP2) instead of DDP
    activation_checkpointing: bool = False  # recompute each block in backward: less memory, ~1/3 more compute

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_images"):
            validate.integer(name, getattr(self, name), 1)
        for name in ("warmup_steps", "keep_checkpoints"):
            validate.integer(name, getattr(self, name), 0)
        if self.save_every is not None:
            validate.integer("save_every", self.save_every, 1)
        validate.positive("lr", self.lr)
        for name in ("min_lr", "weight_decay", "grad_clip"):
            validate.non_negative(name, getattr(self, name))
        validate.seed("seed", self.seed)

    @property
    def checkpoint_every(self) -> int:
        """save_every, or by default a fifth of the run (at most 500 steps): a run killed part way
        always has a checkpoint to resume from, whatever its length."""
        return self.save_every or max(1, min(500, self.steps // 5))

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))


def pick_device(name: str = "auto") -> torch.device:
    validate.device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def distributed() -> tuple[int, int]:
    """(rank, world size): under torchrun the process group is initialised here (NCCL on GPUs,
    gloo on CPUs); a plain run is (0, 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1
    if not dist.is_initialized():
        if torch.cuda.is_available():  # before NCCL starts: a process's collectives use its own GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


LOCK_NAME = ".lock"


@contextmanager
def run_lock(out_dir):
    """Own a run folder while training: `out_dir/.lock` (created with the folder) holds the owner's
    PID, host, start time and command, and an exclusive flock on it. A second run on the folder is
    refused at once with the owner's details; the kernel drops the flock when the owner dies (even
    by kill -9), so a lock left behind is stale and simply taken over. Also proves before any work
    that the folder can be written."""
    out_dir = Path(out_dir)
    path = out_dir / LOCK_NAME
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise PermissionError(f"cannot write the run folder {out_dir} ({e.strerror}); choose another "
                              "output folder (--out)") from None
    with os.fdopen(fd, "r+") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                owner = json.loads(f.read() or "{}")
            except json.JSONDecodeError:
                owner = {}
            raise FileExistsError(
                f"{out_dir} is in use by another training run (pid {owner.get('pid', '?')} on "
                f"{owner.get('host', '?')}, since {owner.get('started', '?')}: {owner.get('command', '?')}); "
                "wait for it to end, or choose another output folder") from None
        except ImportError:  # no flock (Windows): the lock file records the owner, unenforced
            pass
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}))
        f.flush()
        for leftover in out_dir.glob(".tmp-step-*"):  # a checkpoint being written when a run was killed
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()  # released: an empty lock file is nobody's
            if created and [p.name for p in out_dir.iterdir()] == [LOCK_NAME]:  # a run that wrote nothing
                path.unlink()
                out_dir.rmdir()


_HELD_LOCKS: set[Path] = set()  # run folders this process owns (pretrain holds the lock train takes)


def _owns_run_folder(fn):
    """Run `fn` holding `run_lock(out_dir)` (on rank 0 of a torchrun job: it alone writes)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out_dir = Path(signature.bind(*args, **kwargs).arguments["out_dir"]).resolve()
        if out_dir in _HELD_LOCKS or int(os.environ.get("RANK", "0")) != 0:
            return fn(*args, **kwargs)
        with run_lock(out_dir):
            _HELD_LOCKS.add(out_dir)
            try:
                return fn(*args, **kwargs)
            finally:
                _HELD_LOCKS.discard(out_dir)

    return wrapper


RUN_FIELDS = ("dataset", "resolution", "channels")  # what the data was, as the checkpoint's meta records it


def _run_steps(out_dir, resume: bool) -> list[Path]:
    """The run's checkpoints, to resume from; refused if there are some and this is not a resume.
    (A library resume with none starts the run, which scripts rerun until done rely on.)"""
    existing = step_dirs(out_dir)
    if existing and not resume:
        raise FileExistsError(f"{out_dir} already holds checkpoints ({existing[-1].name}); "
                              "resume it (--resume) or choose another output folder")
    return existing


def check_resume(last_step, model_cfg: GPTConfig, meta: dict | None = None, palette: Palette | None = None) -> None:
    """Refuse to continue the run whose latest checkpoint is `last_step` with another model config,
    objective, dataset or palette; the message lists every difference."""
    saved = json.loads((Path(last_step) / "config.json").read_text())
    diffs = []
    then, now = saved.get("model", {}), model_cfg.to_dict()
    if then.get("objective") != now["objective"]:
        diffs.append(f"objective: the run is {then.get('objective')!r}, this is {now['objective']!r}")
    diffs += [f"model {k}: the run has {then.get(k)!r}, this has {now[k]!r}"
              for k in now if k != "objective" and then.get(k) != now[k]]
    diffs += [f"{k}: the run has {saved.get(k)!r}, this has {(meta or {})[k]!r}"
              for k in RUN_FIELDS if k in (meta or {}) and k in saved and saved[k] != meta[k]]
    if palette is not None and palette.fingerprint != saved.get("palette_fingerprint"):
        diffs.append(f"palette: the run's is {saved.get('palette_fingerprint')}, this one is {palette.fingerprint} "
                     "(leave out --palette to use the run's own)")
    if diffs:
        raise ValueError(f"cannot resume {Path(last_step).parent}: " + "; ".join(diffs) +
                         ". Resume with the run's own settings, or train into another output folder")


def _check_free_space(out_dir: Path, model: GPT, keep: int) -> None:
    """A checkpoint (weights + two Adam moments, float32) times those kept plus the one being written."""
    need = model.num_params() * 4 * 3 * ((keep or 1) + 1)
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise OSError(f"{out_dir}: {free / 1e9:.2f} GB free, the checkpoints need about {need / 1e9:.2f} GB; "
                      "free space or choose another output folder")


class _Loss(torch.nn.Module):
    """The model's loss as a module's forward, so that DistributedDataParallel sees the call."""

    def __init__(self, model: GPT):
        super().__init__()
        self.model = model

    def forward(self, tokens, generator):
        return self.model.loss(tokens, generator=generator)


def batch_indices(n: int, batch_size: int, micro_step: int, seed: int) -> torch.Tensor:
    """The images of micro-batch `micro_step`: epochs are seeded permutations, last partial batch dropped."""
    per_epoch = n // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the training set ({n} images)")
    epoch, i = divmod(micro_step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[i * batch_size : (i + 1) * batch_size]


def _param_names(model: GPT) -> list[str]:
    """Parameter names in the optimizer's order (its state dict numbers them so): matrices and
    embeddings (weight-decayed), then vectors."""
    named = list(model.named_parameters())
    return [n for n, p in named if p.dim() >= 2] + [n for n, p in named if p.dim() < 2]


def _optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.AdamW:
    params = dict(model.named_parameters())
    names = _param_names(model)
    decay = [params[n] for n in names if params[n].dim() >= 2]
    no_decay = [params[n] for n in names if params[n].dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = pick_device(cfg.device).type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)


def _shard(model: GPT, device: torch.device) -> None:
    """FSDP2 (`fully_shard`) in place: each block is one group, the rest (embeddings, final norm,
    head) the root's. Weights, gradients and Adam moments are split over the processes; a block's
    weights are gathered whole only while it runs."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _full_states(model: GPT, opt: torch.optim.Optimizer, sharded: bool) -> tuple[dict, dict]:
    """The model's weights and the optimizer's state dict, whole and in the unsharded layout (state
    keyed by parameter index), so that a checkpoint reads the same however it was trained. Sharded:
    a collective every process calls; rank 0 gets them (on CPU), the others empty dicts."""
    if not sharded:
        return model.state_dict(), opt.state_dict()
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights, osd = get_model_state_dict(model, options=options), get_optimizer_state_dict(model, opt, options=options)
    if not osd:
        return weights, osd
    index = {name: i for i, name in enumerate(_param_names(model))}
    return weights, {"state": {index[k]: v for k, v in osd["state"].items()},
                     "param_groups": [{**g, "params": [index[k] for k in g["params"]]} for g in osd["param_groups"]]}


def _load_optimizer(model: GPT, opt: torch.optim.Optimizer, osd: dict, sharded: bool) -> None:
    """Load a whole optimizer state dict (indexed, as `_full_states` gives it); each process keeps its shard."""
    if not sharded:
        opt.load_state_dict(osd)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _param_names(model)
    by_name = {"state": {names[i]: v for i, v in osd["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in osd["param_groups"]]}
    set_optimizer_state_dict(model, opt, by_name, options=StateDictOptions(full_state_dict=True))


@_owns_run_folder
def train(model: GPT, palette: Palette, train_tokens, val_tokens, out_dir, cfg: TrainConfig, meta: dict | None = None,
          resume: bool = False, progress: bool = True,
          on_eval: Callable[[list[dict], GPT], None] | None = None) -> list[dict]:
    """Train `model` in place on token sequences; checkpoints go to `out_dir/step-NNNNNN/`.

    train_tokens, val_tokens: N×T token ids, a long tensor or any integer array (e.g. the uint16
    memmap of `tokens.encoded_split`), read a batch at a time.
    Returns the history: one dict per evaluation (step, train and val bits/dim, lr, tokens/s).
    on_eval(history so far, model): called after each evaluation (rank 0), with the model in eval
    mode, e.g. to redraw a live loss plot or sample; its time is left out of tokens/s.

    Under torchrun each process takes an equal share of every batch (so `batch_size` stays the
    global batch and the data order is the same as in one process); gradients are averaged by
    DistributedDataParallel, or with `cfg.fsdp` by FSDP2, which also shards the weights and the
    optimizer (the model stays sharded after training: load the checkpoint for a whole one). Rank 0
    writes the checkpoints (in the same format either way) and reports.
    """
    out_dir = Path(out_dir)
    rank, world = distributed()
    sharded = cfg.fsdp and world > 1  # one process has nothing to shard over: it trains as always
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} must be divisible by the {world} processes")
    if sharded and on_eval is not None:
        raise ValueError("on_eval cannot be used with fsdp: the sharded model runs only in all processes at once")
    batch_indices(len(train_tokens), cfg.batch_size, 0, cfg.seed)  # refuses a batch larger than the data
    val_tokens = token_batch(val_tokens, torch.arange(min(cfg.eval_images, len(val_tokens))))
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    progress = progress and rank == 0
    model.to(device).train()
    model.checkpoint_activations = cfg.activation_checkpointing
    existing = _run_steps(out_dir, resume)
    step, history, running = 0, [], None
    if resume and not existing and progress:  # said, not silent (the CLI's --resume refuses instead)
        print(f"resume: {out_dir} holds no checkpoint yet; starting at step 0", file=sys.stderr)
    if existing:  # whole weights into every process, before any sharding
        last = existing[-1]
        check_resume(last, model.config, meta, palette)
        model.load_state_dict(load_checkpoint(last, device=device).model.state_dict())
    meta = dict(meta or {})
    if rank == 0:
        _check_free_space(out_dir, model, cfg.keep_checkpoints)
    if sharded:
        _shard(model, device)
    opt = _optimizer(model, cfg)
    if existing:
        osd, state = load_training_state(last / "training")
        _load_optimizer(model, opt, osd, sharded)
        step, history, running = state["step"], state["history"], state["running_loss"]

    def save(step: int):
        weights, osd = _full_states(model, opt, sharded)  # sharded: every process takes part
        if rank != 0:
            return

        def write(folder):
            _write_checkpoint_files(folder, model, palette,
                                    {**meta, "training": {"step": step, "config": asdict(cfg), "history": history}},
                                    state=weights)
            save_training_state(folder / "training", osd, {"step": step, "history": history, "running_loss": running})
        write_folder_atomically(out_dir / f"step-{step:06d}", write)
        if cfg.keep_checkpoints:
            for old in step_dirs(out_dir)[: -cfg.keep_checkpoints]:
                shutil.rmtree(old)

    use_amp = device.type == "cuda"
    loss_module = _Loss(model)
    if world > 1 and not sharded:
        loss_module = DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = torch.compile(loss_module) if cfg.compile else loss_module  # measured: no gain on CPU
    tokens_per_step = cfg.batch_size * cfg.grad_accum * train_tokens.shape[1]
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train", unit="step")
    t0, steps_timed = time.perf_counter(), 0
    while step < cfg.steps:
        lr = cfg.lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        loss_sum = 0.0
        for micro in range(cfg.grad_accum):
            g_idx = step * cfg.grad_accum + micro
            idx = batch_indices(len(train_tokens), cfg.batch_size, g_idx, cfg.seed)[rank::world]
            batch = token_batch(train_tokens, idx).to(device)
            last_micro = micro == cfg.grad_accum - 1
            if sharded:  # one reduce-scatter a step
                model.set_requires_gradient_sync(last_micro)
            with nullcontext() if world == 1 or sharded or last_micro else loss_module.no_sync():  # one all-reduce
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    loss = loss_fn(batch, generator=torch.Generator().manual_seed(cfg.seed * 7919 + g_idx))
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.item() / cfg.grad_accum
        if world > 1:
            total = torch.tensor([loss_sum], device=device)
            dist.all_reduce(total)
            loss_sum = total.item() / world
        if not math.isfinite(loss_sum):  # stop before a NaN reaches the weights and a checkpoint
            last = step_dirs(out_dir)
            raise FloatingPointError(
                f"training diverged at step {step + 1} (loss {loss_sum}); the last good checkpoint is "
                f"{last[-1] if last else 'none'}: lower the learning rate (lr {cfg.lr:g}) and train again")
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        steps_timed += 1
        running = loss_sum if running is None else 0.95 * running + 0.05 * loss_sum
        bar.update(1)
        bar.set_postfix(bpd=f"{running / math.log(2):.3f}", lr=f"{lr:.1e}")
        # a sharded model runs only in all processes at once: they all evaluate (the same images)
        if (rank == 0 or sharded) and (step % cfg.eval_every == 0 or step == cfg.steps):
            elapsed = time.perf_counter() - t0
            val = evaluate_bits_per_dim(model, val_tokens, seed=cfg.seed)
            if rank == 0:
                history.append({"step": step, "train_bpd": running / math.log(2), "val_bpd": val, "lr": lr,
                                "tokens_per_s": tokens_per_step * steps_timed / elapsed})
            if progress:  # on stderr: stdout is kept for the CLI's JSON
                bar.write(f"step {step}: train {history[-1]['train_bpd']:.4f} val {val:.4f} bits/dim, "
                          f"{history[-1]['tokens_per_s']:.0f} tokens/s", file=sys.stderr)
            if on_eval is not None:
                model.eval()
                on_eval(list(history), model)
                model.train()
            t0, steps_timed = time.perf_counter(), 0
        if (rank == 0 or sharded) and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save(step)
    bar.close()
    if world > 1:
        dist.barrier()  # the last checkpoint exists before any process returns
    model.eval()
    return history


@contextmanager
def _rank_zero_first(rank: int, world: int):
    """Under torchrun, rank 0 runs the body first (e.g. builds a cache) and the others after it."""
    if world > 1 and rank != 0:
        dist.barrier()
    yield
    if world > 1 and rank == 0:
        dist.barrier()


@_owns_run_folder
def pretrain(dataset: str, out_dir, *, model_cfg: "GPTConfig", train_cfg: TrainConfig, resolution: int | None = None,
             palette: Palette | None = None, resume: bool = False, progress: bool = True, token_cache: bool = True,
             root=None, on_eval: Callable[[list[dict], GPT], None] | None = None) -> tuple[GPT, Palette, list]:
    """The whole recipe on a dataset (`data.load_dataset`'s name): palette (fitted on the training split unless given or
    resumed), model, training (on_eval: see `train`). Returns (model, palette, history).

    token_cache: train from the split encoded once and kept on disk (`tokens.encoded_split`, a
    uint16 memmap read a batch at a time); False encodes it in memory, as long ids, every run.
    root: where real datasets live (`data.data_root`)."""
    from ..data import load_dataset

    res = resolution or model_cfg.height
    if (model_cfg.height, model_cfg.width) != (res, res):
        raise ValueError(f"model is {model_cfg.height}×{model_cfg.width} but the data would be {res}×{res}")
    existing = _run_steps(out_dir, resume)
    if existing:  # before any work: the run's dataset, model and palette are this one's
        check_resume(existing[-1], model_cfg, {"dataset": dataset, "resolution": res}, palette)
    val_set = load_dataset(dataset, "val", resolution=res, root=root)
    if existing:
        palette = load_checkpoint(existing[-1]).palette
    elif palette is None:
        palette = Palette.fit(load_dataset(dataset, "train", resolution=res, root=root).images, model_cfg.n_colors,
                              seed=train_cfg.seed)
    if palette.n_colors != model_cfg.n_colors or palette.channels != val_set.channels:
        raise ValueError(f"palette ({palette.n_colors} colours, {palette.channels} channel(s)) does not fit a "
                         f"{model_cfg.n_colors}-colour model of {dataset} ({val_set.channels} channel(s))")
    if token_cache:
        rank, world = distributed()
        with _rank_zero_first(rank, world):  # one process encodes; the others open its files
            train_tokens = encoded_split(dataset, "train", palette, res, root=root)
            val_tokens = torch.from_numpy(encoded_split(dataset, "val", palette, res, root=root).astype(np.int64))
    else:
        train_tokens = palette.encode(load_dataset(dataset, "train", resolution=res, root=root).images)
        val_tokens = palette.encode(val_set.images)
    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg)
    meta = {"dataset": dataset, "resolution": res, "channels": val_set.channels,
            "class_names": val_set.class_names,
            "baseline_bpd": palette.token_entropy_bits(val_tokens),
            "palette_error": palette.round_trip_error(val_set.images, tokens=val_tokens)}
    history = train(model, palette, train_tokens, val_tokens, Path(out_dir), train_cfg, meta=meta, resume=resume,
                    progress=progress, on_eval=on_eval)
    return model, palette, history
