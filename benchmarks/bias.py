"""Time the iEAT permutation test at the sizes the bias experiment uses: ~50 embeddings of width 1,000,
exact enumeration of 12,870 partitions (8 + 8 targets) and 100,000 sampled partitions (25 + 25).

    OMP_NUM_THREADS=1 python benchmarks/bias.py
"""
import time

import numpy as np

from igpt_lite.bias import ieat


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


rng = np.random.default_rng(0)
width = 1_000
cases = {
    "exact, 8+8 targets (12,870 partitions), 17+17 attributes": (8, 8, 17, 17, 100_000),
    "sampled, 25+25 targets (100,000 draws), 25+25 attributes": (25, 25, 25, 25, 100_000),
    "sampled, 50+50 targets (100,000 draws), 50+50 attributes": (50, 50, 50, 50, 100_000),
}
for name, (nx, ny, na, nb, perms) in cases.items():
    X, Y, A, B = (rng.standard_normal((n, width)) for n in (nx, ny, na, nb))
    r = ieat(X, Y, A, B, n_permutations=perms)
    print(f"{name}: {best_of(lambda: ieat(X, Y, A, B, n_permutations=perms)):.3f} s "
          f"(exact={r.exact}, n_permutations={r.n_permutations})")
