"""Where igpt-lite keeps what it computes, and how it writes files: folders and files appear whole
or not at all (written under a temporary name, then renamed), and outputs are checked before any work."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import platformdirs

# the repository root when igpt_lite runs from a checkout (site-packages when it is installed)
CHECKOUT = Path(__file__).resolve().parents[1]


def in_checkout() -> bool:
    """Whether igpt_lite runs from a source checkout (not from an installed wheel)."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "data").is_dir()


def bundled_models_dir() -> Path:
    """The bundled models: package data of the installed wheel (igpt_lite/models), else data/models/
    of a checkout."""
    installed = Path(str(resources.files("igpt_lite") / "models"))
    return installed if installed.is_dir() else CHECKOUT / "data" / "models"


def app_main() -> Path:
    """The Streamlit app's main.py: package data of the installed wheel (igpt_lite/app), else app/ of a
    checkout."""
    installed = Path(str(resources.files("igpt_lite") / "app" / "main.py"))
    return installed if installed.is_file() else CHECKOUT / "app" / "main.py"


def default_data_root() -> Path:
    """Where the datasets you bring live unless $IGPT_LITE_DATA or --root says otherwise: data/datasets/
    in a checkout, else the platform's folder for a user's data (never inside the installed package)."""
    return CHECKOUT / "data" / "datasets" if in_checkout() else Path(platformdirs.user_data_dir("igpt-lite")) / "datasets"


def cache_root() -> Path:
    """Where computed things are kept: probe reports (probes/), features (features/), encoded
    datasets (tokens/): $IGPT_LITE_CACHE, else ~/.cache/igpt-lite."""
    return Path(os.environ.get("IGPT_LITE_CACHE") or Path.home() / ".cache" / "igpt-lite").expanduser()


def is_disk_full(e: BaseException) -> bool:
    """Whether a write failed for want of space (a full disk or a quota), however the writer said so
    (safetensors reports it as a SafetensorError naming os error 28)."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(e) or "os error 28" in str(e)


@contextmanager
def full_disk_named(final, unchanged: str = "nothing was written there"):
    """A full disk while writing `final` becomes one OSError naming it and saying what to do; other
    errors pass unchanged."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        full = OSError(f"no space left on the disk holding {final}: {unchanged}; free space (or choose another "
                       "place) and run again")
        full.errno = errno.ENOSPC  # (set after: an OSError built with it would print "[Errno 28]" first)
        raise full from None


def _sync(path: Path) -> None:
    """Push a file's (or every file's under a folder) bytes to the disk, so the rename that follows
    never publishes a name whose data a power cut would lose."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_folder_output(final) -> bool:
    """Whether `final` exists as a folder to write into; refused (before any work): a symbolic link, a
    file, a parent that is a file."""
    final = Path(final)
    if final.is_symlink():
        raise FileExistsError(f"{final} is a symbolic link; it is not written through: remove the link, or choose "
                              "another path")
    for parent in reversed(final.parents):
        if parent.exists() and not parent.is_dir():
            raise FileExistsError(f"{parent} is a file, not a folder, so {final} cannot be written there; "
                                  "choose another path")
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"{final} is a file, not a folder; choose another path")
    return final.is_dir()


def scratch_dir(name: str) -> tempfile.TemporaryDirectory:
    """A temporary folder under `cache_root()/scratch` for a notebook's runs and features, removed
    when the returned object is (`.cleanup()`, or when the process ends normally). A process killed
    first (a notebook kernel restarted mid-run) leaves its folder behind: the next call removes the
    folders of processes that no longer run."""
    root = cache_root() / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*-pid*-*"):
        pid = old.name.rsplit("-pid", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{name}-pid{os.getpid()}-", dir=root)


def _running(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there: keep the folder
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_folder_atomically(final: Path, write) -> Path:
    """Write a folder with `write(tmp_dir)` and put it in place without ever showing a half-written one.

    A new folder appears in one rename. Into an existing folder (an overwrite) each file `write`
    made replaces the one of the same name in one rename, config.json last (it is removed first,
    so a folder caught between old and new files reads as incomplete, never as a mix); files it did
    not write are left alone. Files reach the disk (fsync) before any rename; a full disk is one
    message naming `final`, with nothing left half-written."""
    final = Path(final)
    existing = check_folder_output(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = (final if existing else final.parent) / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    unchanged = "nothing was changed there" if existing else "nothing was written"
    try:
        with full_disk_named(final, unchanged):
            tmp.mkdir()
            write(tmp)
            _sync(tmp)
        if existing:
            if (tmp / "config.json").exists():
                (final / "config.json").unlink(missing_ok=True)
            _move_into(tmp, final)
        else:
            os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final


def _move_into(src: Path, dst: Path) -> None:
    """Move src's files into dst, replacing those of the same name one rename each; config.json last."""
    for entry in sorted(src.iterdir(), key=lambda e: e.name == "config.json"):
        target = dst / entry.name
        if entry.is_dir():
            if target.is_symlink() or (target.exists() and not target.is_dir()):  # replaced, never written through
                target.unlink()
            target.mkdir(exist_ok=True)
            _move_into(entry, target)
        else:
            if target.is_dir():
                raise FileExistsError(f"{target} is a folder where {entry.name} is to be written; move it away")
            os.replace(entry, target)


def occupied(path: str | Path) -> bool:
    """Whether writing a folder at `path` would touch something: an empty folder is free."""
    path = Path(path)
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def write_file_atomically(path: str | Path, write) -> Path:
    """Write one file with `write(tmp_path)` beside it, then rename it into place: a reader (or a
    kill) never sees a half-written file, and the old file stays whole until the new one is. The
    bytes reach the disk (fsync) before the rename; a full disk is one message naming `path`.
    A symbolic link at `path` is replaced, never written through."""
    path = Path(path)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}{path.suffix}"
    try:
        with full_disk_named(path, "nothing was written" + (" and the file there is unchanged" if path.exists() else "")):
            write(tmp)
            _sync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_new_output(path: str | Path, overwrite: bool = False, flag: str = "--out") -> Path:
    """Before any work: `path` can be written (its folder exists) and does not exist unless
    `overwrite`. The message names the flag the user gave."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{flag} {path} already exists; choose another path or pass --overwrite")
    if path.is_dir():
        raise FileExistsError(f"{flag} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{flag} {path}: the folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"{flag} {path}: cannot write in {path.parent} (permission denied)")
    return path
