"""The probe report of a checkpoint: its probe table with what it belongs to, shipped beside the
checkpoint (probe.json), cached on disk, or computed."""
from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, load_checkpoint, step_dirs
from ..features import features_key
from ..storage import cache_root, write_file_atomically
from .estimators import DEFAULT_CS, DEFAULT_MAX_ITER, LinearProbe, as_checkpoint
from .run import probe_checkpoints, probe_layers, probe_model, step_of
from .table import ProbeSummary, ProbeTable

REPORT_FORMAT = "igpt-lite-probe-report/1"
# bump when the probes compute something else for the same settings (2: pixel baselines choose on
# validation whether to whiten), so stored reports of the old computation read as stale
PROBE_VERSION = 2
REPORT_FILE = "probe.json"  # a report shipped inside a checkpoint folder: data/models/<name>/probe.json
# images per split (train, val, test) of the shipped reports and of those the app computes: all the
# bundled models' tables are made in ~15 min on one thread (scripts/probe_tables.py)
REPORT_LIMIT = 500


def features_dir(cache_dir=None) -> Path:
    """Where probe reports and the app keep features: `cache_dir`/features (default `cache_root()`)."""
    return _root(cache_dir) / "features"


def _root(cache_dir) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else cache_root()


def model_hash(ck: Checkpoint) -> str:
    """What a probe table depends on in a checkpoint: its config and every weight (`features_key`
    with no tokens, which also changes with the feature code's version), and its palette."""
    return f"{features_key(ck.model, torch.zeros(0, dtype=torch.long), [], 'none', 'mean')}-{ck.palette.fingerprint}"


def run_steps(checkpoint) -> list[Path]:
    """The saved step-* checkpoints of the training run a checkpoint belongs to (oldest first),
    or [] for one outside a run (bundled, imported, exported models)."""
    path = as_checkpoint(checkpoint).path
    if path is None or not path.name.startswith("step-"):
        return []
    return step_dirs(path.parent)


@dataclass
class ProbeReport:
    """A probe table, and what it belongs to.

    table: `probe_model`'s (`probe_checkpoints`' for a report over training); dataset and settings
    (limit, norm, pool, Cs, max_iter, seed): how it was made; models: `model_hash` of the checkpoint
    (of every step, over training); steps: the run's steps or None. A stored report is used only
    when all of these match: a retrained model, another palette, dataset or setting never shows a
    stale table. source: "shipped" (beside the checkpoint), "cached" or "computed"; path: the file
    it was read from or written to."""
    table: ProbeTable
    dataset: str
    settings: dict
    models: list[str]
    steps: list[int] | None = None
    model: str | None = None  # the checkpoint folder it was computed from (for people; not checked)
    seconds: float | None = None  # time to compute it
    created: str | None = None  # UTC, ISO 8601
    source: str = "computed"
    path: str | None = None
    not_kept: str | None = None  # computed but not kept on disk: why (a read-only or full cache folder)

    @property
    def summary(self) -> ProbeSummary:
        """The table's headline (`ProbeTable.summary`)."""
        return self.table.summary()

    @property
    def over_training(self) -> bool:
        return self.steps is not None

    @property
    def key(self) -> str:
        """A hash of what the report belongs to (its cache file name)."""
        return _report_key(self.identity())

    def identity(self) -> dict:
        return {"format": REPORT_FORMAT, "models": self.models, "dataset": self.dataset, "settings": self.settings,
                "steps": self.steps}

    def to_dict(self) -> dict:
        return {**self.identity(), "model": self.model, "seconds": self.seconds, "created": self.created,
                "summary": self.summary.to_dict(), "table": self.table.to_records()}

    def save(self, path) -> Path:
        """Write the report as JSON (whole or not at all)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1, default=_json_scalar)
        return write_file_atomically(path, lambda tmp: tmp.write_text(text))

    def __repr__(self) -> str:
        return f"ProbeReport({self.source}, {self.dataset}, limit {self.settings.get('limit')}: {self.table!r})"



def _json_scalar(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _report_key(identity: dict) -> str:
    return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=16).hexdigest()


def _settings(limit, norm, pool, Cs, max_iter, seed) -> dict:
    """probe_model's arguments, and the probes' own defaults that the table depends on too."""
    knn = inspect.signature(probe_layers).parameters
    linear = {k: v for k, v in LinearProbe().get_params().items() if k not in ("Cs", "max_iter")}
    return {"version": PROBE_VERSION, "limit": limit, "norm": norm, "pool": pool, "Cs": sorted(float(c) for c in np.atleast_1d(Cs)),
            "max_iter": int(max_iter), "seed": int(seed), "linear_probe": linear,
            "knn": {k: knn[k].default for k in ("knn_k", "knn_temperature") if k in knn}}


_MISMATCH = {"format": "was written in another format", "models": "was made from other weights or another palette "
             "(the model changed since)", "dataset": "was made on another dataset", "settings": "was made with "
             "other settings", "steps": "covers other training steps"}


def load_probe_report(path, wanted: dict, source: str = "cached") -> ProbeReport:
    """A stored report, if it belongs to `wanted` (a `ProbeReport.identity()`); ValueError naming
    what differs otherwise, or when the file cannot be read. (The stored summary is not read back:
    it is the table's, recomputed.)"""
    path = Path(path)
    try:
        stored = json.loads(path.read_text())
        if not isinstance(stored, dict):
            raise ValueError(f"expected a JSON object, got a {type(stored).__name__}")
        for key, kind in (("model", str), ("created", str), ("seconds", (int, float))):
            if stored.get(key) is not None and (not isinstance(stored[key], kind) or isinstance(stored[key], bool)):
                raise ValueError(f"{key} must be {'a number' if key == 'seconds' else 'text'}, got {stored[key]!r}")
        report = ProbeReport(table=ProbeTable.from_records(stored["table"]),
                             **{k: stored[k] for k in ("dataset", "settings", "models", "steps", "model", "seconds",
                                                       "created")}, source=source, path=str(path))
        report.table.summary()  # what the page shows first: a table without trained rows is refused here
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable probe report ({e}); delete it or remake it") from e
    for field_, what in _MISMATCH.items():
        if stored.get(field_) != wanted[field_]:
            detail = "" if field_ in ("models", "format") else f": {stored.get(field_)} instead of {wanted[field_]}"
            raise ValueError(f"{path}: this probe table {what}{detail}; it is not used")
    return report


def probe_report(checkpoint, dataset: str | None = None, *, limit: int | None = REPORT_LIMIT,
                 over_training: bool = False, norm: str = "layernorm", pool: str = "mean", Cs=DEFAULT_CS,
                 max_iter: int = DEFAULT_MAX_ITER, seed: int = 0, reuse: bool = True, compute: bool = True,
                 cache_dir=None, on_step=None) -> ProbeReport:
    """The probe report of a checkpoint (path, name or Checkpoint) on a dataset (default: its own):
    the table shipped beside it (`REPORT_FILE` in its folder) if it belongs to this model and these
    settings, else the one cached under `cache_dir`/probes (default `cache_root()`), else, with
    `compute`, a new one from `probe_model` (over_training: `probe_checkpoints` over the run the
    checkpoint belongs to), cached there, with the features cached under `cache_dir`/features.

    reuse=False skips stored reports (to remake one). Without `compute` and with nothing stored,
    LookupError says why (none stored, or the stored one is stale and how). on_step(done, total):
    progress while computing.

    Example::

        report = probe_report("mnist")                 # shipped, cached or computed
        report.table.summary().text()
    """
    ck = as_checkpoint(checkpoint)
    name = ck.dataset_name(dataset)
    settings = _settings(limit, norm, pool, Cs, max_iter, seed)
    steps = run_steps(ck) if over_training else None
    if over_training and not steps:
        raise ValueError(f"{ck.path}: not a checkpoint of a training run (a run folder's step-* checkpoints, kept "
                         "with `igpt-lite train --keep 0`): there is nothing to probe over training")
    models = [model_hash(ck if d == ck.path else load_checkpoint(d)) for d in steps] if steps else [model_hash(ck)]
    wanted = {"format": REPORT_FORMAT, "models": models, "dataset": name, "settings": settings,
              "steps": [step_of(d) for d in steps] if steps else None}
    cached = _root(cache_dir) / "probes" / f"{_report_key(wanted)}.json"
    stored = [] if over_training or ck.path is None else [("shipped", ck.path / REPORT_FILE)]
    stored.append(("cached", cached))
    problems = []
    for source, path in stored if reuse else []:
        if path.exists():
            try:
                return load_probe_report(path, wanted, source)
            except ValueError as e:
                problems.append(str(e))
    if not compute:
        raise LookupError(" ".join(problems) or f"no probe table is stored for {ck.path or 'this model'} on {name} "
                          f"with these settings: compute it")
    not_kept = _unwritable(_root(cache_dir))  # a read-only or full cache costs time, not the report
    t0 = time.perf_counter()
    opts = dict(limit=limit, norm=norm, pool=pool, Cs=settings["Cs"], max_iter=max_iter, seed=seed,
                cache_dir=None if not_kept else features_dir(cache_dir), on_step=on_step)
    table = (probe_checkpoints(steps[0].parent, name, steps=wanted["steps"], **opts) if over_training
             else probe_model(ck, name, **opts))
    report = ProbeReport(table=table, dataset=name, settings=settings, models=models, steps=wanted["steps"],
                         model=str(ck.path) if ck.path else None, seconds=time.perf_counter() - t0,
                         created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    try:
        if not not_kept:
            report.save(cached)
            report.path = str(cached)
    except OSError as e:
        not_kept = f"{cached} cannot be written ({e.strerror or e})"
    report.not_kept = not_kept
    return report


def _unwritable(root: Path) -> str | None:
    """Why nothing can be kept under `root` (read-only, not a folder, full), or None when it can."""
    try:
        for sub in ("probes", "features"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=root / sub):
                pass
    except OSError as e:
        return f"{e.filename or root} cannot be written ({e.strerror or e})"
    return None
