"""Training throughput, side by side with the input pipeline that feeds it.

Input pipeline (host side, one batch at a time): rows of the token cache (a uint16 memmap, what
`igpt-lite train` reads) widened to long, against encoding the batch's images with the palette on
the fly (nearest colour), in tokens/s. Model: one training step (forward, backward, gradient
clipping, AdamW; bf16 autocast and fused AdamW on CUDA, as `train` does) on random tokens, in
tokens/s, with peak memory and model FLOPs utilisation (MFU) the nanoGPT way:
6·N + 12·n_layer·n_embd·T FLOPs per token (N: the parameters that multiply, i.e. all but the token and
position embeddings, which are lookups), over the device's peak dense bf16 FLOPS.

    python benchmarks/train.py                      # CPU: the CPU presets; CUDA: iGPT-S at 32×32
    python benchmarks/train.py --preset igpt-s --batch-size 64 --compile --device cuda
    python benchmarks/train.py --threads 1 --json
"""
import argparse
import json
import resource
import tempfile
import time

import numpy as np
import torch

from igpt_lite.data import load_dataset
from igpt_lite.model import GPT, preset
from igpt_lite.palette import Palette
from igpt_lite.data.tokens import encoded_split, token_batch
from igpt_lite.train import batch_indices

# peak dense bf16 tensor-core FLOPS (no sparsity), from the vendors' data sheets; matched in the device name
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
CPU_PRESETS = ("tiny", "small", "base")
# (dataset, resolution, colours): the CPU presets' data (MNIST, 8 grey levels) and iGPT's shape
# (32×32 RGB, 512 colours) on the embedded photo crops
PIPELINES = (("mnist", 28, 8), ("photos", 32, 512))


def peak_flops_for(device_name: str) -> float | None:
    for key, flops in PEAK_BF16_FLOPS.items():
        if key in device_name:
            return flops
    return None


def flops_per_token(model: GPT) -> int:
    cfg = model.config
    n = model.num_params() - model.wte.weight.numel() - model.wpe.weight.numel()
    return 6 * n + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_model(cfg, batch_size: int, steps: int, device: str, *, compile: bool = False,
                activation_checkpointing: bool = False, peak_flops: float | None = None) -> dict:
    """Tokens/s of a training step of a `cfg` model (the first step, and compilation, untimed)."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = GPT(cfg).to(device).train()
    model.checkpoint_activations = activation_checkpointing
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    loss_fn = torch.compile(model.loss) if compile else model.loss
    x = torch.randint(0, cfg.n_colors, (batch_size, cfg.block_size), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(steps + 1):
        if i == 1:  # the first step warms up allocators and kernels (and compiles)
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    seconds = (time.perf_counter() - t0) / steps
    tokens_per_s = batch_size * cfg.block_size / seconds
    fpt = flops_per_token(model)
    if device.type == "cuda":
        memory = {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
                  "memory_kind": "CUDA max_memory_allocated"}
    else:  # ru_maxrss is in KiB on Linux: the whole process's peak, data and earlier rows included
        memory = {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "memory_kind": "process peak RSS"}
    return {"parameters": model.num_params(), "batch": batch_size, "tokens": cfg.block_size,
            "step_ms": 1000 * seconds, "tokens_per_s": tokens_per_s, "flops_per_token": fpt,
            "tflops": tokens_per_s * fpt / 1e12, "mfu": tokens_per_s * fpt / peak_flops if peak_flops else None,
            **memory}


def bench_pipeline(dataset: str, resolution: int, n_colors: int, batch_size: int, steps: int) -> dict:
    """Tokens/s of one batch from the token cache (memmap rows → long tensor) and of encoding the
    same batch's images with the palette; a random palette (the lookup's cost does not depend on
    the colours), the cache built in a temporary folder."""
    images = load_dataset(dataset, "train", resolution=resolution).images
    rng = np.random.default_rng(0)
    palette = Palette(rng.uniform(-1, 1, (n_colors, images.shape[-1])).astype(np.float32))
    with tempfile.TemporaryDirectory() as cache:
        tokens = encoded_split(dataset, "train", palette, resolution, cache_dir=cache)
        idx = [batch_indices(len(images), batch_size, i, seed=0) for i in range(steps)]
        timings = {}
        for name, read in (("memmap", lambda i: token_batch(tokens, i)),
                           ("encode", lambda i: palette.encode(images[i.numpy()]))):
            read(idx[0])
            t0 = time.perf_counter()
            for i in idx:
                read(i)
            timings[name] = batch_size * tokens.shape[1] * steps / (time.perf_counter() - t0)
        del tokens
    return {"data": dataset, "resolution": resolution, "channels": images.shape[-1], "colors": n_colors,
            "batch": batch_size, "memmap_tokens_per_s": timings["memmap"], "encode_tokens_per_s": timings["encode"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--preset", nargs="+", default=None,
                   help=f"model presets (default: igpt-s on CUDA, {' '.join(CPU_PRESETS)} on CPU)")
    p.add_argument("--resolution", type=int, default=None, help="default: 32 on CUDA, 28 on CPU")
    p.add_argument("--colors", type=int, default=None, help="default: 512 on CUDA, 8 on CPU")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 on CUDA, 32 on CPU")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 on CUDA, 5 on CPU)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile the loss (first step untimed)")
    p.add_argument("--activation-checkpointing", action="store_true")
    p.add_argument("--peak-flops", type=float, default=None,
                   help="the device's peak FLOPS for MFU (default: bf16 dense of H100/H200 989e12, A100 312e12)")
    p.add_argument("--no-pipeline", action="store_true", help="skip the input pipeline rows")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    name = torch.cuda.get_device_name(torch.device(args.device)) if cuda else "cpu"
    peak = args.peak_flops or (peak_flops_for(name) if cuda else None)
    presets = args.preset or (["igpt-s"] if cuda else list(CPU_PRESETS))
    res = args.resolution or (32 if cuda else 28)
    colors = args.colors or (512 if cuda else 8)
    batch = args.batch_size or (64 if cuda else 32)
    steps = args.steps or (20 if cuda else 5)
    pipeline = [] if args.no_pipeline else [bench_pipeline(d, r, k, batch, steps) for d, r, k in PIPELINES]
    models = [{"preset": name_, "resolution": res, "colors": colors,
               **bench_model(preset(name_, n_colors=colors, height=res, width=res), batch, steps, args.device,
                             compile=args.compile, activation_checkpointing=args.activation_checkpointing,
                             peak_flops=peak)}
              for name_ in presets]
    result = {"device": name, "threads": torch.get_num_threads(), "peak_flops": peak, "compile": args.compile,
              "activation_checkpointing": args.activation_checkpointing, "pipeline": pipeline, "models": models}
    if args.json:
        print(json.dumps(result))
        return result
    print(f"{name}, {torch.get_num_threads()} thread(s), batch {batch}, {steps} timed steps")
    for r in pipeline:
        print(f"input {r['data']:7} {r['resolution']}×{r['resolution']}×{r['channels']}, {r['colors']:3} colours: "
              f"token cache {r['memmap_tokens_per_s']:12,.0f} tokens/s, encoding {r['encode_tokens_per_s']:11,.0f}")
    for r in models:
        mfu = f"MFU {100 * r['mfu']:.1f}%" if r["mfu"] is not None else "MFU n/a (no --peak-flops)"
        print(f"train {r['preset']:7} {r['parameters'] / 1e6:6.2f}M params, {r['resolution']}×{r['resolution']}: "
              f"{r['tokens_per_s']:12,.0f} tokens/s, {r['step_ms']:8.1f} ms/step, {r['tflops']:.3f} TFLOPS, {mfu}, "
              f"peak {r['peak_memory_mb']:,.0f} MB ({r['memory_kind']})")
    return result


if __name__ == "__main__":
    main()
