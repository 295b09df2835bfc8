"""`igpt-lite import-hf` and `export-hf`: Hugging Face ImageGPT folders in and out."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .. import checkpoint
from ..arguments import VerbResult, model_arg
from ..checkpoint import Checkpoint
from ..storage import check_folder_output, occupied
from .hf import export_hf, load_hf


@dataclass
class ImportRun(VerbResult):
    """What `igpt-lite import-hf` wrote: the imported checkpoint, where from and where to."""
    out: Path
    source: str  # the Hugging Face folder
    imported: Checkpoint
    seconds: float

    def to_dict(self) -> dict:
        return {"out": str(self.out), "name": self.out.name, "source": self.source,
                "config": self.imported.config.to_dict(), "parameters": self.imported.model.num_params(),
                "seconds": self.seconds}


@dataclass
class ExportRun(VerbResult):
    """What `igpt-lite export-hf` wrote: the Hugging Face folder and the files in it."""
    model: str
    out: Path
    files: list[str]

    def to_dict(self) -> dict:
        return {"model": self.model, "out": str(self.out), "files": self.files}


def cmd_import_hf(args) -> ImportRun:
    # default: the user's models folder, so the import is found by its folder name
    if not args.out:
        checkpoint.check_user_model_name(Path(args.path).resolve().name)
    out = Path(args.out) if args.out else checkpoint.USER_DIR / Path(args.path).resolve().name
    if occupied(out) and not args.overwrite:
        raise FileExistsError(f"{out} already exists; choose another OUT or pass --overwrite")
    check_folder_output(out)
    if out.resolve() == Path(args.path).resolve():
        raise ValueError(f"OUT {out} is the folder being imported; give the checkpoint another folder")
    t0 = time.perf_counter()
    ck = load_hf(args.path)
    checkpoint.save_checkpoint(out, ck.model, ck.palette, ck.meta, overwrite=args.overwrite)
    return ImportRun(out, str(args.path), ck, time.perf_counter() - t0)


def cmd_export_hf(args) -> ExportRun:
    ck = checkpoint.load_checkpoint(args.model)
    out = export_hf(ck, args.out, overwrite=args.overwrite)
    return ExportRun(str(ck.path), out, sorted(p.name for p in out.iterdir()))


def add_parsers(sub) -> list:
    """Add this capability's verbs to the `igpt-lite` parser; return the parsers that run (they take --json)."""
    p = sub.add_parser("import-hf", help="import a saved Hugging Face ImageGPT folder (e.g. the official iGPT)")
    p.add_argument("path", help="folder written by transformers' save_pretrained, with preprocessor_config.json")
    p.add_argument("out", nargs="?", default=None,
                   help="checkpoint folder (default: the user's models folder, found by the folder's name)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoint's files in OUT; other files there are left alone")
    p.set_defaults(func=cmd_import_hf)


    p = sub.add_parser("export-hf", help="write a model as a Hugging Face ImageGPT folder (norm rms models)")
    model_arg(p)
    p.add_argument("out", help="folder for config.json, model.safetensors, preprocessor_config.json")
    p.add_argument("--overwrite", action="store_true",
                   help="replace those three files in OUT; other files there are left alone")
    p.set_defaults(func=cmd_export_hf)
    return [sub.choices["import-hf"], sub.choices["export-hf"]]
