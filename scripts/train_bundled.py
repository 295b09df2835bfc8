"""Train (or resume) the bundled models, then export them to data/models/<name>/ with a grid of
samples and completions in docs/. Resumable: run the same command again after a stop.

    python scripts/train_bundled.py mnist            # train (resumes runs/bundled/mnist if present)
    python scripts/train_bundled.py mnist --export   # copy the latest step into data/models/mnist
"""
import argparse
import sys

import torch

from igpt_lite.bundled import RECIPES, export_bundled
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
    print(export_bundled(args.name, run_dir))
    sys.exit()
r = RECIPES[args.name]
pretrain(r["dataset"], run_dir, model_cfg=r["model"], train_cfg=r["train"], resume=True)
