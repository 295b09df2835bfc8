"""Sampling speed: this sampler (KV cache) against the same model without the cache and against
Hugging Face's ImageGPTForCausalImageModeling.generate on an equal-size config (random weights),
side by side in one process. Batch of 8 completions.

    python benchmarks/sampling.py [--json] [--threads N] [--repeats R] [--skip-nocache-igpt] [--models mnist mnist-small]
    python benchmarks/sampling.py --official [--batch 4] [--pixels 64] [--json]

Configs: the bundled MNIST model(s) (28×28, completing the bottom half of held-out digits) and an
iGPT-shaped model (8 layers × 256, 32×32, 512 colours, random weights, sampling 1,023 pixels).

--official: the official iGPT-S size (24 layers × 8 heads × 512, 1,024 pixels, 512 colours, random
weights): the last `--pixels` pixels of `--batch` images, ours against transformers' generate, then
one decode step at 1,023 cached positions taken apart with torch's profiler (the linear layers'
weights, attention over the cache, writing the cache, the 512-way softmax and the draw) against the
memory-traffic bound: (weight bytes + key/value cache bytes read) / this machine's copy bandwidth.
"""
import argparse
import json
import statistics
import time

import torch

from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.data import load_dataset
from igpt_lite.model import GPT, GPTConfig, preset
from igpt_lite.sample import generate


def hf_model(cfg: GPTConfig):
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

    hf_cfg = ImageGPTConfig(vocab_size=cfg.n_colors + 1, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                            n_layer=cfg.n_layer, n_head=cfg.n_head, attn_implementation="eager")
    return ImageGPTForCausalImageModeling(hf_cfg).eval()


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(name, model: GPT, prompt: torch.Tensor, repeats: int, nocache: bool) -> dict:
    cfg = model.config
    steps = cfg.block_size - prompt.shape[1]
    ours = timed(lambda: generate(model, prompt, seed=0), repeats)
    row = {"config": name, "batch": len(prompt), "steps": steps, "ours_s": ours}
    if nocache:
        row["nocache_s"] = timed(lambda: generate(model, prompt, seed=0, use_cache=False), 1)
        row["speedup_vs_nocache"] = row["nocache_s"] / ours
    hf = hf_model(cfg)
    start = torch.full((len(prompt), 1), cfg.special_id)
    hf_input = torch.cat([start, prompt], 1)

    @torch.inference_mode()
    def run_hf():
        hf.generate(input_ids=hf_input, max_length=cfg.block_size + 1, do_sample=True, top_k=None,
                    pad_token_id=cfg.special_id)
    row["hf_generate_s"] = timed(run_hf, repeats)
    row["speedup_vs_hf"] = row["hf_generate_s"] / ours
    return row


def bandwidth() -> float:
    """Bytes per second of a 256 MB tensor copy (read + write), the best of 5."""
    a = torch.ones(64 * 2**20)
    b = torch.empty_like(a)
    best = min(timed(lambda: b.copy_(a), 1) for _ in range(5))
    return 2 * a.numel() * a.element_size() / best


GROUPS = {  # profiler op -> part of a decode step
    "aten::addmm": "linear layers (weights)", "aten::mm": "linear layers (weights)",
    "aten::linear": None, "aten::matmul": None,
    "aten::_scaled_dot_product_flash_attention_for_cpu": "attention over the cache",
    "aten::_scaled_dot_product_attention_math": "attention over the cache",
    "aten::copy_": "cache writes and copies", "aten::index_put_": "cache writes and copies",
    "aten::softmax": "512-way softmax and draw", "aten::_softmax": None, "aten::multinomial": "512-way softmax and draw",
    "aten::div": "512-way softmax and draw",
}


@torch.inference_mode()
def profile_step(model: GPT, batch: int) -> dict:
    """One decode step at the last position (1,023 cached), taken apart by the profiler."""
    from torch.profiler import ProfilerActivity, profile

    from igpt_lite.sample.sampling import _pick

    cfg = model.config
    kv = model.new_kv_cache(batch)
    model(torch.randint(0, cfg.n_colors, (batch, cfg.block_size - 1)), kv)
    gen = torch.Generator().manual_seed(0)
    step_in = torch.randint(0, cfg.n_colors, (batch, 1))

    def step():
        kv.length = cfg.block_size - 1
        logits = model(step_in, kv)[:, -1]
        return _pick(logits, gen, 1.0, None, None)

    for _ in range(3):
        step()
    step_s = timed(step, 10)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            step()
    parts = {}
    for ev in prof.key_averages():
        group = GROUPS.get(ev.key, "other")
        if group is not None:
            parts[group] = parts.get(group, 0.0) + ev.self_cpu_time_total / 5 / 1e6
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    cache_bytes = 2 * cfg.n_layer * batch * (cfg.block_size - 1) * cfg.n_embd * 4
    bw = bandwidth()
    return {"batch": batch, "step_s": step_s, "parts_s": parts, "weight_bytes": weight_bytes,
            "cache_bytes": cache_bytes, "bandwidth_gb_s": bw / 1e9, "bound_s": (weight_bytes + cache_bytes) / bw,
            "of_bound": (weight_bytes + cache_bytes) / bw / step_s}


def official(args) -> dict:
    torch.manual_seed(0)
    model = GPT(preset("igpt-s")).eval()
    prompt = torch.randint(0, 512, (args.batch, model.config.block_size - args.pixels))
    row = bench(f"iGPT-S size (24×512), last {args.pixels} pixels", model, prompt, args.repeats, nocache=False)
    row["per_pixel_ms"] = 1000 * row["ours_s"] / args.pixels
    row["hf_per_pixel_ms"] = 1000 * row["hf_generate_s"] / args.pixels
    return {"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": [row],
            "profile": profile_step(model, args.batch)}


def print_official(result: dict):
    r, pr = result["rows"][0], result["profile"]
    print(f"torch {result['torch']}, {result['threads']} thread(s)")
    print(f"{r['config']}, batch {r['batch']} (prompt and steps included): ours {r['ours_s']:.1f} s, "
          f"transformers generate {r['hf_generate_s']:.1f} s ({r['speedup_vs_hf']:.2f}x)")
    print(f"one decode step at 1,023 cached positions, batch {pr['batch']}: {1000 * pr['step_s']:.1f} ms; "
          f"memory-traffic bound {1000 * pr['bound_s']:.1f} ms ({pr['weight_bytes'] / 1e6:.0f} MB weights + "
          f"{pr['cache_bytes'] / 1e6:.0f} MB cache at {pr['bandwidth_gb_s']:.1f} GB/s): {pr['of_bound']:.0%} of it")
    for part, sec in sorted(pr["parts_s"].items(), key=lambda kv: -kv[1]):
        print(f"  {part:32} {1000 * sec:7.2f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-nocache-igpt", action="store_true", help="the no-cache iGPT-shaped run takes minutes")
    p.add_argument("--skip-nocache", action="store_true", help="skip the no-cache runs of the MNIST models too")
    p.add_argument("--models", nargs="+", default=["mnist"],
                   help="bundled 28×28 MNIST models completing the bottom half of 8 test digits (e.g. mnist mnist-small)")
    p.add_argument("--official", action="store_true", help="the official iGPT-S size and the decode-step profile")
    p.add_argument("--batch", type=int, default=4, help="--official: images sampled at once")
    p.add_argument("--pixels", type=int, default=64, help="--official: pixels sampled at the end of each image")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.official:
        result = official(args)
        print(json.dumps(result)) if args.json else print_official(result)
        return
    rows = []
    for name in args.models:
        ck = load_checkpoint(name)
        digits = ck.palette.encode(load_dataset("mnist", "test", resolution=28, limit=8).images)
        rows.append(bench(f"bundled {name} (trained)", ck.model, digits[:, :14 * 28], args.repeats,
                          nocache=not args.skip_nocache))
    torch.manual_seed(0)
    igpt = GPT(GPTConfig(n_colors=512, height=32, width=32, n_layer=8, n_head=8, n_embd=256)).eval()
    rows.append(bench("iGPT-shaped 8×256, 32×32, 512 colours", igpt, torch.randint(0, 512, (8, 1)), args.repeats,
                      nocache=not args.skip_nocache_igpt))
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.repeats}")
    print(f"{'config':42} {'steps':>5} {'ours':>8} {'no cache':>9} {'HF generate':>12} {'vs no cache':>12} {'vs HF':>7}")
    for r in rows:
        nc = f"{r['nocache_s']:.2f}s" if "nocache_s" in r else "-"
        vnc = f"{r['speedup_vs_nocache']:.1f}x" if "nocache_s" in r else "-"
        print(f"{r['config']:42} {r['steps']:>5} {r['ours_s']:>7.2f}s {nc:>9} {r['hf_generate_s']:>11.2f}s "
              f"{vnc:>12} {r['speedup_vs_hf']:>6.1f}x")


if __name__ == "__main__":
    main()
