"""Install time and size of igpt-lite from a wheel, the core and each extra, each in a fresh virtual
environment: `python benchmarks/install.py [--extras core app notebooks hub]`.

torch==2.13.0 goes in first (from this machine's disk: timed and sized on its own), then the wheel
with the extra. pip's cache is whatever this machine has: a warm cache measures unpacking and
resolving, not downloads, and the report says which extras' packages pip had to fetch."""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--extras", nargs="+", default=["core", "app", "notebooks", "hub"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp, ROOT], check=True)
        wheel = next(tmp.glob("igpt_lite-*.whl"))
        print(f"wheel: {wheel.name}, {wheel.stat().st_size / 1e6:.1f} MB")
        print("| install | torch==2.13.0 | then igpt-lite | environment size | packages |")
        print("|---|---|---|---|---|")
        for extra in args.extras:
            venv = tmp / f"venv-{extra}"
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
            t0 = time.perf_counter()
            subprocess.run([*pip, "torch==2.13.0"], check=True, capture_output=True)
            t1 = time.perf_counter()
            torch_mb = size_mb(venv)
            subprocess.run([*pip, str(wheel) if extra == "core" else f"{wheel}[{extra}]"], check=True,
                           capture_output=True)
            t2 = time.perf_counter()
            n = len(subprocess.run([venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"],
                                   capture_output=True, text=True, check=True).stdout.split())
            label = "igpt-lite" if extra == "core" else f"igpt-lite[{extra}]"
            print(f"| {label} | {t1 - t0:.0f} s, {torch_mb:.0f} MB | {t2 - t1:.0f} s | {size_mb(venv):.0f} MB | {n} |",
                  flush=True)


if __name__ == "__main__":
    main()
