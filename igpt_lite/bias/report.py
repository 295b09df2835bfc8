"""One call for both bias tests on one model (`run`), the flow the CLI's `bias` verb and the app's
bias page share: the likelihood test first (it found the association planted in figures-p90 where
iEAT on embeddings did not: README, "The controlled bias experiment"), or why it was skipped, then
iEAT on every layer, each beside the same test on a random-weight copy, in one `BiasReport`."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from .embedding import EXTRACTIONS, BiasResult, bias_test
from .likelihood import BERT_SKIP, LikelihoodResult, likelihood_test
from .sets import SET_NAMES, check_sets, compose_sets
from .stats import BiasRow, rows_text

NOT_ASKED = "not asked (--compose none)"
COMPOSE = ("rows", "columns", "none")


@dataclass
class Extraction:
    """How images became embeddings: `name` one of EXTRACTIONS ("ours" or "ieat")."""
    name: str
    crop: str  # how the images were cropped square where they were loaded (load_ieat_folders)
    norm: str  # how each layer's output was normalised before pooling (features.py)
    resolution: int
    resize: str = "area average (PIL box)"
    pool: str = "mean"

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "name"}


@dataclass
class SetInfo:
    """One of the four sets: how many images, and the folder (and the images' colour modes before
    conversion) where they came from one (data.ImageFolder)."""
    images: int
    folder: str | None = None
    modes: dict[str, int] | None = None

    def to_dict(self) -> dict:
        if self.folder is None:
            return {"images": self.images}
        return {"folder": self.folder, "images": self.images, "modes": self.modes}


@dataclass
class BiasReport:
    """Both bias tests on one model: `likelihood` (None, with the reason in `likelihood_skipped`,
    where it did not run) and `ieat`, per layer; each holds its random-weight baseline where run.
    `to_dict()` is the object `igpt-lite bias --json` prints."""
    model: str | None  # the checkpoint's path
    extraction: Extraction
    sets: dict[str, SetInfo]  # X, Y, A, B
    ieat: BiasResult
    likelihood: LikelihoodResult | None
    likelihood_skipped: str | None = None
    notes: list[str] = field(default_factory=list)  # images converted to the model's colour mode
    seed: int = 0
    seconds: float = float("nan")  # both tests, from the first forward pass to the last p-value

    @property
    def table(self) -> list[BiasRow]:
        return self.ieat.table

    @property
    def baseline_table(self) -> list[BiasRow]:
        return self.ieat.baseline_table

    def likelihood_text(self) -> str:
        if self.likelihood is None:
            return f"likelihood test: skipped ({self.likelihood_skipped})"
        return self.likelihood.text()

    def to_dict(self) -> dict:
        return {"model": self.model, "extraction": self.extraction.to_dict(),
                "sets": {k.lower(): s.to_dict() for k, s in self.sets.items()},  # keys as the CLI's flags
                "notes": self.notes, "seed": self.seed, "seconds": self.seconds,
                "likelihood": self.likelihood.to_dict() if self.likelihood else {"skipped": self.likelihood_skipped},
                "ieat": self.ieat.to_dict(), "table": self.ieat.to_records(),
                "baseline_table": self.ieat.to_records(baseline=True)}

    def text(self) -> str:
        d = self.to_dict()
        lines = [f"{key}: {d[key]}" for key in ("model", "extraction", "sets", "notes", "seed")]
        lines += [f"seconds: {self.seconds:.4g}", self.likelihood_text(), rows_text(self.table)]
        lines.append("random-weight copy:\n" + rows_text(self.baseline_table) if self.baseline_table
                     else "random-weight copy: not run")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<p>{self.likelihood_text()}</p>" + self.ieat._repr_html_()

    def __repr__(self) -> str:
        return f"BiasReport({self.model}: {self.likelihood_text()}; {self.ieat!r})"



def run(checkpoint, sets: dict, *, compose: str = "rows", composed: dict | None = None, layers=None,
        extraction: str = "ours", n_permutations: int = 100_000, seed: int = 0, baseline: bool = True,
        batch_size: int = 64, on_step=None) -> BiasReport:
    """Both bias tests on `checkpoint` for `sets` = {"X", "Y", "A", "B"}: image stacks, or the
    data.ImageFolder each was loaded as (the report then names its folder). The likelihood test
    (ar models) scores each target composed with each attribute: `composed` where given (e.g.
    scenes.TestSets.composed()), else `compose_sets(sets, compose)` ("rows" or "columns"; "none"
    skips it). Then iEAT on every layer (`layers`, default all) with `extraction`'s norm (its crop is
    the loader's: `load_ieat_folders(crop=EXTRACTIONS[extraction]["crop"])`). Both use `seed` for
    their permutations and, with `baseline`, for their random-weight copy. `on_step(done, total)`:
    the likelihood test's progress in images scored (the longer part; iEAT follows in one pass)."""
    if extraction not in EXTRACTIONS:
        raise ValueError(f"extraction must be one of {', '.join(EXTRACTIONS)}, got {extraction!r}")
    if compose not in COMPOSE:
        raise ValueError(f"compose must be one of {', '.join(COMPOSE)}, got {compose!r}")
    images = {k: getattr(v, "images", v) for k, v in sets.items()}  # an ImageFolder, or its images
    check_sets(checkpoint, images, SET_NAMES)
    tests = dict(n_permutations=n_permutations, seed=seed, baseline=baseline, baseline_seed=seed,
                 batch_size=batch_size)
    t0 = time.perf_counter()
    likelihood, skipped = None, None
    if compose == "none":
        skipped = NOT_ASKED
    elif checkpoint.config.objective != "ar":
        skipped = BERT_SKIP
    else:
        likelihood = likelihood_test(checkpoint, compose_sets(images, split=compose) if composed is None else composed,
                                     on_step=on_step, **tests)
    norm = EXTRACTIONS[extraction]["norm"]
    ieat = bias_test(checkpoint, images, layers=layers, norm=norm, **tests)
    seconds = time.perf_counter() - t0
    channels = checkpoint.palette.channels
    info = {k: SetInfo(images=len(v.files), folder=str(v.path), modes=v.modes) if hasattr(v, "files")
            else SetInfo(images=len(v)) for k, v in ((k, sets[k]) for k in SET_NAMES)}
    notes = [n for n in (sets[k].conversion_note(channels) for k in SET_NAMES if hasattr(sets[k], "files")) if n]
    return BiasReport(model=str(checkpoint.path) if checkpoint.path else None,
                      extraction=Extraction(extraction, EXTRACTIONS[extraction]["crop"], norm,
                                            checkpoint.config.height),
                      sets=info, ieat=ieat, likelihood=likelihood, likelihood_skipped=skipped, notes=notes,
                      seed=seed, seconds=seconds)
