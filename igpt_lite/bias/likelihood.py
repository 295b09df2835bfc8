"""The likelihood association test: ask a generative model what it expects instead of comparing
embeddings. Targets are composed with attributes (a scene holding both), each composed image is
scored by the model's negative log-likelihood in bits, and

- s(x) = mean_{b in B} bits(x with b) - mean_{a in A} bits(x with a)

(positive: the model finds x with A's attributes likelier). Two designs:

- counterfactual quads (`scenes.TestSets.quads`, the figures scenes): quad i is one scene drawn as a
  man and as a woman, each with a career and a domestic prop in one slot, so s(x_i) compares x_i
  with its own two props; the p-value is the quads test's (`stats.quads_test`), a t-test over
  independent quads;
- every target with every attribute (`sets.compose_halves` for users' images, or
  `scenes.TestSets.composed`): the p-value is the crossed test's (`stats.crossed_test`).

Both count targets and attributes as drawn, so the p speaks for new draws of both. The statistic,
effect size d and bootstrap interval are exactly iEAT's (stats.py), on these s, and iEAT's permutation
p (attributes held fixed) is kept beside the p as `p_targets`, to compare with published numbers.
There are no layers: it is one test per model, beside the same test on a random-weight copy."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..model import random_model
from .sets import PAIRS, check_sets
from .stats import (BOOTSTRAP, BiasRow, CrossedResult, IEATResult, QuadsResult, _check_test_options, bits_test,
                    permutation_test)

BERT_SKIP = "a bert model gives no likelihood of a whole image"


def likelihood_scores(bits: dict) -> tuple[np.ndarray, np.ndarray]:
    """s(x) = mean_b bits(x with b) - mean_a bits(x with a) for every target, from bits = {"XA":
    n_x×n_a, "XB": n_x×n_b, "YA": n_y×n_a, "YB": n_y×n_b} (entry [i, j]: target i with attribute j),
    or from counterfactual quads (1-D, entry i quad i: `scenes.TestSets.quads`), where s(x_i) =
    bits(x_i with its B prop) - bits(x_i with its A prop), less the mean of s(x_i) and s(y_i): what
    the quad's two props cost on their own is shared by its man and its woman, and left in, it would
    swamp d's denominator (D = mean s_X - mean s_Y is the same either way)."""
    missing = [k for k in PAIRS if k not in bits]
    if missing:
        raise ValueError(f"bits must hold {', '.join(PAIRS)}; missing {', '.join(missing)}")
    b = {k: np.asarray(bits[k], dtype=np.float64) for k in PAIRS}
    if all(v.ndim == 1 for v in b.values()):
        if len({v.shape for v in b.values()}) != 1 or b["XA"].size == 0:
            raise ValueError(f"quads' bits must be four non-empty arrays of one length, got { {k: v.shape for k, v in b.items()} }")
        s_x, s_y = b["XB"] - b["XA"], b["YB"] - b["YA"]
        shared = (s_x + s_y) / 2
        return s_x - shared, s_y - shared
    if any(v.ndim != 2 or v.size == 0 for v in b.values()):
        raise ValueError(f"each bits entry must be a non-empty 2-D table, got shapes { {k: v.shape for k, v in b.items()} }")
    if b["XA"].shape[0] != b["XB"].shape[0] or b["YA"].shape[0] != b["YB"].shape[0] \
            or b["XA"].shape[1] != b["YA"].shape[1] or b["XB"].shape[1] != b["YB"].shape[1]:
        raise ValueError(f"bits tables disagree on the set sizes: { {k: v.shape for k, v in b.items()} }")
    return b["XB"].mean(1) - b["XA"].mean(1), b["YB"].mean(1) - b["YA"].mean(1)


def likelihood_association(bits: dict, *, n_permutations: int = 100_000, seed: int = 0,
                           n_bootstrap: int = 2_000) -> IEATResult:
    """The likelihood association test on a table of bits (see `likelihood_scores`): iEAT's statistic,
    d, permutation p-value and bootstrap interval on s(x)."""
    s_x, s_y = likelihood_scores(bits)
    quads = np.ndim(bits["XA"]) == 1  # each target with a prop of its own: as many attributes as quads
    return permutation_test(s_x, s_y, n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap,
                            n_a=len(s_x) if quads else np.shape(bits["XA"])[1],
                            n_b=len(s_x) if quads else np.shape(bits["XB"])[1])


def image_counter(on_step, total: int):
    """An on_batch(n) that adds up the images scored and reports on_step(done, total); None without on_step."""
    if on_step is None:
        return None
    done = 0

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        on_step(done, total)

    return on_batch


def composed_bits(model, palette, composed: dict, batch_size: int = 64, on_batch=None) -> dict:
    """{"XA": n_x×n_a, ...} bits of every composed image under an ar model (scoring.bits_per_image;
    `on_batch(n)` after each batch of n images); quads (n×H×W×C each) give n bits each."""
    from ..scoring import bits_per_image

    out = {}
    with torch.inference_mode():
        for k in PAIRS:
            images = np.asarray(composed[k])
            flat = images.reshape(-1, *images.shape[-3:])
            out[k] = bits_per_image(model, palette.encode(flat), batch_size=batch_size,
                                    on_batch=on_batch).numpy().reshape(images.shape[:-3])
    return out


def copy_seed(seed: int, quad: int) -> int:
    """The seed of quad `quad`'s random-weight copy in a draw seeded `seed` (`random_bits`)."""
    return int(np.random.SeedSequence([seed, quad]).generate_state(1)[0])


def random_bits(config, palette, composed: dict, seed: int, device="cpu", batch_size: int = 64,
                on_batch=None) -> dict:
    """Bits of the composed scenes under random-weight copies of `config` (what pixel statistics
    alone give). Tables: one copy, seeded `seed`. Counterfactual quads: a new copy for every quad
    (seeded `copy_seed(seed, i)`): any one random network has a small lean of its own, and the quads
    test, whose noise is small, would read that network's lean as an association; over copies drawn
    anew it asks whether untrained networks of this shape associate X with A at all."""
    if np.ndim(composed["XA"]) == 5:
        return composed_bits(random_model(config, seed).to(device), palette, composed, batch_size, on_batch)
    from ..scoring import bits_per_image

    n = len(composed["XA"])
    out = np.empty((n, len(PAIRS)))
    with torch.inference_mode():
        for i in range(n):  # the quad's four scenes in one batch, under its own copy
            copy = random_model(config, copy_seed(seed, i)).to(device)
            tokens = palette.encode(np.stack([composed[k][i] for k in PAIRS]))
            out[i] = bits_per_image(copy, tokens, batch_size=len(PAIRS), on_batch=on_batch).numpy()
    return {k: out[:, j] for j, k in enumerate(PAIRS)}


@dataclass
class LikelihoodResult:
    """The likelihood association test on one model: `row` its numbers (layer "bits", p_holm =
    p_value: one test, nothing to adjust), `baseline` the same on random-weight copies (`random_bits`:
    one copy, or one a quad; None when not run)."""
    row: BiasRow
    baseline: BiasRow | None
    bits: dict = field(repr=False)  # {"XA": n_x×n_a, ...}: each composed image's bits
    baseline_bits: dict | None = field(default=None, repr=False)
    n_permutations: int = 100_000
    seed: int = 0
    baseline_seed: int | None = 0
    n_bootstrap: int = 2_000

    @property
    def table(self) -> list[BiasRow]:
        return [self.row]

    def to_dict(self) -> dict:
        quads = np.ndim(self.bits["XA"]) == 1
        return {"test": "likelihood", "score": "s(x) = mean bits with B - mean bits with A"
                + (", less the quad's mean over its two people" if quads else ""),
                "p_value": f"{'quads' if np.ndim(self.bits['XA']) == 1 else 'crossed'} test: targets and attributes "
                "both drawn (p_targets: iEAT's permutation p)",
                "n_permutations": self.n_permutations, "seed": self.seed, "n_bootstrap": self.n_bootstrap,
                "bootstrap": BOOTSTRAP, "table": [self.row.to_dict()],
                "baseline": {"model": f"random weights, seed {self.baseline_seed}"
                             + (" (a copy a quad)" if np.ndim(self.bits["XA"]) == 1 else ""),
                             "table": [self.baseline.to_dict()]}
                if self.baseline else None}

    @property
    def test(self) -> CrossedResult | QuadsResult:
        """The numbers behind `row.p_value` (t, degrees of freedom; the crossed test's variance parts
        or the quads' SD): `stats.bits_test`."""
        return bits_test(self.bits)

    def text(self) -> str:
        text = f"likelihood test: {self.row.text()} (iEAT's targets-only p {self.row.p_targets:.2g})"
        if self.baseline:
            copies = "random-weight copies (one a quad)" if np.ndim(self.bits["XA"]) == 1 else "random-weight copy"
            text += f"; {copies}: {self.baseline.text()} (targets-only {self.baseline.p_targets:.2g})"
        return text

    def __repr__(self) -> str:
        return f"LikelihoodResult({self.text()})"


def likelihood_row(bits: dict, **kw) -> BiasRow:
    """The likelihood test's row on a table of bits (see `likelihood_scores`): iEAT's d and
    interval, `stats.bits_test`'s p (p_holm too: one test), iEAT's p as p_targets; `kw` as
    `likelihood_association` takes them."""
    r = likelihood_association(bits, **kw)
    p = bits_test(bits).p_value
    return replace(BiasRow.of("bits", r, p_holm=p), p_value=p)


def likelihood_test(checkpoint, composed: dict, *, n_permutations: int = 100_000, seed: int = 0,
                    baseline: bool = True, baseline_seed: int = 0, n_bootstrap: int = 2_000,
                    batch_size: int = 64, on_step=None) -> LikelihoodResult:
    """The likelihood association test on `checkpoint` (an ar Checkpoint). `composed` = {"XA":
    uint8 n_x×n_a×H×W×C (target i of X with attribute j of A), "XB", "YA", "YB"}, e.g.
    `compose_halves` or `scenes.TestSets(...).composed()`, or counterfactual quads, n×H×W×C each
    (`scenes.TestSets(...).quads(n)`, `draws.composed_draw`). Every image is scored once by the model
    (and once by random-weight copies when `baseline`: `random_bits`); `on_step(done, total)` counts the images
    scored (a progress bar, e.g. `figures.progress_bar`).

    Example::

        composed = scenes.TestSets(seed=1).quads(64)
        result = likelihood_test(load_checkpoint("figures-p90"), composed)
        print(result.text())
    """
    _check_test_options(n_permutations, seed, n_bootstrap)
    if checkpoint.config.objective != "ar":
        raise ValueError(f"the likelihood test needs an ar model: {BERT_SKIP}; use bias_test (iEAT) instead")
    check_sets(checkpoint, composed, PAIRS)
    dims = {np.ndim(composed[k]) for k in PAIRS}
    if len(dims) != 1 or dims.pop() not in (4, 5):
        raise ValueError("composed sets must all be targets × attributes × H×W×C, or all quads × H×W×C, got shapes "
                         f"{ {k: np.shape(composed[k]) for k in PAIRS} }")
    likelihood_scores({k: np.zeros(np.shape(composed[k])[:-3]) for k in PAIRS})  # the sizes agree
    kw = dict(n_permutations=n_permutations, seed=seed, n_bootstrap=n_bootstrap)
    count = image_counter(on_step, sum(int(np.prod(np.shape(composed[k])[:-3])) for k in PAIRS) * (2 if baseline else 1))
    bits = composed_bits(checkpoint.model, checkpoint.palette, composed, batch_size, count)
    base_bits = None
    if baseline:
        base_bits = random_bits(checkpoint.config, checkpoint.palette, composed, baseline_seed,
                                checkpoint.model.device, batch_size, count)
    return LikelihoodResult(row=likelihood_row(bits, **kw), baseline=likelihood_row(base_bits, **kw) if baseline
                            else None, bits=bits, baseline_bits=base_bits, n_permutations=n_permutations, seed=seed,
                            baseline_seed=baseline_seed if baseline else None, n_bootstrap=n_bootstrap)
