"""The run folder: who owns it (a lock), what it holds (checkpoints to resume from, or none), whether
a run may continue there (same model, data and palette), and room for its checkpoints.

What resume means is written here once: a run folder holding checkpoints is continued only by a
resume; the library's resume of a folder with none starts the run (scripts rerun until done rely
on it), the CLI's `--resume` is stricter (`require_resumable`)."""
from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
import socket
import stat
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import read_config, step_dirs
from ..history import History
from ..model import GPT, GPTConfig
from ..palette import Palette


LOCK_NAME = ".lock"


@contextmanager
def run_lock(out_dir):
    """Own a run folder while training: `out_dir/.lock` (created with the folder) holds the owner's
    PID, host, start time and command, and an exclusive flock on it. A second run on the folder is
    refused at once with the owner's details; the kernel drops the flock when the owner dies (even
    by kill -9), so a lock left behind is stale and simply taken over. Also proves before any work
    that the folder can be written."""
    out_dir = Path(out_dir)
    path = out_dir / LOCK_NAME
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # never through a link: a .lock planted as a symlink would make us truncate the file it names
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        if path.is_symlink():
            raise FileExistsError(f"{path} is a symbolic link; a run folder's lock must be a plain file (it is "
                                  "written): remove the link, or choose another output folder (--out)") from None
        raise PermissionError(f"cannot write the run folder {out_dir} ({e.strerror}); choose another "
                              "output folder (--out)") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileExistsError(f"{path} is not a plain file; remove it, or choose another output folder (--out)")
    with os.fdopen(fd, "r+") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                owner = json.loads(f.read() or "{}")
            except json.JSONDecodeError:
                owner = {}
            raise FileExistsError(
                f"{out_dir} is in use by another training run (pid {owner.get('pid', '?')} on "
                f"{owner.get('host', '?')}, since {owner.get('started', '?')}: {owner.get('command', '?')}); "
                "wait for it to end, or choose another output folder") from None
        except ImportError:  # no flock (Windows): the lock file records the owner, unenforced
            pass
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}))
        f.flush()
        for leftover in out_dir.glob(".tmp-step-*"):  # a checkpoint being written when a run was killed
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            yield path
        finally:
            f.seek(0)
            f.truncate()  # released: an empty lock file is nobody's
            if created and [p.name for p in out_dir.iterdir()] == [LOCK_NAME]:  # a run that wrote nothing
                path.unlink()
                out_dir.rmdir()


_HELD_LOCKS: set[Path] = set()  # run folders this process owns (pretrain holds the lock train takes)


def owns_run_folder(fn):
    """Run `fn` holding `run_lock(out_dir)` (on rank 0 of a torchrun job: it alone writes)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        out_dir = Path(signature.bind(*args, **kwargs).arguments["out_dir"]).resolve()
        if out_dir in _HELD_LOCKS or int(os.environ.get("RANK", "0")) != 0:
            return fn(*args, **kwargs)
        with run_lock(out_dir):
            _HELD_LOCKS.add(out_dir)
            try:
                return fn(*args, **kwargs)
            finally:
                _HELD_LOCKS.discard(out_dir)

    return wrapper


RUN_FIELDS = ("dataset", "resolution", "channels")  # what the data was, as the checkpoint's meta records it


def run_steps(out_dir, resume: bool) -> list[Path]:
    """The run's checkpoints, to resume from; refused if there are some and this is not a resume.
    (A library resume with none starts the run, which scripts rerun until done rely on.)"""
    existing = step_dirs(out_dir)
    if existing and not resume:
        raise FileExistsError(f"{out_dir} already holds checkpoints ({existing[-1].name}); "
                              "resume it (--resume) or choose another output folder")
    return existing


def require_resumable(out_dir, steps: int) -> None:
    """The CLI's `--resume` (resume means resume, before any work): refused when the run folder holds
    no checkpoint to resume from, or its latest is already at `steps`."""
    existing = step_dirs(out_dir)
    if not existing:
        raise FileNotFoundError(f"--resume: {out_dir} holds no checkpoint to resume from; leave out --resume "
                                "to start the run")
    done = (read_config(existing[-1])[1].get("training") or {}).get("step") or 0
    if done >= steps:
        raise ValueError(f"--resume: the run in {out_dir} is already at step {done}; give --steps above "
                         f"{done} to train it further")


def check_resume(last_step, model_cfg: GPTConfig, meta: dict | None = None, palette: Palette | None = None) -> None:
    """Refuse to continue the run whose latest checkpoint is `last_step` with another model config,
    objective, dataset or palette; the message lists every difference."""
    then, saved = read_config(last_step)
    diffs = []
    then, now = then.to_dict(), model_cfg.to_dict()
    if then.get("objective") != now["objective"]:
        diffs.append(f"objective: the run is {then.get('objective')!r}, this is {now['objective']!r}")
    diffs += [f"model {k}: the run has {then.get(k)!r}, this has {now[k]!r}"
              for k in now if k != "objective" and then.get(k) != now[k]]
    diffs += [f"{k}: the run has {saved.get(k)!r}, this has {(meta or {})[k]!r}"
              for k in RUN_FIELDS if k in (meta or {}) and k in saved and saved[k] != meta[k]]
    if (meta or {}).get("data_files", "") != saved.get("data_files", (meta or {}).get("data_files", "")):
        diffs.append(f"data: the files of {meta.get('dataset', 'the dataset')} changed since the run started (names, "
                     f"sizes or modification times: {saved['data_files']} then, {meta['data_files']} now)")
    if palette is not None and palette.fingerprint != saved.get("palette_fingerprint"):
        diffs.append(f"palette: the run's is {saved.get('palette_fingerprint')}, this one is {palette.fingerprint} "
                     "(leave out --palette to use the run's own)")
    if diffs:
        raise ValueError(f"cannot resume {Path(last_step).parent}: " + "; ".join(diffs) +
                         ". Resume with the run's own settings, or train into another output folder")


def check_apart(out_dir, dataset_folder: Path | None) -> None:
    """Refuse a run folder that is, holds or lies inside the folder the data is read from: the
    checkpoints would be written among the images (and a folder dataset would change under the run)."""
    if dataset_folder is None:
        return
    out, data = Path(out_dir).resolve(), Path(dataset_folder).resolve()
    if out == data or out.is_relative_to(data) or data.is_relative_to(out):
        raise ValueError(f"--out {out_dir} {'is' if out == data else 'overlaps'} the data folder {dataset_folder}: "
                         "the run would write its checkpoints among the images; choose an output folder outside it")


def check_free_space(out_dir: Path, model: GPT, keep: int) -> None:
    """A checkpoint (weights + two Adam moments, float32) times those kept plus the one being written."""
    need = model.num_params() * 4 * 3 * ((keep or 1) + 1)
    free = shutil.disk_usage(out_dir).free
    if free < need:
        raise OSError(f"{out_dir}: {free / 1e9:.2f} GB free, the checkpoints need about {need / 1e9:.2f} GB; "
                      "free space or choose another output folder")


@dataclass
class TrainResult:
    """What `igpt-lite train` reports: the run's latest checkpoint, its size, time and bits/dim."""

    out: Path  # the latest step's checkpoint folder
    dataset: str
    parameters: int
    steps: int
    seconds: float
    val_bpd: float | None  # at the last evaluation; None if there was none
    baseline_bpd: float | None  # the palette's entropy: what a model that learned only the colours gets
    history: History

    def to_dict(self) -> dict:
        return {"out": str(self.out), "dataset": self.dataset, "parameters": self.parameters, "steps": self.steps,
                "seconds": self.seconds, "val_bpd": self.val_bpd, "baseline_bpd": self.baseline_bpd,
                "history": self.history.to_records()}

    def text(self) -> str:
        """One line a field (numbers to four significant digits), the history left out."""
        rows = {k: v for k, v in self.to_dict().items() if k != "history"}
        return "\n".join(f"{k}: {f'{v:.4g}' if isinstance(v, float) else v}" for k, v in rows.items())
