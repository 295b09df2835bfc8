"""Make the probe tables shipped beside the bundled models (data/models/<name>/probe.json), from
which the app's "Feature quality versus depth" page opens instantly.

Each table is `probe.probe_report(model, limit=REPORT_LIMIT)` computed afresh: every layer's linear
probe with its baselines (random-weight copy, raw pixels, palette pixels) on REPORT_LIMIT images per
split of the model's own dataset, README's probe protocol. The file records the model's hash, the
dataset and the settings; the app uses it only while they match (a retrained model is recomputed).

    python scripts/probe_tables.py                   # every bundled model, one thread
    python scripts/probe_tables.py mnist shapes      # some of them
    python scripts/probe_tables.py --check           # which tables are missing or stale; writes nothing
"""
import argparse
import sys
import tempfile
import time

import torch

from igpt_lite.checkpoint import BUNDLED_DIR, load_checkpoint, model_names
from igpt_lite.probe import REPORT_FILE, REPORT_LIMIT, probe_report


def bundled() -> list[str]:
    return [name for name, path in model_names().items() if path.parent.resolve() == BUNDLED_DIR.resolve()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="bundled model names (default: all)")
    p.add_argument("--limit", type=int, default=REPORT_LIMIT, help="images per split (default %(default)s, "
                   "what the app asks for: another value makes tables the app does not use)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    p.add_argument("--check", action="store_true", help="only say which tables are missing or stale")
    args = p.parse_args(argv)
    names = args.models or bundled()
    unknown = sorted(set(names) - set(bundled()))
    if unknown:
        p.error(f"not bundled models: {', '.join(unknown)}; bundled: {', '.join(bundled())}")
    torch.set_num_threads(args.threads)
    stale = 0
    for name in names:
        ck = load_checkpoint(name)
        if args.check:
            try:
                with tempfile.TemporaryDirectory() as empty:  # the shipped table only, not the user's cache
                    probe_report(ck, limit=args.limit, compute=False, cache_dir=empty)
                print(f"{name}: up to date")
            except LookupError as e:
                stale += 1
                print(f"{name}: {e}")
            continue
        t0, cpu0 = time.perf_counter(), time.process_time()
        report = probe_report(ck, limit=args.limit, reuse=False, cache_dir=None,
                              on_step=lambda done, total: print(f"  {name}: {done}/{total}", flush=True))
        out = report.save(ck.path / REPORT_FILE)
        s = report.summary
        margins = ", ".join(f"{k} {m.points:+.1f} points ({m.z:.1f} s.e.)" for k, m in s.margins.items())
        print(f"{name}: {out} in {time.perf_counter() - t0:.0f} s ({time.process_time() - cpu0:.0f} s of CPU); "
              f"best layer {s.trained.layer} {100 * s.trained.test_acc:.1f}% test; vs {margins}", flush=True)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
