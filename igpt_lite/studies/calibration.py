"""Is the bias tests' p-value calibrated? Re-partition the sets at random, so that there is no
association by construction, and count how often p < alpha: about alpha of the time (a little
under: permutation p-values are discrete) if it is (scripts/bias_experiment.py reports both)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..bias import ieat, likelihood_association


@dataclass
class NullCalibration:
    p_values: np.ndarray  # one per random re-partition
    alpha: float
    rate: float  # share of p < alpha; about alpha (a little under, p-values are discrete) if calibrated
    stderr: float  # binomial standard error of `rate` at the nominal alpha


def _calibration(p: np.ndarray, alpha: float) -> NullCalibration:
    return NullCalibration(p_values=p, alpha=alpha, rate=float((p < alpha).mean()),
                           stderr=math.sqrt(alpha * (1 - alpha) / len(p)))


def null_calibration(X, Y, A, B, *, n_trials: int = 200, n_permutations: int = 1_000, alpha: float = 0.05,
                     seed: int = 0) -> NullCalibration:
    """Check that iEAT is calibrated on these embeddings: pool X u Y u A u B, split it at random
    into four sets of the original sizes `n_trials` times, test each split. With no association by
    construction, p < alpha should happen about alpha of the time."""
    pool = np.concatenate([np.asarray(m, dtype=np.float64) for m in (X, Y, A, B)])
    sizes = np.cumsum([len(X), len(Y), len(A), len(B)])[:-1]
    rng = np.random.default_rng(seed)
    p = np.empty(n_trials)
    for t in range(n_trials):
        x, y, a, b = np.split(pool[rng.permutation(len(pool))], sizes)
        p[t] = ieat(x, y, a, b, n_permutations=n_permutations, seed=seed + 1 + t, n_bootstrap=0).p_value
    return _calibration(p, alpha)


def likelihood_null_calibration(bits: dict, *, n_trials: int = 1_000, n_permutations: int = 1_000,
                                alpha: float = 0.05, seed: int = 0) -> NullCalibration:
    """The likelihood test's null check on one bits table: pool the targets X u Y and the attributes
    A u B, split both at random into sets of the original sizes `n_trials` times and test each split
    (no association by construction); p < alpha should happen about alpha of the time."""
    full = np.block([[bits["XA"], bits["XB"]], [bits["YA"], bits["YB"]]])  # targets × attributes
    n_x, n_a = np.shape(bits["XA"])
    rng = np.random.default_rng(seed)
    p = np.empty(n_trials)
    for t in range(n_trials):
        m = full[rng.permutation(full.shape[0])][:, rng.permutation(full.shape[1])]
        split = {"XA": m[:n_x, :n_a], "XB": m[:n_x, n_a:], "YA": m[n_x:, :n_a], "YB": m[n_x:, n_a:]}
        p[t] = likelihood_association(split, n_permutations=n_permutations, seed=seed + 1 + t, n_bootstrap=0).p_value
    return _calibration(p, alpha)
