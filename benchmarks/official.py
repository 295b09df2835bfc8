"""The official model's size on this machine: a stand-in of openai/imagegpt-small (transformers'
ImageGPTForCausalImageModeling with its config: 24 layers, 8 heads, width 512, 32×32 pixels, 512
colours; random weights), saved with save_pretrained and imported with `igpt-lite import-hf` as a
user would, then every CLI verb and every app page's main action on it: wall time and peak memory
(each in its own process).

    python benchmarks/official.py [--json] [--only import-hf info ...] [--folder DIR]

Images come from the embedded `photos` set (32×32 RGB crops), since an imported model names no
dataset; `bias` reads four folders of generated figures scenes (4 images each: men, women, career
and domestic props) written beside the stand-in. The settings are the ones each row names; the
app's pages run with their defaults for this size.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = ["--data", "photos"]
SETS = [a for k in "xyab" for a in (f"--{k}", f"{{sets}}/{k.upper()}")]  # bias: the four folders
# (name, arguments after the model): what a user runs first on each verb
VERBS = {
    "info": ["info", "--model", "{model}"],
    "complete (1 image, bottom 16 rows, 1 sample)": ["complete", "--model", "{model}", *DATA, "--index", "0",
                                                    "--rows", "16", "--samples", "1"],
    "complete (8 images, bottom 16 rows, 4 samples)": ["complete", "--model", "{model}", *DATA, "--rows", "16"],
    "sample (1 whole image)": ["sample", "--model", "{model}", "--n", "1"],
    "attention (one pixel)": ["attention", "--model", "{model}", *DATA, "--pixel", "16", "16"],
    "probe (8 images a split, layer 12)": ["probe", "--model", "{model}", *DATA, "--limit", "8", "--layers", "12"],
    # --again: computed, not read back from the cache a run before left
    "lens (8 images a split, plain and tuned)": ["lens", "--model", "{model}", *DATA, "--limit", "8", "--again"],
    "bias (4 images a set, iEAT only)": ["bias", "--model", "{model}", *SETS, "--compose", "none", "--no-baseline"],
    "bias (4 images a set, both tests, random copy)": ["bias", "--model", "{model}", *SETS],
}
PAGES = ["complete", "attention", "bias", "depth", "palette"]


def make_standin(folder: Path, seed: int = 0) -> Path:
    """openai/imagegpt-small's shape with random weights, written as transformers writes it (model
    and image processor with 512 random colour clusters): what `import-hf` reads."""
    import torch
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling, ImageGPTImageProcessor

    torch.manual_seed(seed)
    config = ImageGPTConfig()  # its defaults are imagegpt-small's: 24 × 8 heads × 512, 1,024 positions, 513 tokens
    model = ImageGPTForCausalImageModeling(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name:  # transformers leaves these uninitialised
                p.fill_(1.0)
    clusters = np.random.default_rng(seed).uniform(-1, 1, (config.vocab_size - 1, 3))
    model.save_pretrained(folder)
    ImageGPTImageProcessor(clusters=clusters, size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def make_bias_sets(folder: Path, targets: int = 4, attributes: int = 4) -> dict[str, np.ndarray]:
    """Four folders X, Y (`targets` PNG images each) and A, B (`attributes` each) of generated
    figures scenes, 32×32: what `bias --x ... --b` reads. Returns the images, {"X": N×32×32×3, ...}."""
    from PIL import Image

    from igpt_lite.data import scenes

    sets = scenes.make_test_sets(max(targets, attributes), seed=1, resolution=32)
    sets = {k: v[: targets if k in "XY" else attributes] for k, v in sets.items()}
    for name, images in sets.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / name / f"{i}.png")
    return sets


def timed_process(args: list[str], env: dict | None = None) -> dict:
    """Run `python -m igpt_lite ARGS`: wall seconds, peak resident memory, exit status."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b"", b""
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    return {"seconds": time.perf_counter() - t0, "peak_mb": usage.ru_maxrss / 1024,
            "ok": os.waitstatus_to_exitcode(status) == 0, "stderr": err.decode()[-400:], "stdout": out.decode()}


def run_page(page: str, model: str) -> None:
    """One app page's main action on `model` (AppTest, in this process): the row `--page` times.
    complete: one completion of the bottom half (the page's defaults at this size); attention: the
    page as it opens (one pixel's maps, the per-head summary of this image); bias: "Run the tests"
    with its defaults at this size; depth and palette: the page as it opens."""
    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parent.parent / "app"
    at = AppTest.from_file(str(app / "main.py"), default_timeout=1800).run()
    at.sidebar.selectbox(key="model_label").set_value("a folder on this machine…").run()
    at.sidebar.text_input(key="model_path").set_value(model).run()
    at.sidebar.selectbox(key="dataset").set_value("photos").run()
    if page != "complete":
        at.switch_page(str(app / "views" / f"{page}.py")).run()
    if page == "bias":
        at.radio(key=f"bias_source:{model}").set_value("Generated figures scenes").run()
    buttons = {"complete": "complete_run", "bias": "bias_run"}
    if page in buttons:
        at.button(key=buttons[page]).click().run()
    problems = [str(e.value) for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise SystemExit(f"{page}: {problems}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--only", nargs="+", default=None, help="rows whose name starts with one of these")
    p.add_argument("--folder", default=None, help="keep the stand-in here (default: a temporary folder)")
    p.add_argument("--page", default=None, help=argparse.SUPPRESS)  # internal: run one page
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.page:
        return run_page(args.page, args.model)
    root = Path(args.folder or tempfile.mkdtemp(prefix="igpt-official-"))
    hf, model, sets = root / "imagegpt-small-standin", root / "imported", root / "bias-sets"
    if not hf.exists():
        make_standin(hf)
    if not sets.exists():
        make_bias_sets(sets)
    wanted = (lambda name: args.only is None or any(name.startswith(o) for o in args.only))
    rows = []
    cli = ["-m", "igpt_lite"]
    if wanted("import-hf"):
        rows.append({"what": "import-hf", **timed_process([*cli, "import-hf", str(hf), str(model), "--overwrite"])})
    for name, verb in VERBS.items():
        if wanted(name):
            rows.append({"what": name, **timed_process([*cli, *[a.format(model=model, sets=sets) for a in verb]])})
    for page in PAGES:
        if wanted(f"page {page}"):
            rows.append({"what": f"page {page}", **timed_process([__file__, "--page", page, "--model", str(model)])})
    for r in rows:
        r.pop("stdout")
        if r["ok"]:
            r.pop("stderr")
    if args.json:
        print(json.dumps({"rows": rows}))
        return
    print(f"{'what':52} {'time':>8} {'peak memory':>12}")
    for r in rows:
        print(f"{r['what']:52} {r['seconds']:>7.1f}s {r['peak_mb']:>9.0f} MB" + ("" if r["ok"] else f"  FAILED: {r['stderr']}"))


if __name__ == "__main__":
    main()
