"""Training under torchrun: the process group, FSDP2 sharding, whole (unsharded) states for the
checkpoints, and rank 0 first where one process must build what the others read."""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist

from ..model import GPT


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


def param_names(model: GPT) -> list[str]:
    """Parameter names in the optimizer's order (its state dict numbers them so): matrices and
    embeddings (weight-decayed), then vectors."""
    named = list(model.named_parameters())
    return [n for n, p in named if p.dim() >= 2] + [n for n, p in named if p.dim() < 2]


def shard(model: GPT, device: torch.device) -> None:
    """FSDP2 (`fully_shard`) in place: each block is one group, the rest (embeddings, final norm,
    head) the root's. Weights, gradients and Adam moments are split over the processes; a block's
    weights are gathered whole only while it runs."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def full_states(model: GPT, opt: torch.optim.Optimizer, sharded: bool) -> tuple[dict, dict]:
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
    index = {name: i for i, name in enumerate(param_names(model))}
    return weights, {"state": {index[k]: v for k, v in osd["state"].items()},
                     "param_groups": [{**g, "params": [index[k] for k in g["params"]]} for g in osd["param_groups"]]}


def load_optimizer(model: GPT, opt: torch.optim.Optimizer, osd: dict, sharded: bool) -> None:
    """Load a whole optimizer state dict (indexed, as `full_states` gives it); each process keeps its shard."""
    if not sharded:
        opt.load_state_dict(osd)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = param_names(model)
    by_name = {"state": {names[i]: v for i, v in osd["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in osd["param_groups"]]}
    set_optimizer_state_dict(model, opt, by_name, options=StateDictOptions(full_state_dict=True))


@contextmanager
def rank_zero_first(rank: int, world: int):
    """Under torchrun, rank 0 runs the body first (e.g. builds a cache) and the others after it."""
    if world > 1 and rank != 0:
        dist.barrier()
    yield
    if world > 1 and rank == 0:
        dist.barrier()

