"""Linear-probe speed: features of every layer (one pass) and a probe per layer (C search
included) for a model on its dataset, next to a bare forward pass of the same model over the
same images. Targets: extraction within 1.2x of the bare forward; fitting every layer's
probe under 30 s on 2 cores. Baselines (random weights, pixels) are not timed here.

    OMP_NUM_THREADS=2 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \\
        python benchmarks/probe.py --model mnist [--data mnist] [--limit N] [--repeats R] [--json]

(The malloc settings stop glibc from mapping and unmapping every large temporary, which costs
more than the arithmetic in big forwards on this machine: measure with and without.)
"""
import argparse
import json
import statistics
import time

import torch

from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.features import extract_features, feature_layers
from igpt_lite.probe import DEFAULT_CS, load_split, probe_layers


def timed(fn, repeats: int):
    """Median seconds over `repeats` runs, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


@torch.inference_mode()
def bare_forward(model, tokens, batch_size):
    for i in range(0, len(tokens), batch_size):
        model(model.image_inputs(tokens[i : i + batch_size].to(model.device)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist", help="checkpoint folder, run folder or model name")
    parser.add_argument("--data", default=None, help="dataset (default: the model's own)")
    parser.add_argument("--limit", type=int, default=None, help="images per split (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="forward and extraction runs each (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    ck = load_checkpoint(args.model)
    name = ck.dataset_name(args.data)
    splits = {s: load_split(name, s, ck.palette, ck.config.height, args.limit) for s in ("train", "val", "test")}
    tokens = torch.cat([splits[s][1] for s in splits])
    layers = feature_layers(ck.model, final_norm=True)
    bare_forward(ck.model, tokens[: args.batch_size], args.batch_size)  # warm-up

    # side by side, alternating, so that a busy neighbour process hits both alike; the features of
    # the last extraction (split by split, the same images) are the ones probed
    fwd, ext = [], []
    for _ in range(args.repeats):
        fwd.append(timed(lambda: bare_forward(ck.model, tokens, args.batch_size), 1)[0])
        seconds, feats = timed(lambda: {s: extract_features(ck.model, splits[s][1], layers, batch_size=args.batch_size)
                                        for s in splits}, 1)
        ext.append(seconds)
    forward_s, extract_s = statistics.median(fwd), statistics.median(ext)

    labels = {s: splits[s][2] for s in splits}
    t0 = time.perf_counter()
    rows = probe_layers(feats, labels, Cs=DEFAULT_CS)
    fit_s = time.perf_counter() - t0

    n_tokens = tokens.numel()
    result = {
        "model": str(ck.path), "dataset": name, "images": len(tokens), "tokens": n_tokens,
        "n": {s: len(labels[s]) for s in labels}, "layers": layers, "Cs": list(DEFAULT_CS),
        "threads": torch.get_num_threads(), "repeats": args.repeats, "batch_size": args.batch_size,
        "forward_s": forward_s, "extract_s": extract_s, "extract_over_forward": extract_s / forward_s,
        "forward_tokens_per_s": n_tokens / forward_s, "extract_tokens_per_s": n_tokens / extract_s,
        "fit_s": fit_s, "fit_s_per_layer": fit_s / len(layers),
        "table": [{k: getattr(r, k) for k in ("layer", "dim", "train_acc", "val_acc", "test_acc", "test_stderr", "C",
                                              "C_at_edge", "converged", "seconds")} for r in rows],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['model']} on {name}: {len(tokens)} images ({n_tokens} tokens), {len(layers)} layers, "
          f"{result['threads']} threads")
    print(f"bare forward      {forward_s:8.2f} s  ({result['forward_tokens_per_s']:,.0f} tokens/s)")
    print(f"features, 1 pass  {extract_s:8.2f} s  ({result['extract_tokens_per_s']:,.0f} tokens/s), "
          f"{result['extract_over_forward']:.2f}x the forward")
    print(f"probes, C search  {fit_s:8.2f} s  ({len(DEFAULT_CS)} values of C per layer)")
    print(f"{'layer':>10} {'dim':>5} {'train':>6} {'val':>6} {'test':>6} {'±se':>5} {'C':>8} {'fit s':>6}")
    for r in rows:
        print(f"{r.layer:>10} {r.dim:>5} {r.train_acc:6.3f} {r.val_acc:6.3f} {r.test_acc:6.3f} "
              f"{r.test_stderr:5.3f} {r.C:8.3g}{'*' if r.C_at_edge else ' '} {r.seconds:6.2f}")
    if any(r.C_at_edge for r in rows):
        print("* C at the edge of the grid")


if __name__ == "__main__":
    main()
