"""The likelihood test over several fresh draws of the figures test scenes (`scenes.TestSets.quads`,
one seed a draw: counterfactual quads, a man and a woman in one room, each with a career and a
domestic prop in one slot, so only gender and the prop's category differ within a quad). One
draw's p says how surprising that draw would be without an association; the spread of d over draws
says how much a conclusion depends on the draw, which one run cannot show.

Over several draws the evidence adds up: Stouffer's combination of the draws' p-values (each the
quads test's, calibrated on its own) is one p for the whole run.

With a matched control (the same recipe trained on balanced data: figures-p90 against figures-p50;
in general a user's model before and after cleaning its data) every draw is scored by both models,
and two results compare them: the difference in d, draw by draw, with its interval over draws, and
the paired test, the same test on the model's bits minus the control's, scene by scene (what both
models find hard or easy in a scene cancels, so it needs fewer scenes to see a difference).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .likelihood import composed_bits, image_counter, likelihood_row, random_bits
from .sets import PAIRS, check_sets
from .stats import BiasRow, _check_test_options

ALPHA = 0.05
# one draw's size: counterfactual quads of 4 scenes each (256 scenes a model). Chosen by measurement:
# docs/experiments/bias-draws.md
DESIGN = {"quads": 64}


def composed_draw(seed: int, n_quads: int = DESIGN["quads"], resolution: int = 32, channels: int = 3) -> dict:
    """One draw of the figures test scenes for the likelihood test: {"XA", ...} of
    `TestSets(seed=seed).quads(n_quads)`, uint8 n_quads×R×R×channels (grey for a 1-channel model, as
    the data readers make it)."""
    from ..data import scenes, to_channels

    quads = scenes.TestSets(seed=seed, resolution=resolution).quads(n_quads)
    return {k: to_channels(v, channels) for k, v in quads.items()}


@dataclass
class Spread:
    """A number over draws: its mean, a 95% t interval for the mean, the standard deviation across
    draws, and (for d, with each draw's p) how many draws gave p < ALPHA and the draws' p-values
    combined into one (`combined_p`)."""
    mean: float
    low: float
    high: float
    sd: float
    n: int
    significant: int | None = None  # draws with p < ALPHA (None for a difference)
    p_combined: float | None = None  # combined_p of the draws' p-values (None for a difference)

    @classmethod
    def of(cls, values, p_values=None) -> "Spread":
        from scipy.stats import t as student_t

        v = np.asarray(values, dtype=np.float64)
        n = len(v)
        sd = float(v.std(ddof=1)) if n > 1 else float("nan")
        half = float(student_t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else float("nan")
        sig = None if p_values is None else int((np.asarray(p_values) < ALPHA).sum())
        return cls(mean=float(v.mean()), low=float(v.mean() - half), high=float(v.mean() + half), sd=sd, n=n,
                   significant=sig, p_combined=None if p_values is None else combined_p(p_values))

    def text(self) -> str:
        text = f"mean {self.mean:+.2f} (95% interval over {self.n} draws {self.low:+.2f} to {self.high:+.2f}; SD {self.sd:.2f})"
        if self.significant is not None:
            text += f", p < {ALPHA} in {self.significant} of {self.n} draws, combined p {self.p_combined:.2g}"
        return text


def combined_p(p_values):
    """Stouffer's combination of independent one-sided p-values: z_i = Φ⁻¹(1 - p_i), p = 1 - Φ(Σ z_i / √k).
    The draws are independent (new scenes each), and each draw's p is uniform where there is
    no association, so the combined p is too; a consistent lean adds up over draws where one draw's
    p cannot show it. A 2-D array gives one combined p a row (an array)."""
    from scipy.stats import norm

    # clipped alike at both ends, so that a draw with p 0 and one with p 1 cancel
    p = np.clip(np.asarray(p_values, dtype=np.float64), 1e-15, 1 - 1e-15)
    if p.ndim not in (1, 2) or p.shape[-1] == 0:
        raise ValueError(f"give one or more p-values (or rows of them), got shape {p.shape}")
    combined = norm.sf(norm.isf(p).sum(-1) / math.sqrt(p.shape[-1]))
    return float(combined) if p.ndim == 1 else combined


@dataclass
class Draw:
    """One draw's likelihood test: the model's row, its random-weight copy's (seeded with the draw's
    seed), the control's and the paired test's (on the model's bits minus the control's, scene by
    scene: `paired_bits`), each None where not run."""
    seed: int
    model: BiasRow
    baseline: BiasRow | None = None
    control: BiasRow | None = None
    paired: BiasRow | None = None


WHO = ("model", "baseline", "control", "paired")


def paired_bits(bits: dict, control_bits: dict) -> dict:
    """{"XA": ..., ...}: each composed scene's bits under the model minus under the control."""
    return {k: np.asarray(bits[k], dtype=np.float64) - np.asarray(control_bits[k], dtype=np.float64) for k in PAIRS}


@dataclass
class DrawsResult:
    """`likelihood_draws`: every draw's rows, and the spread of d over draws (with the combined p) for
    the model, its random-weight copies, the control and the paired test, and the model-minus-control
    difference in d."""
    model: str  # the model's name (its folder's)
    draws: list[Draw]
    n_quads: int
    control: str | None = None
    # each draw's bits: {"model": {"XA": n_quads, ...}, "baseline": ..., "control": ...} (those run)
    bits: list[dict] = field(default_factory=list, repr=False)

    def spread(self, which: str = "model") -> Spread | None:
        """d over draws for "model", "baseline", "control" or "paired" (None where not run)."""
        rows = [getattr(d, which) for d in self.draws]
        if any(r is None for r in rows):
            return None
        return Spread.of([r.effect_size for r in rows], [r.p_value for r in rows])

    def difference(self) -> Spread | None:
        """d(model) - d(control) on the same draws (None without a control)."""
        if self.control is None:
            return None
        return Spread.of([d.model.effect_size - d.control.effect_size for d in self.draws])

    def to_dict(self) -> dict:
        def spread(s):
            return None if s is None else s.__dict__

        return {"test": "likelihood over draws", "model": self.model, "control": self.control,
                "n_quads": self.n_quads, "alpha": ALPHA,
                "seeds": [d.seed for d in self.draws],
                "spread": {w: spread(self.spread(w)) for w in WHO},
                "difference": spread(self.difference()),
                "draws": [{"seed": d.seed, **{w: getattr(d, w).to_dict() for w in WHO if getattr(d, w) is not None}}
                          for d in self.draws]}

    def text(self) -> str:
        seeds = [d.seed for d in self.draws]
        lines = [f"likelihood test on {len(seeds)} draws of the figures scenes (seeds {seeds[0]}–{seeds[-1]}), "
                 f"{self.n_quads} counterfactual quads a draw",
                 f"{self.model}: d {self.spread('model').text()}"]
        if self.control is not None:
            lines.append(f"control {self.control}: d {self.spread('control').text()}")
            lines.append(f"difference in d (model - control, draw by draw): {self.difference().text()}")
            lines.append(f"paired test (model's bits - control's, scene by scene): d {self.spread('paired').text()}")
        if self.spread("baseline") is not None:
            lines.append(f"random-weight copies: d {self.spread('baseline').text()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"DrawsResult({self.text()})"


def likelihood_draws(checkpoint, seeds, *, control=None, baseline: bool = True, n_quads: int = DESIGN["quads"],
                     n_permutations: int = 10_000, batch_size: int = 64, on_step=None) -> DrawsResult:
    """The likelihood test on one fresh draw of the figures test scenes per seed in `seeds`
    (`composed_draw`: `n_quads` counterfactual quads), on `checkpoint` (an ar model at the scenes'
    size), on random-weight copies, a new one every quad, seeded from the draw's seed (`baseline`:
    `likelihood.random_bits`), and on `control` (a Checkpoint trained the same way
    on balanced data) where given, then the paired test on the two models' bits. Each draw's p is
    the quads test's (`stats.quads_test`); `on_step(done, total)` counts composed images scored.

    Example::

        r = likelihood_draws(load_checkpoint("figures-p90"), range(1000, 1005), control=load_checkpoint("figures-p50"))
        print(r.text())
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("give at least one seed (one draw of the test scenes each)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must differ (each is one draw), got {seeds}")
    for s in seeds:
        _check_test_options(n_permutations, s, 0)
    if n_quads < 2:
        raise ValueError(f"n_quads must be at least 2 (the test needs a spread), got {n_quads}")
    models = {"model": checkpoint} | ({"control": control} if control is not None else {})
    for name, ck in models.items():
        if ck.config.objective != "ar":
            raise ValueError(f"the likelihood test needs an ar model; the {name} is {ck.config.objective}")
    side, channels = checkpoint.config.height, checkpoint.palette.channels
    per_draw = 4 * n_quads
    count = image_counter(on_step, len(seeds) * per_draw * (len(models) + int(baseline)))
    kw = dict(n_permutations=n_permutations, n_bootstrap=2_000)
    draws, kept = [], []
    for seed in seeds:
        composed = composed_draw(seed, n_quads, side, channels)
        for ck in models.values():
            check_sets(ck, composed, PAIRS)
        bits = {"model": composed_bits(checkpoint.model, checkpoint.palette, composed, batch_size, count)}
        if baseline:
            bits["baseline"] = random_bits(checkpoint.config, checkpoint.palette, composed, seed,
                                           checkpoint.model.device, batch_size, count)
        if control is not None:
            bits["control"] = composed_bits(control.model, control.palette, composed, batch_size, count)
        rows = {who: likelihood_row(b, seed=seed, **kw) for who, b in bits.items()}
        if control is not None:
            rows["paired"] = likelihood_row(paired_bits(bits["model"], bits["control"]), seed=seed, **kw)
        draws.append(Draw(seed=seed, **rows))
        kept.append(bits)
    return DrawsResult(model=checkpoint.summary().name, draws=draws, n_quads=n_quads,
                       control=control.summary().name if control is not None else None, bits=kept)


STUDY_FILE = "draws.json"  # a study over many draws shipped inside a checkpoint folder (scripts/bias_draws.py)


@dataclass
class DrawsStudy:
    """What the likelihood test gave over many fresh draws, measured once and shipped with a model
    (`STUDY_FILE` in its folder): per model ("model", "control", "baseline", "paired") the mean d and
    its standard error, the draws with p < ALPHA, and how often runs of k draws reach a combined p <
    ALPHA. `read(folder)` is None where no study was shipped."""
    seeds: list[int]
    n_quads: int
    names: dict  # {"model": "figures-p90", "control": ..., "baseline": ..., "paired": ...}
    table: dict  # {who: {"draws", "mean_d", "se", "significant", "runs_of_3": {...}, ...}}

    @classmethod
    def read(cls, folder) -> "DrawsStudy | None":
        import json
        from pathlib import Path

        path = Path(folder) / STUDY_FILE
        if not path.is_file():
            return None
        d = json.loads(path.read_text())
        try:
            return cls(seeds=d["seeds"], n_quads=d["n_quads"], names=d["names"],
                       table={w: d["table"][w] for w in d["names"]})
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a draws study written by scripts/bias_draws.py --summarise (missing {e}); "
                             "delete it or write it again") from None

    def markdown(self, runs: int = 5) -> str:
        """One line per model: mean d (s.e.), single draws with p < ALPHA, and the share of runs of
        `runs` draws (every set of that many of the study's draws) with combined p < ALPHA."""
        n = len(self.seeds)
        lines = [f"Measured on {n} fresh draws (seeds {min(self.seeds)}–{max(self.seeds)}), {self.n_quads} "
                 "counterfactual quads a draw:", ""]
        for who, name in self.names.items():
            t = self.table[who]
            run = t.get(f"runs_of_{runs}")
            lines.append(f"- {name}: mean d {t['mean_d']:+.2f} (s.e. {t['se']:.2f}); p < {ALPHA} on "
                         f"{t['significant']} of {n} single draws ({t['significant'] / n:.0%})"
                         + (f", on {run['share_of_every_subset']:.0%} of runs of {runs} draws (combined p)" if run else ""))
        return "\n".join(lines)
