"""Training throughput (tokens/s: forward + backward + AdamW step) of the bundled recipes' model
configs on random tokens, for the device and thread count given.

    python benchmarks/training.py [--threads N] [--device cpu|cuda] [--steps S] [--json]
"""
import argparse
import json
import time

import torch

from igpt_lite.bundled import RECIPES
from igpt_lite.model import GPT


def tokens_per_second(cfg, batch_size: int, steps: int, device: str) -> float:
    torch.manual_seed(0)
    model = GPT(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, cfg.n_colors, (batch_size, cfg.block_size), device=device)
    for i in range(steps + 1):
        if i == 1:  # the first step warms up allocators and kernels
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model.loss(x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return batch_size * cfg.block_size * steps / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [{"recipe": name, "parameters": sum(q.numel() for q in GPT(r["model"]).parameters()),
             "batch": r["train"].batch_size,
             "tokens_per_s": tokens_per_second(r["model"], r["train"].batch_size, args.steps, args.device)}
            for name, r in RECIPES.items()]
    result = {"device": args.device, "threads": torch.get_num_threads(), "rows": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.device}, {torch.get_num_threads()} thread(s)")
    for r in rows:
        print(f"{r['recipe']:8} {r['parameters'] / 1e6:5.2f}M params, batch {r['batch']:3}: "
              f"{r['tokens_per_s']:8.0f} tokens/s")


if __name__ == "__main__":
    main()
