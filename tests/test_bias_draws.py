"""The crossed test and the quads test (targets and attributes both drawn), the counterfactual quads
of the figures scenes, and the likelihood test over several draws of them with a matched control:
reference computations, calibration on simulated nulls, and the CLI."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from igpt_lite import bias, checkpoint, cli
from igpt_lite.data import scenes
from igpt_lite.model import GPT, GPTConfig, random_model
from igpt_lite.palette import Palette


def crossed_by_hand(bits):
    """The crossed test written out cell by cell (loops, no vectorised centring)."""
    b = {k: np.asarray(v, dtype=np.float64) for k, v in bits.items()}
    n_x, n_a = b["XA"].shape
    n_y, n_b = b["YB"].shape
    s_x = [np.mean(b["XB"][i]) - np.mean(b["XA"][i]) for i in range(n_x)]
    s_y = [np.mean(b["YB"][i]) - np.mean(b["YA"][i]) for i in range(n_y)]
    c_a = [np.mean(b["XA"][:, j]) - np.mean(b["YA"][:, j]) for j in range(n_a)]
    c_b = [np.mean(b["XB"][:, j]) - np.mean(b["YB"][:, j]) for j in range(n_b)]
    D = np.mean(s_x) - np.mean(s_y)
    assert D == pytest.approx(np.mean(c_b) - np.mean(c_a))  # the same number read by attributes
    v_t = np.var(s_x, ddof=1) / n_x + np.var(s_y, ddof=1) / n_y
    v_a = np.var(c_a, ddof=1) / n_a + np.var(c_b, ddof=1) / n_b
    v_e, df_e = 0.0, 0
    for m in b.values():
        r, c = m.shape
        total = 0.0
        for i in range(r):
            for j in range(c):
                total += (m[i, j] - m[i].mean() - m[:, j].mean() + m.mean()) ** 2
        v_e += total / ((r - 1) * (c - 1)) / (r * c)
        df_e += (r - 1) * (c - 1)
    v = v_t + v_a - v_e
    df = v ** 2 / (v_t ** 2 / (n_x + n_y - 2) + v_a ** 2 / (n_a + n_b - 2) + v_e ** 2 / df_e)
    return D, v_t, v_a, v_e, v, df


def null_tables(rng, n_t=12, n_a=6, *, target_sd=3.0, item_sd=3.0, noise_sd=2.0, shift=0.0):
    """Bits with no association when shift = 0: each attribute j has its own gender interaction b_j
    (a prop that suits men or women in some way), drawn alike for A and B; shift adds a planted one."""
    t = rng.normal(0, target_sd, 2 * n_t)
    a = rng.normal(0, 5.0, 2 * n_a)
    b = rng.normal(0, item_sd, 2 * n_a) + np.r_[np.full(n_a, -shift), np.full(n_a, shift)]
    g = np.r_[np.full(n_t, 0.5), np.full(n_t, -0.5)]
    m = t[:, None] + a[None] + g[:, None] * b[None] + rng.normal(0, noise_sd, (2 * n_t, 2 * n_a))
    return {"XA": m[:n_t, :n_a], "XB": m[:n_t, n_a:], "YA": m[n_t:, :n_a], "YB": m[n_t:, n_a:]}


def test_crossed_test_matches_a_hand_computation(rng):
    for sizes, shift in (((5, 4, 3, 6), 0.0), ((8, 8, 4, 4), 2.0), ((3, 6, 5, 2), -1.0)):
        n_x, n_y, n_a, n_b = sizes
        m = rng.normal(0, 2, (n_x + n_y, n_a + n_b)) + rng.normal(0, 3, n_a + n_b)
        bits = {"XA": m[:n_x, :n_a] - shift, "XB": m[:n_x, n_a:], "YA": m[n_x:, :n_a], "YB": m[n_x:, n_a:]}
        r = bias.crossed_test(bits)
        D, v_t, v_a, v_e, v, df = crossed_by_hand(bits)
        assert r.difference == pytest.approx(D) and r.var_targets == pytest.approx(v_t)
        assert r.var_attributes == pytest.approx(v_a) and r.var_residual == pytest.approx(v_e)
        if v >= max(v_t, v_a):
            assert r.df == pytest.approx(df) and r.t == pytest.approx(D / np.sqrt(v))
        else:  # floored at the larger part, with its own degrees of freedom
            big, dfs = (v_t, n_x + n_y - 2) if v_t >= v_a else (v_a, n_a + n_b - 2)
            assert r.df == dfs and r.t == pytest.approx(D / np.sqrt(big))
        assert r.p_value == pytest.approx(stats.t.sf(r.t, r.df))
        # the same D as iEAT's statistic reads it: (sum_X s - sum_Y s) with equal sets is n × D
        s_x, s_y = bias.likelihood_scores(bits)
        assert r.difference == pytest.approx(s_x.mean() - s_y.mean())


def test_crossed_test_needs_two_of_each_and_handles_identical_bits():
    bits = {k: np.zeros((3, 1)) for k in bias.PAIRS}
    with pytest.raises(ValueError, match="at least 2 targets and 2 attributes in each set, got X 3, Y 3, A 1, B 1"):
        bias.crossed_test(bits)
    flat = bias.crossed_test({k: np.ones((3, 3)) for k in bias.PAIRS})
    assert flat.difference == 0 and flat.t == 0 and flat.p_value == 0.5


def test_crossed_test_is_calibrated_where_ieats_permutation_is_not(rng):
    """Attributes that each suit men or women a little, drawn alike for A and B: no association. iEAT's
    permutation holds those attributes fixed and finds 'associations' far too often; the crossed
    test's rate stays near 5%."""
    crossed, targets_only = [], []
    for _ in range(600):
        bits = null_tables(rng)
        crossed.append(bias.crossed_test(bits).p_value)
        targets_only.append(bias.likelihood_association(bits, n_permutations=200, n_bootstrap=0, seed=1).p_value)
    crossed, targets_only = np.array(crossed), np.array(targets_only)
    assert 0.02 <= (crossed < 0.05).mean() <= 0.08
    assert (targets_only < 0.05).mean() > 0.2
    assert stats.kstest(crossed, "uniform").pvalue > 0.001  # uniform p-values, not only the 5% tail


def test_crossed_test_finds_a_planted_association(rng):
    found = [bias.crossed_test(null_tables(rng, shift=3.0)).p_value < 0.05 for _ in range(200)]
    assert np.mean(found) > 0.8


def null_quads(rng, n=64, *, shift=0.0, prop_gender_sd=1.0, noise_sd=1.0):
    """Quads' bits with no association when shift = 0: each quad has its own room cost, person cost
    (by gender), prop costs (by category) and a gender × prop interaction of its own drawn alike for
    both categories (a prop that happens to suit a man or a woman); shift plants an association."""
    room = rng.normal(0, 20, n)
    person = rng.normal(0, 5, (n, 2))
    prop = rng.normal(0, 8, (n, 2))
    suits = rng.normal(0, prop_gender_sd, (n, 2))  # [:, c]: how much prop c favours the woman
    out = {}
    for t, g in (("X", 0), ("Y", 1)):
        for a, c in (("A", 0), ("B", 1)):
            planted = shift / 2 * (1 if (g == c) else -1)  # congruent pairs cheaper by shift in q
            out[t + a] = (room + person[:, g] + prop[:, c] + (g - 0.5) * suits[:, c] - planted
                          + rng.normal(0, noise_sd, n))
    return out


def test_quads_test_is_a_one_sample_t_test_of_each_quads_difference(rng):
    bits = null_quads(rng, 12, shift=1.0)
    q = (bits["XB"] - bits["XA"]) - (bits["YB"] - bits["YA"])
    np.testing.assert_array_equal(bias.quad_differences(bits), q)
    r = bias.quads_test(bits)
    ref = stats.ttest_1samp(q, 0.0, alternative="greater")
    assert r.difference == pytest.approx(q.mean()) and r.sd == pytest.approx(q.std(ddof=1))
    assert (r.t, r.p_value, r.df) == pytest.approx((ref.statistic, ref.pvalue, 11))
    s_x, s_y = bias.likelihood_scores(bits)  # D is the same number the crossed test calls D
    assert r.difference == pytest.approx(s_x.mean() - s_y.mean())
    table = null_tables(rng)
    assert bias.bits_test(bits) == r and bias.bits_test(table) == bias.crossed_test(table)


def test_quads_test_bad_input_and_identical_bits():
    with pytest.raises(ValueError, match="at least 2 quads, got 1"):
        bias.quads_test({k: np.ones(1) for k in bias.PAIRS})
    with pytest.raises(ValueError, match="four 1-D arrays of one length"):
        bias.quads_test({**{k: np.ones(3) for k in bias.PAIRS}, "YB": np.ones(4)})
    flat = bias.quads_test({k: np.ones(5) for k in bias.PAIRS})
    assert (flat.t, flat.p_value) == (0.0, 0.5)


def test_quads_test_is_calibrated_and_finds_a_planted_association(rng):
    """Room, person and prop costs cancel inside a quad; a prop's own pull towards one gender (drawn
    anew with every quad) is noise the test counts, so no association gives p < 0.05 in 5% of draws."""
    p = np.array([bias.quads_test(null_quads(rng)).p_value for _ in range(2000)])
    assert 0.035 <= (p < 0.05).mean() <= 0.065
    assert stats.kstest(p, "uniform").pvalue > 0.001
    found = [bias.quads_test(null_quads(rng, shift=1.0)).p_value < 0.05 for _ in range(200)]
    assert np.mean(found) > 0.9


def test_quads_are_one_scene_with_the_gender_and_the_props_category_swapped():
    quads = scenes.TestSets(seed=5).quads(6)
    assert {k: v.shape for k, v in quads.items()} == {k: (6, 32, 32, 3) for k in bias.PAIRS}
    np.testing.assert_array_equal(scenes.TestSets(seed=5).quads(3)["YA"], quads["YA"][:3])  # prefixes
    assert not np.array_equal(scenes.TestSets(seed=6).quads(3)["YA"], quads["YA"][:3])
    for i in range(6):
        four = np.stack([quads[k][i] for k in bias.PAIRS])
        # one room: the wall's top corners are the same pixel in all four scenes
        assert (four[:, 0, 0] == four[0, 0, 0]).all() and (four[:, 0, -1] == four[0, 0, -1]).all()
        # the same man with two props, the same prop with two people: every pair differs somewhere
        for a, b in (("XA", "XB"), ("XA", "YA"), ("YA", "YB"), ("XB", "YB")):
            assert not np.array_equal(quads[a][i], quads[b][i]), (i, a, b)
        # the man's and the woman's scenes with one prop differ only on the person's side of the image
        differ = (quads["XA"][i] != quads["YA"][i]).any(-1)
        assert differ[:, :16].any() != differ[:, 16:].any()
    with pytest.raises(ValueError, match="at least 2 quads"):
        scenes.TestSets(seed=5).quads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random 8×8 RGB ar model (in memory and saved) for the figures scenes at 8×8."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=2, n_head=2, n_embd=32)).eval()
    palette = Palette(np.random.default_rng(0).uniform(-1, 1, (8, 3)).astype(np.float32))
    folder = tmp_path_factory.mktemp("draws") / "model"
    checkpoint.save_checkpoint(folder, model, palette)
    return checkpoint.load_checkpoint(folder)


def test_likelihood_draws_is_the_likelihood_test_on_each_draw_with_its_spread(tiny):
    other = checkpoint.Checkpoint(model=random_model(tiny.config, 99), palette=tiny.palette, meta={})
    steps = []
    r = bias.likelihood_draws(tiny, [3, 4, 5], control=other, n_quads=5, n_permutations=500,
                              on_step=lambda done, total: steps.append((done, total)))
    assert [d.seed for d in r.draws] == [3, 4, 5] and r.n_quads == 5
    assert steps[-1] == (3 * 3 * 20, 3 * 3 * 20)  # 3 draws × (model, copy, control) × 5 quads of 4 scenes
    for draw, bits in zip(r.draws, r.bits):
        composed = bias.composed_draw(draw.seed, 5, resolution=8)
        np.testing.assert_array_equal(composed["YB"], scenes.TestSets(seed=draw.seed, resolution=8).quads(5)["YB"])
        one = bias.likelihood_test(tiny, composed, n_permutations=500, seed=draw.seed, baseline_seed=draw.seed)
        assert draw.model == one.row and draw.baseline == one.baseline
        assert set(bits) == {"model", "baseline", "control"}
        np.testing.assert_array_equal(bits["baseline"]["YA"], one.baseline_bits["YA"])
        assert draw.model.p_value == bias.quads_test(one.bits).p_value and one.bits["XA"].shape == (5,)
        assert draw.control == bias.likelihood_test(other, composed, n_permutations=500, seed=draw.seed,
                                                    baseline=False).row
        # the paired test: the same test on each scene's bits under the model minus under the control
        diff = {k: bits["model"][k].astype(np.float64) - bits["control"][k] for k in bias.PAIRS}
        assert draw.paired.p_value == bias.quads_test(diff).p_value
        assert draw.paired.effect_size == bias.likelihood_association(diff, n_permutations=500).effect_size
    d = np.array([x.model.effect_size for x in r.draws])
    spread = r.spread()
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert spread.mean == pytest.approx(d.mean()) and spread.sd == pytest.approx(d.std(ddof=1))
    assert (spread.low, spread.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert spread.significant == sum(x.model.p_value < 0.05 for x in r.draws) and spread.n == 3
    for which in ("model", "baseline", "control", "paired"):
        p = [getattr(x, which).p_value for x in r.draws]
        assert r.spread(which).p_combined == pytest.approx(stats.combine_pvalues(p, method="stouffer").pvalue)
    diff = r.difference()
    assert diff.mean == pytest.approx(np.mean([x.model.effect_size - x.control.effect_size for x in r.draws]))
    out = r.to_dict()
    json.dumps(out)
    assert out["seeds"] == [3, 4, 5] and out["difference"]["mean"] == diff.mean
    assert out["draws"][1]["control"] == r.draws[1].control.to_dict()
    text = r.text()
    assert "3 draws" in text and "difference in d (model - control, draw by draw): mean" in text
    assert f"paired test (model's bits - control's, scene by scene): d mean {r.spread('paired').mean:+.2f}" in text
    assert f"combined p {spread.p_combined:.2g}" in text
    assert out["spread"]["paired"]["p_combined"] == r.spread("paired").p_combined
    # the control scored on the same images as the model: itself as control differs by exactly 0
    same = bias.likelihood_draws(tiny, [3, 4], control=tiny, baseline=False, n_quads=3, n_permutations=200)
    assert same.difference().mean == 0 and same.difference().sd == 0 and same.spread("baseline") is None
    assert [d.paired.p_value for d in same.draws] == [0.5, 0.5] and same.spread("paired").p_combined == 0.5


def test_random_copies_are_one_a_quad_and_one_for_a_table(tiny):
    """A random network has a small lean of its own that the quads test could see; the baseline of
    quads scores every quad with a copy of its own, a table with one copy."""
    from igpt_lite.bias.likelihood import copy_seed, random_bits
    from igpt_lite.scoring import bits_per_image

    quads = bias.composed_draw(3, 4, resolution=8)
    bits = random_bits(tiny.config, tiny.palette, quads, seed=3)
    for i in range(4):
        copy = random_model(tiny.config, copy_seed(3, i))
        for k in bias.PAIRS:
            assert bits[k][i] == pytest.approx(float(bits_per_image(copy, tiny.palette.encode(quads[k][i : i + 1]))[0]),
                                               rel=1e-5)
    assert len({copy_seed(3, i) for i in range(4)} | {copy_seed(4, 0)}) == 5
    table = scenes.TestSets(3, seed=1, resolution=8).composed(3, 2)
    one = bias.composed_bits(random_model(tiny.config, 3), tiny.palette, table)
    for k in bias.PAIRS:
        np.testing.assert_array_equal(random_bits(tiny.config, tiny.palette, table, seed=3)[k], one[k])


def test_combined_p_is_stouffers_and_calibrated(rng):
    p = [0.2, 0.03, 0.6, 0.11]
    assert bias.combined_p(p) == pytest.approx(stats.combine_pvalues(p, method="stouffer").pvalue)
    assert bias.combined_p([0.5]) == pytest.approx(0.5) and bias.combined_p([0.0, 1.0]) == pytest.approx(0.5, abs=1e-3)
    # no association: each draw's p uniform, so runs of 3 reach p < 0.05 in 5% of runs
    rejected = np.mean([bias.combined_p(rng.uniform(size=3)) < 0.05 for _ in range(4000)])
    assert 0.04 < rejected < 0.06, rejected
    # a lean too small for one draw shows over several: each draw's z about 1
    assert bias.combined_p(stats.norm.sf(np.ones(5))) < 0.05 < stats.norm.sf(1)
    rows = rng.uniform(size=(4, 3))
    np.testing.assert_allclose(bias.combined_p(rows), [bias.combined_p(r) for r in rows])
    with pytest.raises(ValueError, match="one or more p-values"):
        bias.combined_p([])


def test_likelihood_draws_bad_input_is_a_clear_error(tiny):
    with pytest.raises(ValueError, match="seeds must differ"):
        bias.likelihood_draws(tiny, [1, 1])
    with pytest.raises(ValueError, match="at least one seed"):
        bias.likelihood_draws(tiny, [])
    with pytest.raises(ValueError, match="n_quads must be at least 2"):
        bias.likelihood_draws(tiny, [1], n_quads=1)
    bert = checkpoint.Checkpoint(model=GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=1, n_head=2, n_embd=16,
                                                     objective="bert")).eval(), palette=tiny.palette, meta={})
    with pytest.raises(ValueError, match="the control is bert"):
        bias.likelihood_draws(tiny, [1], control=bert)


def test_likelihood_test_p_is_the_designs_own_and_keeps_ieats(tiny):
    """Quads (the figures draws) get the quads test, tables of every target with every attribute the
    crossed test; iEAT's d and targets-only p stay beside either."""
    for composed, test in ((bias.composed_draw(7, 6, resolution=8), bias.quads_test),
                           (scenes.TestSets(4, seed=7, resolution=8).composed(4, 3), bias.crossed_test)):
        r = bias.likelihood_test(tiny, composed, n_permutations=500, seed=7, baseline=False)
        ieat = bias.likelihood_association(r.bits, n_permutations=500, seed=7)
        assert r.row.p_value == r.row.p_holm == test(r.bits).p_value == r.test.p_value
        assert r.row.p_targets == ieat.p_value and r.row.effect_size == ieat.effect_size
        assert f"iEAT's targets-only p {ieat.p_value:.2g}" in r.text()
        assert r.to_dict()["p_value"].startswith(test.__name__.split("_")[0])
    assert isinstance(r.test, bias.CrossedResult) and r.bits["XA"].shape == (4, 3)
    with pytest.raises(ValueError, match="all quads × H×W×C"):
        bias.likelihood_test(tiny, {**composed, "XA": composed["XA"][0]}, n_permutations=500)


def test_cli_bias_draws(tiny, capsys):
    rc = cli.main(["bias-draws", "--model", str(tiny.path), "--control", str(tiny.path), "--draws", "2",
                   "--first-seed", "10", "--quads", "3", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    result = json.loads(out.out)
    assert result["seeds"] == [10, 11] and result["difference"]["mean"] == 0
    assert result["spread"]["baseline"]["n"] == 2 and result["model"] == result["control"] == "model"
    assert result["n_quads"] == 3 and len(result["draws"]) == 2
    rc = cli.main(["bias-draws", "--model", str(tiny.path), "--draws", "1"])
    assert rc == 2 and "--draws" in capsys.readouterr().err


@pytest.mark.slow
def test_one_fresh_draw_finds_the_planted_association_and_the_twins_stay_apart():
    """A regression guard for the calibration measured over 50 draws (docs/experiments/bias-draws.md),
    on a draw no study used, at the library's design: the quads test finds figures-p90's association
    and the paired test against figures-p50 finds it too; figures-p50's small lean stays far below
    figures-p90's; the random-weight copies (one a quad) show nothing beyond chance."""
    r = bias.likelihood_draws(checkpoint.load_checkpoint("figures-p90"), [9001],
                              control=checkpoint.load_checkpoint("figures-p50"))
    draw = r.draws[0]
    assert draw.model.p_value < 0.01 and draw.model.effect_size > 0.6, draw.model
    assert draw.paired.p_value < 0.05 and draw.paired.effect_size > 0.5, draw.paired
    assert draw.model.effect_size - draw.control.effect_size > 0.3, (draw.model, draw.control)
    assert draw.baseline.p_value > 0.001 and abs(draw.baseline.effect_size) < 0.8, draw.baseline


STUDY = Path(__file__).resolve().parent.parent / "docs" / "experiments" / "bias-draws" / "quads"


def test_the_stored_calibration_draws_are_what_the_library_gives_on_their_bits():
    """Every stored draw of the calibration (bits of each scene, scored once) gives the rows it
    stored under today's test: a change in the statistic fails here, and the shipped study (its
    rates) would then need measuring again."""
    files = sorted(STUDY.glob("draw-*.json"))
    assert len(files) >= 50
    for path in files[:: len(files) // 5]:
        d = json.loads(path.read_text())
        bits = {w: {k: np.array(v) for k, v in d[w]["bits"].items()} for w in ("model", "control", "baseline")}
        bits["paired"] = bias.paired_bits(bits["model"], bits["control"])
        for w, b in bits.items():
            row = bias.likelihood_row(b, seed=d["seed"], n_permutations=d["model"]["n_permutations"], n_bootstrap=2_000)
            stored = {k: d[w][k] for k in ("effect_size", "p_value", "p_targets", "ci_low", "ci_high")}
            # stored bits are rounded to 1e-4 bits: the rows move by about 1e-5
            assert {k: getattr(row, k) for k in stored} == pytest.approx(stored, abs=2e-4), (path.name, w)


@pytest.mark.slow
def test_the_shipped_study_is_what_the_stored_draws_summarise_to(tmp_path):
    """draws.json in both figures models is scripts/bias_draws.py --summarise of the stored draws."""
    import shutil
    import subprocess
    import sys

    for path in STUDY.glob("draw-*.json"):
        shutil.copy(path, tmp_path)
    root = STUDY.parents[2].parent
    out = subprocess.run([sys.executable, str(root / "scripts" / "bias_draws.py"), "--summarise", str(tmp_path)],
                         capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("figures-p90", "figures-p50"):
        assert json.loads((checkpoint.resolve(name) / bias.STUDY_FILE).read_text()) == summary, name
    assert (tmp_path / "summary.txt").read_text() == (STUDY / "summary.txt").read_text()


def test_a_study_summarised_by_the_script_reads_back_with_its_rates(tmp_path, rng):
    """scripts/bias_draws.py --summarise on draw files as it writes them; the study shipped with a model
    (bias.DrawsStudy) states each model's mean d, its single-draw rate and the rate of runs of 3."""
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    draws = {}
    for seed in range(5):
        draw = {"seed": seed, "n_quads": 6, "seconds": 1.0}
        for who in ("model", "control", "baseline"):
            bits = {k: rng.normal(0, 1, 6) + (who == "model") * (k == "XB") for k in bias.PAIRS}
            draw[who] = {**bias.likelihood_row(bits, n_permutations=50, seed=seed).to_dict(),  # as the script stores
                         "bits": {k: v.tolist() for k, v in bits.items()}}
        diff = bias.paired_bits(draw["model"]["bits"], draw["control"]["bits"])
        draw["paired"] = bias.likelihood_row(diff, n_permutations=50, seed=seed).to_dict()
        draws[seed] = draw
        (tmp_path / f"draw-{seed}.json").write_text(json.dumps(draw))
    out = subprocess.run([sys.executable, str(root / "scripts" / "bias_draws.py"), "--summarise", str(tmp_path)],
                         capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr
    (tmp_path / "model").mkdir()
    (tmp_path / "summary.json").rename(tmp_path / "model" / bias.STUDY_FILE)
    study = bias.DrawsStudy.read(tmp_path / "model")
    assert study.seeds == list(range(5)) and set(study.names) == {"model", "control", "baseline", "paired"}
    paired_p = [bias.quads_test(bias.paired_bits({k: np.array(v) for k, v in d["model"]["bits"].items()},
                                                   {k: np.array(v) for k, v in d["control"]["bits"].items()})).p_value
                for d in draws.values()]
    assert study.table["paired"]["significant"] == sum(p < 0.05 for p in paired_p) and study.n_quads == 6
    d = np.array([x["model"]["effect_size"] for x in draws.values()])
    p = np.array([x["model"]["p_value"] for x in draws.values()])
    from itertools import combinations
    runs = np.mean([bias.combined_p(p[list(c)]) < 0.05 for c in combinations(range(5), 3)])
    assert study.markdown() == study.markdown(runs=5) and "of runs of 5 draws" in study.markdown()
    assert (f"- figures-p90: mean d {d.mean():+.2f} (s.e. {d.std(ddof=1) / np.sqrt(5):.2f}); p < 0.05 on "
            f"{(p < 0.05).sum()} of 5 single draws ({(p < 0.05).mean():.0%}), on {runs:.0%} of runs of 3 draws "
            "(combined p)") in study.markdown(runs=3)
    assert bias.DrawsStudy.read(tmp_path) is None  # no study shipped: nothing to show
    (tmp_path / bias.STUDY_FILE).write_text("{}")
    with pytest.raises(ValueError, match="not a draws study written by scripts/bias_draws.py --summarise"):
        bias.DrawsStudy.read(tmp_path)
