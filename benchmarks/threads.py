"""Speed on a shared CPU: sampling, training and probing with igpt-lite's thread policy
(`igpt_lite.threads.cpu_threads`: the cores other processes leave free) against torch's default
(one thread per core), on a quiet machine and beside a competing busy process that this script
starts itself (a pure-Python spin on one core), side by side in one run.

    python benchmarks/threads.py [--json] [--competitors 1] [--repeats 1]

Each figure is the median wall time; "of quiet" is the quiet-machine time of the better policy
over this time (1.0 = as fast as a quiet machine). Workloads: the bundled mnist-small model
completing the bottom half of 8 test digits; 10 training steps of the "small" preset on MNIST
(batch 16, 28×28); features of 256 MNIST digits from every layer of the bundled mnist model
plus a logistic probe on the middle layer.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.data import load_dataset
from igpt_lite.features import extract_features, feature_layers
from igpt_lite.model import GPT, preset
from igpt_lite.probe import LinearProbe
from igpt_lite.sample import complete
from igpt_lite.threads import check_threads, cpu_count, cpu_threads

SPIN = "while True:\n    pass"


def workloads():
    small = load_checkpoint("mnist-small")
    digits = load_dataset("mnist", "test", resolution=28, limit=8)
    prompts = small.palette.encode(digits.images)

    def sampling():
        complete(small.model, prompts, keep_rows=14, seed=0)

    torch.manual_seed(0)
    model = GPT(preset("small", n_colors=8, height=28, width=28))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    train_tokens = small.palette.encode(load_dataset("mnist", "train", resolution=28, limit=320).images)

    def training():
        model.train()
        for step in range(10):
            check_threads()  # as the training loop does
            loss = model.loss(train_tokens[step * 16 : (step + 1) * 16])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    big = load_checkpoint("mnist")
    probe_set = load_dataset("mnist", "train", resolution=28, limit=256)
    probe_tokens = big.palette.encode(probe_set.images)
    layers = feature_layers(big.model)

    def probing():
        feats = extract_features(big.model, probe_tokens, layers, batch_size=64)
        LinearProbe(Cs=(1.0,)).fit(feats[layers[len(layers) // 2]], probe_set.labels)

    return {"sampling": sampling, "training": training, "probing": probing}


def timed(fn, policy: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if policy == "igpt-lite":
            with cpu_threads():
                fn()
        else:
            torch.set_num_threads(cpu_count())
            fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--competitors", type=int, default=1, help="busy processes started beside the work")
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    jobs = workloads()
    for fn in jobs.values():  # warm-up: first calls pay one-off costs
        fn()
    policies = ("torch default", "igpt-lite")
    times = {}
    for condition in ("quiet", "busy"):
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.competitors)
                    ] if condition == "busy" else []
        try:
            time.sleep(1.0 if spinners else 0)
            for name, fn in jobs.items():
                for policy in policies:  # side by side: the same neighbour for both
                    times[name, policy, condition] = timed(fn, policy, args.repeats)
        finally:
            for s in spinners:
                s.kill()
                s.wait()
    rows = []
    for name in jobs:
        best_quiet = min(times[name, pol, "quiet"] for pol in policies)
        for policy in policies:
            q, b = times[name, policy, "quiet"], times[name, policy, "busy"]
            rows.append({"work": name, "policy": policy, "quiet_s": q, "busy_s": b, "busy_of_quiet": best_quiet / b})
    result = {"cores": cpu_count(), "competitors": args.competitors, "torch": torch.__version__, "rows": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{cpu_count()} cores, {args.competitors} busy competitor(s), torch {torch.__version__}, "
          f"median of {args.repeats}")
    print(f"{'work':10} {'policy':14} {'quiet':>8} {'busy':>8} {'busy: of quiet':>15}")
    for r in rows:
        print(f"{r['work']:10} {r['policy']:14} {r['quiet_s']:>7.2f}s {r['busy_s']:>7.2f}s {r['busy_of_quiet']:>14.0%}")


if __name__ == "__main__":
    main()
