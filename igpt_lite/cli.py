"""Command line: `igpt-lite VERB ...` (also `python -m igpt_lite`). Thin: parse, call the library,
print a human summary, or with --json exactly one JSON object on stdout.

Arguments are checked where they are parsed (validate.py's rules, the flag named in the message).
Exit codes: 0 done; 2 refused (a bad argument, a missing or damaged input, an output that exists
without --overwrite, a run folder in use) with one line on stderr and nothing written; 130 interrupted.
Files written (--out, --html) appear whole or not at all."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

from . import __version__, checkpoint, data
from .arguments import VerbResult, check_outputs, count
from .tables import key_value_text
from .threads import cpu_threads
from .attention import cli as attention_cli
from .bias import cli as bias_cli
from .checkpoint import ModelSummary
from .data import cli as data_cli
from .interop import cli as interop_cli
from .model import PRESETS
from .palette import cli as palette_cli
from .probe import cli as probe_cli
from .sample import cli as sample_cli
from .storage import app_main
from .train import cli as train_cli


@dataclass
class KnownModels(VerbResult):
    """`igpt-lite info` without --model: the models found by name, the presets and the datasets."""
    models: dict[str, str]  # name: folder
    presets: list[str]
    datasets: list[str]

    def to_dict(self) -> dict:
        return {"models": self.models, "presets": self.presets, "datasets": self.datasets}


@dataclass
class ModelInfo(VerbResult):
    """`igpt-lite info --model`: the model's summary; its card is the human summary."""
    summary: ModelSummary

    def to_dict(self) -> dict:
        return self.summary.to_dict()

    def text(self) -> str:
        return key_value_text(dict(self.summary.card()))


def cmd_info(args) -> KnownModels | ModelInfo:
    if not args.model:
        return KnownModels({name: str(p) for name, p in checkpoint.model_names().items()}, list(PRESETS),
                           data.dataset_names())
    return ModelInfo(checkpoint.load_checkpoint(args.model).summary())


def _add_info(sub) -> list:
    p = sub.add_parser("info", help="describe a model, or list known models")
    p.add_argument("--model", default=None, help="a checkpoint folder, run folder or model name (default: list them)")
    p.set_defaults(func=cmd_info)
    return [p]


def cmd_app(args):
    """Replace this process with `streamlit run` on the app (Ctrl-C stops it)."""
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise ValueError("the app needs its extra: pip install 'igpt-lite[app]'") from None
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(app_main()),
                              "--server.address", args.host, "--server.port", str(args.port),
                              "--server.headless", "true", "--server.maxUploadSize", "20",
                              "--browser.gatherUsageStats", "false"])


def _add_app(sub) -> list:
    p = sub.add_parser("app", help="start the Streamlit app (bundled models, your own, imported ones)",
                       description="Serves the app until Ctrl-C. It listens on this machine only unless --host "
                       "says otherwise (0.0.0.0: every interface, so others on your network can open it).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=count(1, 65535), default=8501, help="port (default: %(default)s)")
    p.set_defaults(func=cmd_app)
    return []  # it serves; it has no result to print


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igpt-lite", description="A compact Image GPT.")
    parser.add_argument("--version", action="version", version=f"igpt-lite {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True)
    runnable = []  # each capability adds its verbs, in the order `igpt-lite --help` lists them
    for add_parsers in (palette_cli.add_parsers, train_cli.add_parsers, sample_cli.add_parsers, bias_cli.add_parsers,
                        probe_cli.add_parsers, attention_cli.add_parsers, _add_info, interop_cli.add_parsers,
                        data_cli.add_parsers, _add_app):
        runnable += add_parsers(sub)
    for p in runnable:  # --json on every verb that runs (data's: on its sub-commands, where argparse reads the flags)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser



def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage error (2) or the help (0)
        return e.code
    verb = " ".join(v for v in (args.verb, getattr(args, "data_verb", None)) if v)
    try:
        check_outputs(args)  # before any work
        with cpu_threads():  # the cores other programs leave free (IGPT_LITE_THREADS overrides)
            result = args.func(args)
    except (ValueError, OSError, FloatingPointError) as e:  # OSError: missing, existing, unwritable, full
        print(f"igpt-lite {verb}: error: {_said(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"igpt-lite {verb}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one report
        # every verb returns a result object: to_dict() is the --json object, text() the human summary
        try:
            print(json.dumps(result.to_dict()) if args.json else result.text(), flush=True)
        except BrokenPipeError:  # `igpt-lite info | head`: the reader has gone; nothing more to say
            _drop_stdout()
        except (OSError, UnicodeEncodeError) as e:  # stdout on a full disk: the work is done, its report is not
            _drop_stdout()
            print(f"igpt-lite {verb}: error: the result could not be written to stdout ({_said(e)}); the work "
                  "itself is done", file=sys.stderr)
            return 2
    return 0


def _said(e: BaseException) -> str:
    """An error as one line: an OSError's reason and file without its "[Errno N]" prefix."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e)


def _drop_stdout() -> None:
    """Send what is left for stdout to /dev/null, so that the exit's flush raises nothing more."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _resume_hint(args) -> str:
    """After Ctrl-C in `train`: continue with --resume only where a checkpoint was written."""
    if args.verb != "train":
        return ""
    if checkpoint.step_dirs(args.out):
        return " (continue with --resume)"
    return " before the first checkpoint: nothing to resume; run the same command again to start over"


if __name__ == "__main__":
    sys.exit(main())
