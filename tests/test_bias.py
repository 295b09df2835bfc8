import itertools
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from igpt_lite import bias, checkpoint, cli, data
from igpt_lite.data import scenes
from igpt_lite.model import GPT, GPTConfig
from igpt_lite.palette import Palette
from igpt_lite.studies.calibration import likelihood_null_calibration, null_calibration


def _sets(rng, sizes, width=7, shift=0.6):
    """Four random embedding sets; X and A share a direction, so there is something to find."""
    direction = rng.standard_normal(width)
    nx, ny, na, nb = sizes
    X = rng.standard_normal((nx, width)) + shift * direction
    Y = rng.standard_normal((ny, width))
    A = rng.standard_normal((na, width)) + shift * direction
    B = rng.standard_normal((nb, width))
    return X, Y, A, B


def brute_force(X, Y, A, B):
    """iEAT written out by the definition, one partition at a time (itertools)."""
    def cos(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    def s(w):
        return np.mean([cos(w, a) for a in A]) - np.mean([cos(w, b) for b in B])

    scores = [s(w) for w in list(X) + list(Y)]
    everyone = set(range(len(scores)))

    def stat(xi):
        return sum(scores[i] for i in xi) - sum(scores[i] for i in everyone - set(xi))

    observed = stat(range(len(X)))
    partitions = list(itertools.combinations(range(len(scores)), len(X)))
    at_least = sum(stat(xi) >= observed - 1e-12 for xi in partitions)
    d = (np.mean(scores[: len(X)]) - np.mean(scores[len(X):])) / np.std(scores, ddof=1)
    return observed, d, at_least / len(partitions), len(partitions)


@pytest.mark.parametrize("sizes", [(3, 3, 4, 3), (4, 4, 2, 5), (2, 5, 3, 3), (5, 3, 4, 4), (1, 4, 2, 2)])
def test_ieat_matches_brute_force_on_every_partition(rng, sizes):
    for _ in range(3):
        X, Y, A, B = _sets(rng, sizes)
        r = bias.ieat(X, Y, A, B)
        statistic, d, p, n = brute_force(X, Y, A, B)
        assert r.exact and r.n_permutations == n == math.comb(sizes[0] + sizes[1], sizes[0])
        assert r.statistic == pytest.approx(statistic, abs=1e-12)
        assert r.effect_size == pytest.approx(d, abs=1e-12)
        assert r.p_value == p  # same count of partitions: the same fraction, exactly
        assert (r.n_x, r.n_y, r.n_a, r.n_b) == sizes


def test_scaling_an_embedding_changes_nothing(rng):
    X, Y, A, B = _sets(rng, (5, 6, 4, 4))
    scaled = [m * rng.uniform(0.01, 100, (len(m), 1)) for m in (X, Y, A, B)]
    for n_permutations in (100_000, 200):  # exact, then sampled with the same seed
        r, q = bias.ieat(X, Y, A, B, n_permutations=n_permutations), bias.ieat(*scaled, n_permutations=n_permutations)
        assert q.statistic == pytest.approx(r.statistic, abs=1e-12)
        assert q.effect_size == pytest.approx(r.effect_size, abs=1e-12)
        assert q.p_value == r.p_value and q.exact == r.exact


@pytest.mark.parametrize("sizes", [(5, 5, 4, 4), (3, 6, 5, 2)])
def test_swapping_x_and_y_negates_d_and_takes_the_other_tail(rng, sizes):
    X, Y, A, B = _sets(rng, sizes)
    r, s = bias.ieat(X, Y, A, B), bias.ieat(Y, X, A, B)
    assert s.effect_size == pytest.approx(-r.effect_size) and s.statistic == pytest.approx(-r.statistic)
    # p(X,Y) counts partitions with T >= T_obs, p(Y,X) those with T <= T_obs: with no ties only the
    # observed partition is in both
    assert r.p_value + s.p_value == pytest.approx(1 + 1 / r.n_permutations, abs=1e-12)


def test_sampled_p_is_within_sampling_error_of_the_exact_one(rng):
    for shift in (0.0, 0.5):
        X, Y, A, B = _sets(rng, (8, 8, 6, 6), width=12, shift=shift)
        exact = bias.ieat(X, Y, A, B)
        assert exact.exact and exact.n_permutations == 12_870
        for seed in (0, 1):
            sampled = bias.ieat(X, Y, A, B, n_permutations=4_000, seed=seed)
            assert not sampled.exact and sampled.n_permutations == 4_000
            p = exact.p_value
            assert abs(sampled.p_value - p) <= 4 * math.sqrt(p * (1 - p) / 4_000) + 1 / 4_000
        again = bias.ieat(X, Y, A, B, n_permutations=4_000, seed=1)
        assert again.p_value == sampled.p_value  # seeded


def test_sampled_p_counts_the_observed_partition():
    # every s equal: every partition ties, so p = (1 + draws) / (1 + draws) = 1 and d is undefined
    v = np.ones((6, 3))
    r = bias.ieat(v[:3], v[3:], v[:2], v[2:] + [0, 1, 0], n_permutations=5)
    assert not r.exact and r.p_value == 1.0 and math.isnan(r.effect_size)


def test_bad_embeddings_are_clear_errors(rng):
    X, Y, A, B = _sets(rng, (3, 3, 3, 3))
    with pytest.raises(ValueError, match="same embedding width"):
        bias.ieat(X, Y, A, B[:, :5])
    with pytest.raises(ValueError, match="Y must be a non-empty 2-D array"):
        bias.ieat(X, Y[:0], A, B)
    with pytest.raises(ValueError, match="all-zero embedding"):
        bias.ieat(np.zeros_like(X), Y, A, B)


def test_holm_against_a_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    np.testing.assert_allclose(bias.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(bias.holm([0.5, 0.6]), [1.0, 1.0])  # 0.5 * 2 = 1; capped, then monotone
    np.testing.assert_allclose(bias.holm([0.2]), [0.2])


def test_ieat_per_layer_is_a_plain_table_with_holm(rng):
    layers = ["embed", "blocks.0", "blocks.1"]
    feats = [{l: m + i for i, l in enumerate(layers)} for m in _sets(rng, (4, 4, 3, 3))]
    table = bias.ieat_per_layer(*feats)
    assert [r.layer for r in table] == layers
    np.testing.assert_allclose([r.p_holm for r in table], bias.holm([r.p_value for r in table]))
    for r, layer in zip(table, layers):
        assert r.effect_size == bias.ieat(*(f[layer] for f in feats)).effect_size
    json.dumps([r.to_dict() for r in table])  # plain types only
    with pytest.raises(ValueError, match="features_B has layers"):
        bias.ieat_per_layer(*feats[:3], {"embed": feats[3]["embed"]})


def test_null_calibration_returns_one_p_per_trial(rng):
    X, Y, A, B = _sets(rng, (6, 6, 6, 6), shift=2.0)
    cal = null_calibration(X, Y, A, B, n_trials=40, n_permutations=500)
    assert cal.p_values.shape == (40,) and 0 <= cal.rate <= 0.25 and cal.alpha == 0.05
    assert cal.rate == np.mean(cal.p_values < 0.05)


# ---- figures ----

def test_figures_shapes_and_determinism():
    a = scenes.make_scenes(12, 0.9, seed=3)
    b = scenes.make_scenes(12, 0.9, seed=3)
    assert a.images.shape == (12, 32, 32, 3) and a.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.prop, b.prop)
    assert not np.array_equal(a.images, scenes.make_scenes(12, 0.9, seed=4).images)
    assert set(a.person) <= {0, 1} and set(a.prop) <= set(range(6))
    assert scenes.make_scenes(3, resolution=16).images.shape == (3, 16, 16, 3)
    with pytest.raises(ValueError, match="co-occurrence rate"):
        scenes.make_scenes(3, 1.5)


def test_figures_rate_p_controls_co_occurrence():
    for p in (0.5, 0.9):
        f = scenes.make_scenes(600, p, seed=0, resolution=8)  # small images: the labels are what count
        congruent = np.mean(f.category == f.person)  # man with career (0, 0) or woman with domestic (1, 1)
        assert abs(congruent - p) < 4 * math.sqrt(p * (1 - p) / 600)
        assert abs(f.person.mean() - 0.5) < 0.1


def test_figures_test_sets_are_single_objects_disjoint_from_training():
    tests = scenes.make_test_sets(9, seed=0)
    assert set(tests) == {"X", "Y", "A", "B"}
    assert all(v.shape == (9, 32, 32, 3) for v in tests.values())
    train = scenes.make_scenes(300, 0.9, seed=0)
    seen = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in seen for v in tests.values() for img in v)
    np.testing.assert_array_equal(tests["X"], scenes.make_test_sets(9, seed=0)["X"])


def test_figures_register_as_datasets():
    assert {"figures-p50", "figures-p90"} <= set(data.dataset_names())
    name = data.register_figures(0.37, n=60)
    assert name == "figures-p37"
    ds = data.load_dataset(name, "train")
    assert ds.images.shape == (48, 32, 32, 3) and ds.class_names == scenes.CLASS_NAMES
    assert set(ds.labels) <= {0, 1, 2, 3}


# ---- plot ----

def test_bias_chart_draws_d_and_adjusted_p_per_model(rng):
    feats = [{"embed": m, "blocks.0": m * 2} for m in _sets(rng, (4, 4, 3, 3))]
    table = [dict(r.to_dict(), model=name) for name in ("p50", "p90") for r in bias.ieat_per_layer(*feats)]
    from igpt_lite.bias import bias_per_layer_chart

    fig = bias_per_layer_chart(table)
    assert len(fig.data) == 4 and fig.layout.yaxis2.type == "log"
    assert fig.data[0].line.color == fig.data[1].line.color  # one colour per model in both panels


# ---- user folders and the CLI ----

@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A tiny random 8×8 RGB model saved as a checkpoint, and four folders of figures images."""
    root = tmp_path_factory.mktemp("bias")
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=2, n_head=2, n_embd=32)).eval()
    palette = Palette(np.random.default_rng(0).uniform(-1, 1, (8, 3)).astype(np.float32))
    checkpoint.save_checkpoint(root / "model", model, palette)
    sets = scenes.make_test_sets(5, seed=1, resolution=20)
    for name, images in sets.items():
        (root / name).mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img).save(root / name / f"{i}.png")
    Image.fromarray(sets["X"][0]).convert("L").save(root / "X" / "grey.png")  # another colour mode
    (root / "X" / ".DS_Store").write_bytes(b"\0junk")  # hidden files are skipped
    return root


def _run(capsys, *argv):
    rc = cli.main(["bias", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _folders(root, **override):
    folders = {k: root / k.upper() for k in "xyab"} | override
    return [a for k, v in folders.items() for a in (f"--{k}", v)]


def test_cli_bias_per_layer(tiny_setup, capsys, tmp_path):
    root = tiny_setup
    html = tmp_path / "bias.html"
    rc, out, err = _run(capsys, "--model", root / "model", *_folders(root), "--json", "--html", html)
    assert rc == 0, err
    result = json.loads(out)
    table = result["table"]
    assert [r["layer"] for r in table] == ["embed", "blocks.0", "blocks.1"]
    assert all(r["exact"] and r["n_permutations"] == math.comb(11, 6) for r in table)  # X: 6 images, Y: 5
    assert all(r["p_holm"] >= r["p_value"] for r in table)
    assert result["sets"]["x"]["modes"] == {"RGB": 5, "L": 1}
    assert "1 of 6 images converted to RGB" in result["notes"][0]
    assert "plotly" in html.read_text()

    rc, out, _ = _run(capsys, "--model", root / "model", *_folders(root), "--json", "--ieat-extraction",
                      "--layers", "1", "embed")
    ieat_style = json.loads(out)
    assert ieat_style["extraction"]["crop"] == "top-left" and ieat_style["extraction"]["norm"] == "next"
    assert [r["layer"] for r in ieat_style["table"]] == ["blocks.1", "embed"]

    rc, out, _ = _run(capsys, "--model", root / "model", *_folders(root))
    assert rc == 0 and "effect_size" in out and "blocks.1" in out  # the human table
    assert out.startswith("model:") and "likelihood test: d " in out and "random-weight copy" in out


def test_cli_bias_leads_with_the_likelihood_test_of_composed_folders(tiny_setup, capsys):
    root = tiny_setup
    rc, out, err = _run(capsys, "--model", root / "model", *_folders(root), "--json", "--permutations", "200")
    assert rc == 0, err
    result = json.loads(out)
    ck = checkpoint.load_checkpoint(root / "model")
    folders = bias.load_ieat_folders(*(root / k for k in "XYAB"), ck.config.height, ck.palette.channels)
    images = {k.upper(): f.images for k, f in folders.items()}
    composed = {t + a: bias.compose_halves(images[t], images[a]) for t in "XY" for a in "AB"}  # by hand
    expected = bias.likelihood_test(ck, composed, n_permutations=200, seed=0, baseline_seed=0)
    got = result["likelihood"]["table"][0]
    assert got["effect_size"] == pytest.approx(expected.row.effect_size)
    assert got["p_value"] == expected.row.p_value
    assert result["likelihood"]["baseline"]["table"][0]["effect_size"] == pytest.approx(
        expected.baseline.effect_size)
    assert len(result["baseline_table"]) == len(result["table"])  # iEAT on the random-weight copy too
    rc, out, _ = _run(capsys, "--model", root / "model", *_folders(root), "--json", "--compose", "none",
                      "--no-baseline")
    result = json.loads(out)
    assert result["likelihood"] == {"skipped": "not asked (--compose none)"} and not result["baseline_table"]


def test_cli_bias_bad_folders_are_clear_errors(tiny_setup, capsys, tmp_path):
    root = tiny_setup
    model = ["--model", root / "model"]
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = _run(capsys, *model, *_folders(root, a=empty))
    assert rc == 2 and "holds no image files" in err

    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(notes / f"{i}.jpg")
    (notes / "readme.txt").write_text("not a picture")
    rc, _, err = _run(capsys, *model, *_folders(root, b=notes))
    assert rc == 2 and "readme.txt: not an image file" in err

    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(one / "0.png")
    rc, _, err = _run(capsys, *model, *_folders(root, a=one))
    assert rc == 2 and "at least 2 are needed" in err

    two_x, two_y = tmp_path / "two_x", tmp_path / "two_y"
    for folder in (two_x, two_y):
        folder.mkdir()
        for i in range(2):
            Image.fromarray(np.full((4, 4, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    rc, _, err = _run(capsys, *model, *_folders(root, x=two_x, y=two_y))
    assert rc == 2 and "smallest possible p-value is 0.167" in err

    rc, _, err = _run(capsys, *model, *_folders(root, y=tmp_path / "missing"))
    assert rc == 2 and "no such folder" in err


def test_cli_knows_the_figures_datasets():
    args = cli.build_parser().parse_args(["train", "--data", "figures-p90", "--out", "unused"])
    assert args.data == "figures-p90"


@pytest.mark.slow
def test_bias_experiment_script_runs_on_a_tiny_budget(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "report"
    cmd = [sys.executable, str(root / "scripts" / "bias_experiment.py"), "--runs", str(tmp_path / "runs"),
           "--out", str(out), "--resolution", "8", "--n-train", "80", "--layers", "1", "--width", "16",
           "--colors", "8", "--steps", "2", "--batch-size", "8", "--n-targets", "3", "--n-attributes", "2",
           "--ieat", "mean:layernorm:5", "side:next:4", "--null-trials", "10", "--permutations", "1000",
           "--test-seeds", "5", "6", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "bias_table.json").read_text())
    table = report["table"]
    assert {r["model"] for r in table} == {"figures-p50", "figures-p90"} and {r["seed"] for r in table} == {5, 6}
    # per model and seed: the likelihood test and 2 iEAT variants × 2 layers, each trained and random
    assert len(table) == 2 * 2 * (1 + 2 * 2) * 2
    assert {r["test"] for r in table} == {"likelihood", "ieat mean:layernorm:5", "ieat side:next:4"}
    lat = [r for r in table if r["test"] == "likelihood" and r["weights"] == "trained"]
    assert all(r["n_x"] == 3 and r["n_a"] == 2 and r["layer"] == "bits" for r in lat)
    assert len(report["summary"]) == 2 * 2 * 3 * 2 and set(report["checks"]) == {"5", "6"}
    assert report["null"]["likelihood"]["n"] == 4 * 10
    assert "null p < 0.05" in done.stdout and (out / "bias_per_layer.html").exists()
    assert (out / "figures_samples.png").exists()
    # runs made side by side (one per test seed) merge into one report without computing anything
    merged = tmp_path / "merged"
    cmd = [sys.executable, str(root / "scripts" / "bias_experiment.py"), "--resolution", "8", "--out", str(merged),
           "--combine", str(out / "bias_table.json"), str(out / "bias_table.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    again = json.loads((merged / "bias_table.json").read_text())
    assert again["table"] == table + table and again["null"]["likelihood"]["n"] == 2 * 4 * 10


# ---- bootstrap interval, likelihood test, baselines ----

def test_bootstrap_ci_is_the_percentile_interval_of_d_over_stratified_resamples(rng):
    s_x, s_y = rng.normal(1, 1, 7), rng.normal(0, 1, 5)
    low, high = bias.bootstrap_ci(s_x, s_y, n_bootstrap=500, confidence=0.9, seed=4)
    # by the definition, one resample at a time: X and Y each drawn with replacement from themselves
    draw = np.random.default_rng(4)
    ix, iy = draw.integers(0, 7, (500, 7)), draw.integers(0, 5, (500, 5))
    ds = []
    for a, b in zip(ix, iy):
        x, y = s_x[a], s_y[b]
        ds.append((x.mean() - y.mean()) / np.concatenate([x, y]).std(ddof=1))
    assert (low, high) == pytest.approx(tuple(np.quantile(ds, [0.05, 0.95])), abs=1e-12)
    d = (s_x.mean() - s_y.mean()) / np.concatenate([s_x, s_y]).std(ddof=1)
    assert low < d < high
    assert bias.bootstrap_ci(s_x, s_y, n_bootstrap=500, confidence=0.9, seed=4) == (low, high)  # seeded
    assert all(math.isnan(v) for v in bias.bootstrap_ci(np.ones(4), np.ones(4)))  # d undefined everywhere
    narrow = bias.bootstrap_ci(rng.normal(1, 1, 400), rng.normal(0, 1, 400), n_bootstrap=500)
    assert narrow[1] - narrow[0] < (high - low) / 2  # more targets, a tighter interval


def test_ieat_rows_carry_the_bootstrap_interval_of_their_scores(rng):
    X, Y, A, B = _sets(rng, (6, 5, 4, 4))
    r = bias.ieat(X, Y, A, B, n_bootstrap=300, seed=2)
    s_x, s_y = bias.association(X, A, B), bias.association(Y, A, B)
    assert (r.ci_low, r.ci_high) == bias.bootstrap_ci(s_x, s_y, n_bootstrap=300, seed=2)
    row = bias.ieat_per_layer({"embed": X}, {"embed": Y}, {"embed": A}, {"embed": B}, n_bootstrap=300, seed=2)[0]
    assert (row.ci_low, row.ci_high) == (r.ci_low, r.ci_high)


def _bits_tables(rng, n_x, n_y, n_a, n_b, shift=0.0):
    """Random bits of composed images; with `shift`, X is cheaper with A and Y with B."""
    base = rng.normal(100, 5, (n_x + n_y, n_a + n_b))
    base[:n_x, :n_a] -= shift
    base[n_x:, n_a:] -= shift
    return {"XA": base[:n_x, :n_a], "XB": base[:n_x, n_a:], "YA": base[n_x:, :n_a], "YB": base[n_x:, n_a:]}


def brute_force_likelihood(bits):
    """The likelihood test by its definition, target by target and partition by partition."""
    def s(row_a, row_b):
        return sum(row_b) / len(row_b) - sum(row_a) / len(row_a)

    scores = [s(a, b) for a, b in zip(bits["XA"], bits["XB"])] + [s(a, b) for a, b in zip(bits["YA"], bits["YB"])]
    n_x = len(bits["XA"])
    everyone = set(range(len(scores)))

    def stat(xi):
        return sum(scores[i] for i in xi) - sum(scores[i] for i in everyone - set(xi))

    observed = stat(range(n_x))
    partitions = list(itertools.combinations(range(len(scores)), n_x))
    at_least = sum(stat(xi) >= observed - 1e-9 for xi in partitions)
    d = (np.mean(scores[:n_x]) - np.mean(scores[n_x:])) / np.std(scores, ddof=1)
    return observed, d, at_least / len(partitions), len(partitions)


@pytest.mark.parametrize("sizes", [(3, 3, 2, 3), (4, 5, 3, 3), (2, 4, 1, 2)])
def test_likelihood_association_matches_brute_force(rng, sizes):
    for shift in (0.0, 4.0):
        bits = _bits_tables(rng, *sizes, shift=shift)
        r = bias.likelihood_association(bits)
        statistic, d, p, n = brute_force_likelihood(bits)
        assert r.exact and r.n_permutations == n
        assert r.statistic == pytest.approx(statistic, abs=1e-9)
        assert r.effect_size == pytest.approx(d, abs=1e-12)
        assert r.p_value == p
        assert (r.n_x, r.n_y, r.n_a, r.n_b) == sizes


def test_likelihood_association_finds_a_planted_preference_and_swapping_attributes_flips_it(rng):
    bits = _bits_tables(rng, 12, 12, 6, 6, shift=8.0)
    r = bias.likelihood_association(bits, n_permutations=20_000, seed=1)
    assert r.effect_size > 1.5 and r.p_value < 0.001 and r.ci_low > 0.8
    swapped = {"XA": bits["XB"], "XB": bits["XA"], "YA": bits["YB"], "YB": bits["YA"]}
    q = bias.likelihood_association(swapped, n_permutations=20_000, seed=1)
    assert q.effect_size == pytest.approx(-r.effect_size) and q.p_value > 0.99
    with pytest.raises(ValueError, match="missing YB"):
        bias.likelihood_association({k: bits[k] for k in ("XA", "XB", "YA")})
    with pytest.raises(ValueError, match="disagree on the set sizes"):
        bias.likelihood_association({**bits, "YB": bits["YB"][:, :3]})


def test_likelihood_null_calibration_is_near_alpha_on_unrelated_bits(rng):
    bits = _bits_tables(rng, 10, 10, 8, 8, shift=6.0)  # a real effect: re-partitions must erase it
    cal = likelihood_null_calibration(bits, n_trials=400, n_permutations=500, seed=0)
    assert cal.p_values.shape == (400,) and cal.rate == np.mean(cal.p_values < 0.05)
    assert abs(cal.rate - 0.05) < 4 * cal.stderr


def test_compose_halves_puts_the_attribute_under_or_beside_the_target(rng):
    t = rng.integers(0, 255, (3, 6, 4, 3), dtype=np.uint8)
    a = rng.integers(0, 255, (2, 6, 4, 3), dtype=np.uint8)
    rows = bias.compose_halves(t, a)
    assert rows.shape == (3, 2, 6, 4, 3)
    np.testing.assert_array_equal(rows[2, 1, :3], t[2, :3])
    np.testing.assert_array_equal(rows[2, 1, 3:], a[1, 3:])
    cols = bias.compose_halves(t, a, split="columns")
    np.testing.assert_array_equal(cols[0, 1, :, :2], t[0, :, :2])
    np.testing.assert_array_equal(cols[0, 1, :, 2:], a[1, :, 2:])
    with pytest.raises(ValueError, match="one size"):
        bias.compose_halves(t, a[:, :4])
    with pytest.raises(ValueError, match="split must be"):
        bias.compose_halves(t, a, split="diagonal")


def test_test_sets_compose_each_target_with_each_attribute():
    ts = scenes.TestSets(4, seed=7)
    images, composed, sides = ts.images(), ts.composed(3, 2), ts.prop_side()
    assert set(composed) == {"XA", "XB", "YA", "YB"} and composed["XA"].shape == (3, 2, 32, 32, 3)
    for t in "XY":
        for i in range(3):
            for a in "AB":
                changed = (composed[t + a][i, 0] != images[t][i]).any(-1)  # the prop is all that was added
                assert changed.any() and changed[sides[t][i]].sum() > 0.8 * changed.sum()
    # one prop drawn once: the same attribute looks the same next to every target
    assert (composed["XA"][0, 1] == composed["YA"][1, 1]).all(-1).sum() > 0
    bigger = scenes.TestSets(6, seed=7)  # prefixes: more images never change the first ones
    np.testing.assert_array_equal(bigger.images()["B"][:4], images["B"])
    np.testing.assert_array_equal(bigger.composed(3, 2)["YB"], composed["YB"])
    assert not np.array_equal(scenes.TestSets(4, seed=8).images()["X"], images["X"])
    np.testing.assert_array_equal(scenes.make_test_sets(4, seed=7)["A"], images["A"])
    for k in "AB":  # a prop alone stands in its masked half
        wall = images[k][:, 2, 2]  # the top-left corner is wall, never a prop
        prop_pixels = (images[k] != wall[:, None, None]).any(-1)[:, :24]  # above the floor
        assert prop_pixels[sides[k][:, :24]].sum() > 0.9 * prop_pixels.sum()


@pytest.fixture(scope="module")
def scene_ck():
    """A tiny random 8×8 RGB ar checkpoint (in memory) for the figures scenes."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=2, n_head=2, n_embd=32)).eval()
    palette = Palette(np.random.default_rng(0).uniform(-1, 1, (8, 3)).astype(np.float32))
    return checkpoint.Checkpoint(model=model, palette=palette, meta={})


def test_likelihood_test_scores_every_composed_image_and_its_random_baseline(scene_ck):
    from igpt_lite.model import random_model
    from igpt_lite.scoring import bits_per_image

    composed = scenes.TestSets(3, seed=1, resolution=8).composed(3, 2)
    r = bias.likelihood_test(scene_ck, composed, n_permutations=1_000, seed=2, baseline_seed=5, n_bootstrap=200)
    rand = random_model(scene_ck.config, 5)
    for model, bits in ((scene_ck.model, r.bits), (rand, r.baseline_bits)):
        for k in bias.PAIRS:
            for i, j in ((0, 0), (2, 1)):  # one image at a time
                one = bits_per_image(model, scene_ck.palette.encode(composed[k][i, j][None]))
                assert bits[k][i, j] == pytest.approx(float(one[0]), rel=1e-5)
    for row, bits in ((r.row, r.bits), (r.baseline, r.baseline_bits)):
        ref = bias.likelihood_association(bits, n_permutations=1_000, seed=2, n_bootstrap=200)
        assert row.effect_size == ref.effect_size and row.p_targets == ref.p_value
        assert row.p_value == row.p_holm == bias.crossed_test(bits).p_value  # targets and attributes both drawn
        assert (row.ci_low, row.ci_high) == (ref.ci_low, ref.ci_high) and row.layer == "bits"
    d = r.to_dict()
    json.dumps(d)
    assert d["baseline"]["model"] == "random weights, seed 5" and d["table"] == [r.row.to_dict()]
    assert bias.likelihood_test(scene_ck, composed, baseline=False, n_permutations=1_000).baseline is None


def test_likelihood_test_reports_its_progress_in_images_and_gives_the_same_result(scene_ck):
    composed = scenes.TestSets(3, seed=1, resolution=8).composed(3, 2)  # 4 pairs × 3 × 2 = 24 images
    steps = []
    r = bias.likelihood_test(scene_ck, composed, n_permutations=500, n_bootstrap=0, batch_size=5,
                             on_step=lambda done, total: steps.append((done, total)))
    assert steps[-1] == (48, 48) and {t for _, t in steps} == {48}  # the model's 24, then the copy's 24
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)  # never backwards
    plain = bias.likelihood_test(scene_ck, composed, n_permutations=500, n_bootstrap=0, batch_size=5)
    assert r.row.effect_size == plain.row.effect_size and r.row.p_value == plain.row.p_value
    report_steps = []
    bias.run(scene_ck, scenes.TestSets(3, seed=1, resolution=8).images(), composed=composed, n_permutations=200,
             baseline=False, on_step=lambda done, total: report_steps.append((done, total)))
    assert report_steps[-1] == (24, 24)


def test_likelihood_test_bad_input_is_a_clear_error(scene_ck):
    composed = scenes.TestSets(2, seed=1, resolution=8).composed()
    with pytest.raises(ValueError, match="missing YB"):
        bias.likelihood_test(scene_ck, {k: composed[k] for k in ("XA", "XB", "YA")})
    with pytest.raises(ValueError, match="all be targets × attributes × H×W×C, or all quads"):
        bias.likelihood_test(scene_ck, {**composed, "XA": composed["XA"][0]})
    with pytest.raises(ValueError, match="this model's size"):
        bias.likelihood_test(scene_ck, {k: v[..., :4, :4, :] for k, v in composed.items()})
    bert = checkpoint.Checkpoint(model=GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=1, n_head=2, n_embd=16,
                                                     objective="bert")).eval(), palette=scene_ck.palette, meta={})
    with pytest.raises(ValueError, match="needs an ar model"):
        bias.likelihood_test(bert, composed)


def test_bias_test_pools_over_masks_and_runs_the_random_baseline(scene_ck):
    from igpt_lite.features import extract_features
    from igpt_lite.model import random_model

    ts = scenes.TestSets(4, seed=3, resolution=8)
    sets, masks = ts.images(), ts.prop_side()
    r = bias.bias_test(scene_ck, sets, masks=masks, n_permutations=500, seed=1, baseline_seed=2, n_bootstrap=100)
    assert r.pool == "mean over masks"
    # reference: each position's layer-normed residual, averaged over the masked positions by hand
    images = np.concatenate([sets[k] for k in "XYAB"])
    m = np.concatenate([masks[k] for k in "XYAB"]).reshape(len(images), -1)
    tokens = scene_ck.palette.encode(images)
    with torch.inference_mode():
        _, cache = scene_ck.model.run_with_cache(scene_ck.model.image_inputs(tokens), names={"blocks.1.resid_post"})
    x = torch.nn.functional.layer_norm(cache["blocks.1.resid_post"], (32,)).numpy()
    pooled = np.stack([x[i][m[i]].mean(0) for i in range(len(images))])
    np.testing.assert_allclose(r.features["Y"]["blocks.1"], pooled[4:8], rtol=1e-4, atol=1e-5)
    assert r.table[2].effect_size == pytest.approx(bias.ieat(*np.split(pooled, 4), n_permutations=500,
                                                                 seed=1).effect_size, abs=1e-4)
    # the baseline: the same test on the random-weight copy, layer by layer
    rand = checkpoint.Checkpoint(model=random_model(scene_ck.config, 2), palette=scene_ck.palette, meta={})
    plain = bias.bias_test(scene_ck, sets, n_permutations=500, seed=1, baseline_seed=2, n_bootstrap=100)
    expected = bias.bias_test(rand, sets, n_permutations=500, seed=1, baseline=False, n_bootstrap=100).table
    assert plain.baseline_table == expected and plain.pool == "mean"
    feats = extract_features(rand.model, tokens, ["embed"])
    assert expected[0].effect_size == pytest.approx(
        bias.ieat(*np.split(feats["embed"], 4), n_permutations=500, seed=1).effect_size, abs=1e-6)
    d = plain.to_dict()
    json.dumps(d)
    assert d["baseline"]["table"] == [e.to_dict() for e in expected] and "bootstrap" in d["bootstrap"]
    with pytest.raises(ValueError, match=r"masks\['A'\] must be bool N×H×W"):
        bias.bias_test(scene_ck, sets, masks={**masks, "A": masks["A"][:2]})


# ---- typed rows and the one flow ----

def test_bias_rows_are_typed_and_keep_the_json_row(rng):
    X, Y, A, B = _sets(rng, (4, 4, 3, 3))
    row = bias.ieat_per_layer({"embed": X}, {"embed": Y}, {"embed": A}, {"embed": B}, n_bootstrap=200)[0]
    r = bias.ieat(X, Y, A, B, n_bootstrap=200)
    assert list(row.to_dict()) == ["layer", "effect_size", "p_value", "p_holm", "ci_low", "ci_high", "statistic",
                                   "n_permutations", "exact", "n_x", "n_y", "n_a", "n_b", "p_targets"]
    assert row.to_dict() == {"layer": "embed", "p_holm": r.p_value, "p_targets": r.p_value, **vars(r)}
    assert row.text() == f"d {r.effect_size:.2f} (95% CI {r.ci_low:.2f} to {r.ci_high:.2f}), p {r.p_value:.2g}"


def test_run_gives_both_tests_in_one_report(scene_ck):
    sets = scenes.TestSets(4, seed=3, resolution=8).images()
    report = bias.run(scene_ck, sets, n_permutations=300, seed=1)
    lik = bias.likelihood_test(scene_ck, bias.compose_sets(sets), n_permutations=300, seed=1, baseline_seed=1)
    emb = bias.bias_test(scene_ck, sets, n_permutations=300, seed=1, baseline_seed=1)
    assert (report.likelihood.row, report.likelihood.baseline) == (lik.row, lik.baseline)
    assert report.table == emb.table and report.baseline_table == emb.baseline_table
    d = report.to_dict()
    assert list(d) == ["model", "extraction", "sets", "notes", "seed", "seconds", "likelihood", "ieat", "table",
                       "baseline_table"]
    assert d["extraction"] == {"crop": "center", "norm": "layernorm", "resolution": 8,
                               "resize": "area average (PIL box)", "pool": "mean"}
    assert d["sets"] == {k: {"images": 4} for k in "xyab"} and d["model"] is None and d["notes"] == []
    assert d["likelihood"] == lik.to_dict() and d["ieat"] == emb.to_dict() and d["table"] == emb.to_records()
    json.dumps(d)
    text = report.text()
    assert text.startswith("model: None") and f"\n{lik.text()}\n" in text
    assert "effect_size" in text and "blocks.1" in text and "random-weight copy:\n" in text
    assert "<table>" in report._repr_html_() and lik.text().startswith("likelihood test: d ")

    composed = scenes.TestSets(4, seed=3, resolution=8).composed(3, 2)  # scenes composed by the caller
    given = bias.run(scene_ck, sets, composed=composed, n_permutations=300, baseline=False, layers=["embed"])
    assert given.likelihood.row == bias.likelihood_test(scene_ck, composed, n_permutations=300, baseline=False).row
    assert given.to_dict()["baseline_table"] == [] and given.text().endswith("random-weight copy: not run")
    none = bias.run(scene_ck, sets, compose="none", n_permutations=300, baseline=False, extraction="ieat")
    assert none.likelihood is None and none.to_dict()["likelihood"] == {"skipped": "not asked (--compose none)"}
    assert none.extraction.crop == "top-left" and none.ieat.norm == "next"
    assert "likelihood test: skipped (not asked (--compose none))" in none.text()
    bert = checkpoint.Checkpoint(model=GPT(GPTConfig(n_colors=8, height=8, width=8, n_layer=1, n_head=2, n_embd=16,
                                                     objective="bert")).eval(), palette=scene_ck.palette, meta={})
    skipped = bias.run(bert, sets, n_permutations=300, baseline=False)
    assert skipped.likelihood_skipped == "a bert model gives no likelihood of a whole image"
    with pytest.raises(ValueError, match="compose must be one of rows, columns, none"):
        bias.run(scene_ck, sets, compose="diagonal")
    with pytest.raises(ValueError, match="missing B"):
        bias.run(scene_ck, {k: sets[k] for k in "XYA"})
