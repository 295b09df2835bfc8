"""Train (or resume) the bundled models, then export them to data/models/<name>/ and draw a grid
of samples and one of completions of held-out images in docs/. Resumable: run the same command
again after a stop.

    python scripts/train_bundled.py mnist            # train (resumes runs/bundled/mnist if present)
    python scripts/train_bundled.py mnist --export   # copy the latest step to data/models/mnist + grids
"""
import argparse
import sys

import numpy as np
import torch

from igpt_lite.train.bundled import RECIPES, export_bundled
from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.data import load_dataset
from igpt_lite.figures import image_grid
from igpt_lite.sample import completion_grid
from igpt_lite.sample import complete_images, sample
from igpt_lite.train import pretrain

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("name", choices=sorted(RECIPES))
parser.add_argument("--runs", default="runs/bundled")
parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
parser.add_argument("--export", action="store_true", help="export the latest checkpoint instead of training")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)
run_dir = f"{args.runs}/{args.name}"
if args.export:
    path = export_bundled(args.name, run_dir)
    ck = load_checkpoint(path)
    cfg = ck.config
    if cfg.objective == "bert":  # raster sampling runs a full forward pass a pixel: tens of minutes here
        print(path, "(no sample grids for a bert model)")
        sys.exit()
    test = load_dataset(ck.dataset_name(), "test", resolution=ck.square_side())
    images = test.images[np.linspace(0, len(test) - 1, 8).astype(int)]  # spread over the classes
    keep = cfg.height // 2
    completions = complete_images(ck.model, ck.palette, images, keep, n_samples=5, seed=0)
    completion_grid(images, completions.images, keep).save(f"docs/{args.name}_completions.png")
    samples = ck.palette.decode(sample(ck.model, 32, seed=0), cfg.height, cfg.width)
    image_grid(samples, ncols=8).save(f"docs/{args.name}_samples.png")
    print(path, f"docs/{args.name}_completions.png", f"docs/{args.name}_samples.png")
    sys.exit()
r = RECIPES[args.name]
palette = load_checkpoint(r["palette_of"]).palette if "palette_of" in r else None  # a twin shares its tokens
pretrain(r["dataset"], run_dir, model_cfg=r["model"], train_cfg=r["train"], palette=palette, resume=True)
