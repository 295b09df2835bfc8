"""The GPU path end to end on the official size: the stand-in of openai/imagegpt-small
(benchmarks/official.py: transformers' config, random weights) imported with `igpt-lite import-hf`,
then on the GPU: completions through the CLI (`--device cuda`), greedy cached sampling checked
against a full forward, attention maps, features of 256 images, and iGPT-S training throughput
and MFU (benchmarks/train.py's step: bf16 autocast, fused AdamW; optionally torch.compile).

    python benchmarks/gpu.py [--json] [--device cuda] [--batch-size 64] [--compile]

Without a CUDA GPU it says so and measures nothing (exit status 0).
"""
import argparse
import contextlib
import importlib.util
import io
import json
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn, device) -> tuple[float, object]:
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def run(device: str, batch_size: int, compile: bool) -> dict:
    from igpt_lite import cli, data
    from igpt_lite.attention import attend
    from igpt_lite.checkpoint import load_checkpoint
    from igpt_lite.features import extract_features, feature_layers
    from igpt_lite.model import preset
    from igpt_lite.sample import complete, generate

    dev = torch.device(device)
    rows = {"device": torch.cuda.get_device_name(dev)}
    with tempfile.TemporaryDirectory() as tmp:
        hf = script("official").make_standin(Path(tmp) / "imagegpt-small")
        with contextlib.redirect_stdout(io.StringIO()):  # the verbs' own reports: not this script's output
            t0 = time.perf_counter()
            assert cli.main(["import-hf", str(hf), str(Path(tmp) / "imported")]) == 0
            rows["import_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            assert cli.main(["complete", "--model", str(Path(tmp) / "imported"), "--data", "photos", "--rows", "16",
                             "--device", device]) == 0
            rows["cli_complete_8x4_s"] = time.perf_counter() - t0  # the model's load included
        ck = load_checkpoint(Path(tmp) / "imported", device=device)
    photos = data.load_dataset("photos", "test", resolution=32, limit=256)
    tokens = ck.palette.encode(photos.images)
    prompt = tokens[:8, : 16 * 32].repeat_interleave(4, 0)
    complete(ck.model, tokens[:1], keep_rows=31)  # warm-up
    rows["complete_32_rows_s"], out = timed(lambda: generate(ck.model, prompt, seed=0), dev)
    greedy = generate(ck.model, tokens[:2, :1000], top_k=1)
    with torch.inference_mode():
        full = ck.model(ck.model.image_inputs(greedy))
    rows["greedy_matches_full_forward"] = bool((greedy[:, 1000:] == full[:, 1000:].argmax(-1)).all())
    rows["attend_s"], _ = timed(lambda: attend(ck, photos.images[0], (16, 16)), dev)
    layers = feature_layers(ck.model)
    rows["features_256_images_s"], _ = timed(lambda: extract_features(ck.model, tokens, layers, batch_size=64), dev)
    train = script("train")
    peak = train.peak_flops_for(rows["device"])
    rows["training"] = train.bench_model(preset("igpt-s"), batch_size, 20, device, compile=compile, peak_flops=peak)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch-size", type=int, default=64, help="iGPT-S training batch (default: %(default)s)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        reason = f"no CUDA GPU here (torch {torch.__version__} sees none): nothing measured"
        print(json.dumps({"skipped": reason}) if args.json else reason)
        return {"skipped": reason}
    result = run(args.device, args.batch_size, args.compile)
    if args.json:
        print(json.dumps(result))
        return result
    t = result.pop("training")
    for k, v in result.items():
        print(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}")
    mfu = f"{100 * t['mfu']:.1f}%" if t["mfu"] is not None else "n/a (unknown peak FLOPS)"
    print(f"iGPT-S training, batch {t['batch']}: {t['tokens_per_s']:,.0f} tokens/s, {t['step_ms']:.0f} ms a step, "
          f"MFU {mfu} (target 50%), peak {t['peak_memory_mb']:,.0f} MB")
    return result


if __name__ == "__main__":
    main()
