"""Sampling speed: this sampler (KV cache) against the same model without the cache and against
Hugging Face's ImageGPTForCausalImageModeling.generate on an equal-size config (random weights),
side by side in one process. Batch of 8 completions.

    python benchmarks/sampling.py [--json] [--threads N] [--repeats R] [--skip-nocache-igpt] [--models mnist mnist-small]

Configs: the bundled MNIST model(s) (28×28, completing the bottom half of held-out digits) and an
iGPT-shaped model (8 layers × 256, 32×32, 512 colours, random weights, sampling 1,023 pixels).
"""
import argparse
import json
import statistics
import time

import torch

from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.data import load_dataset
from igpt_lite.model import GPT, GPTConfig
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-nocache-igpt", action="store_true", help="the no-cache iGPT-shaped run takes minutes")
    p.add_argument("--skip-nocache", action="store_true", help="skip the no-cache runs of the MNIST models too")
    p.add_argument("--models", nargs="+", default=["mnist"],
                   help="bundled 28×28 MNIST models completing the bottom half of 8 test digits (e.g. mnist mnist-small)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
