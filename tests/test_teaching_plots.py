"""Figures made for the teaching notebooks 04 and 05 (their other figures are tested beside their modules)."""
import itertools

import numpy as np
import pytest

from igpt_lite.bias import ieat
from igpt_lite.attention import visibility_figure
from igpt_lite.bias import permutation_chart


def test_permutation_chart_red_share_is_ieats_exact_p(rng):
    X, Y, A, B = (rng.normal(size=(4, 3)) for _ in range(4))
    s = np.concatenate([_s(X, A, B), _s(Y, A, B)])  # s(w, A, B) of X, then of Y
    stats = np.array([2 * s[list(c)].sum() - s.sum() for c in itertools.combinations(range(8), 4)])
    observed = s[:4].sum() - s[4:].sum()
    fig = permutation_chart(stats, observed)
    smaller, at_least = fig.data
    result = ieat(X, Y, A, B)
    assert len(at_least.x) + len(smaller.x) == 70
    assert len(at_least.x) / 70 == result.p_value  # the observed split itself is counted
    assert f"= {len(at_least.x)} / 70" in fig.layout.title.text
    assert min(at_least.x) >= observed - 1e-12 and (len(smaller.x) == 0 or max(smaller.x) < observed)


def test_permutation_chart_counts_ties_as_at_least():
    fig = permutation_chart([0.0, 1.0, 1.0, 2.0], 1.0)
    assert sorted(fig.data[1].x) == [1.0, 1.0, 2.0] and list(fig.data[0].x) == [0.0]


def _s(W, A, B):
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    return (unit(W) @ unit(A).T).mean(1) - (unit(W) @ unit(B).T).mean(1)


def test_teaching_figures_refuse_bad_input_with_a_message():
    with pytest.raises(ValueError, match="needs one or more finite statistics"):
        permutation_chart([], 0.0)
    with pytest.raises(ValueError, match="needs one or more finite statistics"):
        permutation_chart([0.1, float("nan")], 0.0)
    with pytest.raises(ValueError, match="masks must be one or more H×W bool arrays of one shape"):
        visibility_figure({}, (0, 0))
    with pytest.raises(ValueError, match=r"got shapes \{'ar': \(2, 3\), 'bert': \(3, 2\)\}"):
        visibility_figure({"ar": np.ones((2, 3)), "bert": np.ones((3, 2))}, (0, 0))


def test_objective_probe_chart_draws_each_models_curve_and_the_pixel_line():
    from igpt_lite.probe import ProbeTable
    from igpt_lite.studies.objectives import objective_probe_chart

    def table(accs, pixels=0.6):
        rows = [{"kind": "trained", "layer": layer, "depth": d, "test_acc": a, "test_stderr": 0.02, "val_acc": a,
                 "train_acc": a, "C": 1.0, "n_test": 500} for d, (layer, a) in enumerate(zip(["embed", "blocks.0", "ln_f"], accs))]
        rows.append({"kind": "pixels", "layer": "pixels", "depth": -1, "test_acc": pixels, "test_stderr": 0.02,
                     "val_acc": pixels, "train_acc": pixels, "C": 1.0, "n_test": 500})
        return ProbeTable.from_records(rows)

    fig = objective_probe_chart({"ar": table([0.5, 0.9, 0.8]), "bert": table([0.5, 0.7, 0.75])})
    ar, bert, pixels = fig.data
    assert list(ar.x) == ["embed", "blocks.0", "ln_f"] and list(ar.y) == [50, 90, 80]
    assert list(bert.y) == [50, 70, 75] and list(bert.error_y.array) == [2, 2, 2]
    assert ar.name == "ar (best on validation: blocks.0, 90.0%)" and bert.name == "bert (best on validation: ln_f, 75.0%)"
    assert list(pixels.y) == [60, 60] and pixels.name == "raw pixels: 60.0%"
    assert "n_test = 500" in fig.layout.title.text
