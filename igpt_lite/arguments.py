"""What the CLI's verbs share: argument types that apply validate.py's rules (argparse names the
flag in the message), the common flags, output checks before any work, the input images of a verb,
and the base of a verb's result (its --json object and its human summary)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import ClassVar

import numpy as np

from . import checkpoint, data, validate
from .data import formats
from .tables import key_value_text
from .storage import check_new_output, write_file_atomically
from .train import pick_device


def checked(convert, check):
    """An argparse type: convert the text, then apply a validate.py rule (argparse names the flag)."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a whole number' if convert is int else 'a number'}, got {text!r}") from None
        try:
            return check(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def count(low=1, high=None):
    return checked(int, lambda v: validate.integer("", v, low, high))


def positive(at_most=None):
    return checked(float, lambda v: validate.positive("", v, at_most))


SEED = checked(int, lambda v: validate.seed("", v))


DEVICE = checked(str, lambda v: validate.device(v, name=""))


DATA = checked(str, data.check_dataset_name)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def image_file(text):
    if Path(text).suffix.lower() not in IMAGE_SUFFIXES:
        raise argparse.ArgumentTypeError(f"the file name must end in one of {', '.join(IMAGE_SUFFIXES)} "
                                         f"(it sets the image format), got {text!r}")
    return text


def existing_file(text):
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file" + (" (it is a folder)" if Path(text).is_dir() else ""))
    return text


def data_args(p, default=None, help="dataset (default: the model's own)"):
    p.add_argument("--data", type=DATA, default=default,
                   help=f"{help}: an embedded one, {', '.join(formats.DATASETS)} (files under --root), or "
                        "folder:PATH (one sub-folder of images per class)")
    root_arg(p)


def root_arg(p):
    p.add_argument("--root", default=None, metavar="DIR",
                   help="where the datasets you bring live (default: $IGPT_LITE_DATA, else data/datasets/)")


def model_arg(p):
    p.add_argument("--model", required=True, help="checkpoint folder, training run folder, or a model name")


def device_arg(p):
    p.add_argument("--device", type=DEVICE, default="auto",
                   help="where the model runs: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or "
                        "cuda:N (default: %(default)s)")


def load_model(args):
    """The verb's --model on its --device (auto: cuda when torch sees a GPU)."""
    return checkpoint.load_checkpoint(args.model, device=pick_device(args.device))


def sampling_args(p):
    p.add_argument("--temperature", type=positive(), default=1.0,
                   help="divides the logits: below 1 surer, above 1 more varied (default: %(default)s)")
    p.add_argument("--top-k", type=count(1), default=None,
                   help="sample each pixel from its K likeliest colours only (default: all colours)")
    p.add_argument("--top-p", type=positive(at_most=1.0), default=None,
                   help="sample each pixel from its likeliest colours up to this much probability (default: no cut)")
    p.add_argument("--seed", type=SEED, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--out", type=image_file, default=None,
                   help="write the images as a PNG grid here (default: no file)")
    overwrite_arg(p, "--out")


def overwrite_arg(p, *flags):
    """--overwrite for a verb whose output files are `flags`: checked before any work (main)."""
    p.add_argument("--overwrite", action="store_true", help=f"replace {' or '.join(flags)} if it exists")
    p.set_defaults(outputs=[f.lstrip("-") for f in flags])


def check_outputs(args) -> None:
    for name in getattr(args, "outputs", []):
        if getattr(args, name, None):
            check_new_output(getattr(args, name), args.overwrite, flag=f"--{name}")


def write_text(path, text: str) -> str:
    write_file_atomically(path, lambda tmp: Path(tmp).write_text(text))
    return str(path)


def save_grid(img, out):
    if out:
        write_file_atomically(out, img.save)
        return str(out)
    return None


def input_images(args, ck, image_files, index) -> tuple[np.ndarray, object]:
    """The images a verb works on: image files, or images of a dataset's split (by default 8
    spread over it, so that every class shows), at the model's size; and where they came from."""
    cfg = ck.config
    if image_files:
        images = np.stack([data.load_image(p, cfg.height, ck.palette.channels) for p in image_files])
        return images, [str(p) for p in image_files]
    name = ck.dataset_name(args.data)
    ds = data.load_dataset(name, args.split, resolution=ck.square_side(), root=args.root)
    idx = [i for i in index if i is not None] or np.linspace(0, len(ds) - 1, 8).astype(int).tolist()
    bad = [i for i in idx if not 0 <= i < len(ds)]
    if bad:
        raise ValueError(f"--index {bad[0]} is out of range: the {name} {args.split} split has {len(ds)} images")
    return ds.images[idx], f"{name}/{args.split}{idx}"


class VerbResult:
    """What a verb returns to `cli.main`: to_dict() is its --json object, text() its human summary,
    by default one `key: value` line per entry of that object except those too big to read (`hidden`)."""
    hidden: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        raise NotImplementedError

    def text(self) -> str:
        return key_value_text(self.to_dict(), hide=self.hidden)


