"""Pretraining: AdamW, warm-up then cosine decay, clipping, accumulation, bf16 autocast on GPU,
validation bits/dim, atomic periodic checkpoints and exact resume.

The data order and BERT masks are functions of (seed, step), and the optimizer state and RNG are
saved with each checkpoint, so a run killed and resumed ends with the same weights as one that was
never interrupted (on CPU).
"""
from __future__ import annotations

import functools
import math
import os
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .. import validate
from ..checkpoint import (_write_checkpoint_files, load_checkpoint, load_training_state,
                         save_training_state, step_dirs)
from ..data.registry import FOLDER, dataset_folder
from ..data.tokens import encoded_split, source_files_id, token_batch
from ..history import EvalPoint, History
from ..memory import check_memory
from ..model import GPT, GPTConfig
from ..palette import Palette
from ..scoring import evaluate_bits_per_dim
from ..storage import write_folder_atomically
from ..threads import check_threads
from .config import TrainConfig, pick_device
from .distributed import distributed, full_states, load_optimizer, param_names, rank_zero_first, shard
from .run import check_apart, check_free_space, check_resume, owns_run_folder, run_steps


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


def _optimizer(model: GPT, cfg: TrainConfig) -> torch.optim.AdamW:
    params = dict(model.named_parameters())
    names = param_names(model)
    decay = [params[n] for n in names if params[n].dim() >= 2]
    no_decay = [params[n] for n in names if params[n].dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = pick_device(cfg.device).type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)


@owns_run_folder
def train(model: GPT, palette: Palette, train_tokens, val_tokens, out_dir, cfg: TrainConfig, meta: dict | None = None,
          resume: bool = False, progress: bool = True,
          on_eval: Callable[[History, GPT], None] | None = None) -> History:
    """Train `model` in place on token sequences; checkpoints go to `out_dir/step-NNNNNN/`.

    train_tokens, val_tokens: N×T token ids, a long tensor or any integer array (e.g. the uint16
    memmap of `tokens.encoded_split`), read a batch at a time.
    Returns the history: one `EvalPoint` per evaluation (step, train and val bits/dim, lr, tokens/s).
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
    existing = run_steps(out_dir, resume)
    step, history, running = 0, History(), None
    if resume and not existing and progress:  # said, not silent (the CLI's --resume refuses instead)
        print(f"resume: {out_dir} holds no checkpoint yet; starting at step 0", file=sys.stderr)
    if existing:  # whole weights into every process, before any sharding
        last = existing[-1]
        check_resume(last, model.config, meta, palette)
        model.load_state_dict(load_checkpoint(last, device=device).model.state_dict())
    meta = dict(meta or {})
    if rank == 0:
        check_free_space(out_dir, model, cfg.keep_checkpoints)
    if sharded:
        shard(model, device)
    opt = _optimizer(model, cfg)
    if existing:
        osd, state = load_training_state(last / "training")
        load_optimizer(model, opt, osd, sharded)
        step, history, running = state["step"], History.from_records(state["history"]), state["running_loss"]

    def save(step: int):
        weights, osd = full_states(model, opt, sharded)  # sharded: every process takes part
        if rank != 0:
            return

        def write(folder):
            _write_checkpoint_files(folder, model, palette,
                                    {**meta, "training": {"step": step, "config": asdict(cfg),
                                                      "history": history.to_records()}},
                                    state=weights)
            save_training_state(folder / "training", osd,
                                {"step": step, "history": history.to_records(), "running_loss": running})
        try:
            write_folder_atomically(out_dir / f"step-{step:06d}", write)
        except OSError as e:  # e.g. a full disk: the checkpoints before this one are whole
            last = step_dirs(out_dir)
            raise type(e)(f"{e.strerror or e}; the checkpoint of step {step} was not saved, "
                          + (f"the last one is {last[-1].name}: continue with --resume" if last else
                             "and the run has none yet")) from None
        if cfg.keep_checkpoints:
            for old in step_dirs(out_dir)[: -cfg.keep_checkpoints]:
                old.unlink() if old.is_symlink() else shutil.rmtree(old)  # a link goes, never what it names

    use_amp = device.type == "cuda"
    loss_module = _Loss(model)
    if world > 1 and not sharded:
        loss_module = DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = torch.compile(loss_module) if cfg.compile else loss_module  # measured: no gain on CPU
    tokens_per_step = cfg.batch_size * cfg.grad_accum * train_tokens.shape[1]
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train", unit="step")
    t0, steps_timed = time.perf_counter(), 0
    while step < cfg.steps:
        check_threads()  # a neighbour may have started or stopped since the last step
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
                history.append(EvalPoint(step=step, train_bpd=running / math.log(2), val_bpd=val, lr=lr,
                                         tokens_per_s=tokens_per_step * steps_timed / elapsed))
            if progress:  # on stderr: stdout is kept for the CLI's JSON
                bar.write(f"step {step}: train {history.last.train_bpd:.4f} val {val:.4f} bits/dim, "
                          f"{history.last.tokens_per_s:.0f} tokens/s", file=sys.stderr)
            if on_eval is not None:
                model.eval()
                on_eval(history.copy(), model)
                model.train()
            t0, steps_timed = time.perf_counter(), 0
        if (rank == 0 or sharded) and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save(step)
    bar.close()
    if world > 1:
        dist.barrier()  # the last checkpoint exists before any process returns
    model.eval()
    return history


def _outside_the_data(fn):
    """Refuse a run folder that overlaps the data folder before it is locked (or created)."""
    @functools.wraps(fn)
    def wrapper(dataset, out_dir, **kwargs):
        check_apart(out_dir, dataset_folder(dataset, kwargs.get("root")))
        return fn(dataset, out_dir, **kwargs)
    return wrapper


@_outside_the_data
@owns_run_folder
def pretrain(dataset: str, out_dir, *, model_cfg: GPTConfig, train_cfg: TrainConfig, resolution: int | None = None,
             palette: Palette | None = None, resume: bool = False, progress: bool = True, token_cache: bool = True,
             root=None, on_eval: Callable[[History, GPT], None] | None = None) -> tuple[GPT, Palette, History]:
    """The whole recipe on a dataset (`data.load_dataset`'s name): palette (fitted on the training split unless given or
    resumed), model, training (on_eval: see `train`). Returns (model, palette, history).

    token_cache: train from the split encoded once and kept on disk (`tokens.encoded_split`, a
    uint16 memmap read a batch at a time); False encodes it in memory, as long ids, every run.
    root: where real datasets live (`data.data_root`).

    Example::

        model, palette, history = pretrain("digits", "runs/digits", model_cfg=preset("small", n_colors=8),
                                           train_cfg=TrainConfig(steps=500))
        history.last.val_bpd
    """
    from ..data import load_dataset

    side = validate.square_side(model_cfg.height, model_cfg.width)  # datasets are loaded square
    res = resolution or side
    if res != side:
        raise ValueError(f"model is {side}×{side} but the data would be {res}×{res}")
    if not train_cfg.fsdp:  # (sharded, each GPU holds a part): --resolution 256 refused before the data is loaded
        check_memory(model_cfg, "train", train_cfg.batch_size, device=pick_device(train_cfg.device),
                     activation_checkpointing=train_cfg.activation_checkpointing)
    # a folder dataset's files (names, sizes, times): a resume on changed files would train on other data
    data_files = {"data_files": source_files_id(dataset, root)} if dataset.startswith(FOLDER) else {}
    existing = run_steps(out_dir, resume)
    if existing:  # before any work: the run's dataset, model and palette are this one's
        check_resume(existing[-1], model_cfg, {"dataset": dataset, "resolution": res, **data_files}, palette)
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
        with rank_zero_first(rank, world):  # one process encodes; the others open its files
            train_tokens = encoded_split(dataset, "train", palette, res, root=root)
            val = encoded_split(dataset, "val", palette, res, root=root)
            val_tokens = token_batch(val, torch.arange(len(val)))
    else:
        train_tokens = palette.encode(load_dataset(dataset, "train", resolution=res, root=root).images)
        val_tokens = palette.encode(val_set.images)
    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg)
    meta = {"dataset": dataset, "resolution": res, "channels": val_set.channels, **data_files,
            "class_names": val_set.class_names,
            "baseline_bpd": palette.token_entropy_bits(val_tokens),
            "palette_error": palette.round_trip_error(val_set.images, tokens=val_tokens)}
    history = train(model, palette, train_tokens, val_tokens, Path(out_dir), train_cfg, meta=meta, resume=resume,
                    progress=progress, on_eval=on_eval)
    return model, palette, history
