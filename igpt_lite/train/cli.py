"""`igpt-lite train`: pretrain a model (resumable)."""
from __future__ import annotations

import time

from .. import checkpoint, data
from ..arguments import DEVICE, SEED, count, data_args, existing_file, positive
from ..model import PRESETS, preset
from ..palette import Palette
from .config import TrainConfig
from .loop import pretrain
from .run import TrainResult, require_resumable


def cmd_train(args) -> TrainResult:
    res = args.resolution if args.resolution is not None else data.native_resolution(args.data)
    sizes = {k: v for k, v in dict(n_layer=args.layers, n_head=args.heads, n_embd=args.width).items() if v is not None}
    if args.resume:  # resume means resume: a run with nothing to resume from is not started over silently
        require_resumable(args.out, args.steps)
    cfg = preset(args.preset, n_colors=args.colors, height=res, width=res, objective=args.objective, **sizes)
    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                       min_lr=args.lr / 10, warmup_steps=min(args.warmup, args.steps), eval_every=args.eval_every,
                       save_every=args.save_every, keep_checkpoints=args.keep, seed=args.seed, device=args.device,
                       compile=args.compile, fsdp=args.fsdp, activation_checkpointing=args.activation_checkpointing)
    palette = Palette.load(args.palette) if args.palette else None
    t0 = time.perf_counter()
    model, palette, history = pretrain(args.data, args.out, model_cfg=cfg, train_cfg=tcfg, palette=palette,
                                       resume=args.resume, progress=not args.json, root=args.root,
                                       token_cache=not args.no_token_cache)
    last = checkpoint.step_dirs(args.out)[-1]
    return TrainResult(out=last, dataset=args.data, parameters=model.num_params(), steps=args.steps,
                       seconds=time.perf_counter() - t0, val_bpd=history.last.val_bpd if history else None,
                       baseline_bpd=checkpoint.load_checkpoint(last).meta.get("baseline_bpd"), history=history)


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("train", help="pretrain a model (resumable)")
    data_args(p, "digits", "dataset (default: %(default)s)")
    p.add_argument("--out", required=True, help="run folder; checkpoints go to OUT/step-NNNNNN/")
    p.add_argument("--preset", default="small", choices=list(PRESETS), help="model size (default: %(default)s)")
    p.add_argument("--layers", type=count(1), help="default: the preset's")
    p.add_argument("--heads", type=count(1), help="default: the preset's")
    p.add_argument("--width", type=count(1), help="embedding width (default: the preset's)")
    p.add_argument("--objective", default="ar", choices=["ar", "bert"],
                   help="ar: next pixel; bert: masked pixels (default: %(default)s)")
    p.add_argument("--colors", type=count(2), default=8, help="palette size (default: %(default)s)")
    p.add_argument("--palette", type=existing_file, default=None,
                   help="a palette.json to use (default: the run's own with --resume, else fit one of --colors "
                        "colours on the training split)")
    p.add_argument("--resolution", type=count(1), default=None, help="default: the dataset's native size")
    p.add_argument("--steps", type=count(1), default=500, help="optimizer steps (default: %(default)s)")
    p.add_argument("--batch-size", type=count(1), default=32, help="images per micro-batch (default: %(default)s)")
    p.add_argument("--grad-accum", type=count(1), default=1, help="micro-batches per step (default: %(default)s)")
    p.add_argument("--lr", type=positive(), default=3e-3,
                   help="peak learning rate, cosine down to a tenth (default: %(default)s)")
    p.add_argument("--warmup", type=count(0), default=50, help="warmup steps (default: %(default)s)")
    p.add_argument("--eval-every", type=count(1), default=100, help="steps between evaluations (default: %(default)s)")
    p.add_argument("--save-every", type=count(1), default=None,
                   help="default: a fifth of --steps (at most 500), so a killed run always has one to resume")
    p.add_argument("--keep", type=count(0), default=2, help="checkpoints to keep; 0: all, for probes over training (default: %(default)s)")
    p.add_argument("--seed", type=SEED, default=0, help="training seed (default: %(default)s)")
    p.add_argument("--device", type=DEVICE, default="auto", help="auto, cpu, cuda, cuda:N or mps (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint (same data, model and palette)")
    p.add_argument("--no-token-cache", action="store_true",
                   help="encode the training split in memory instead of reading it from the token cache "
                        "($IGPT_LITE_CACHE/tokens, default ~/.cache/igpt-lite/tokens)")
    p.add_argument("--fsdp", action="store_true",
                   help="under torchrun: shard weights, gradients and optimizer state (FSDP2) instead of DDP")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute each block's activations in backward: less memory, about a third more compute")
    p.add_argument("--compile", action="store_true", help="torch.compile the model's loss (GPUs; no gain on CPU)")
    p.set_defaults(func=cmd_train)
    return [sub.choices["train"]]
