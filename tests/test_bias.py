import itertools
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from igpt_lite import bias, checkpoint, cli, data, scenes
from igpt_lite.model import GPT, GPTConfig
from igpt_lite.palette import Palette


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
    assert [r["layer"] for r in table] == layers
    np.testing.assert_allclose([r["p_holm"] for r in table], bias.holm([r["p_value"] for r in table]))
    for r, layer in zip(table, layers):
        assert r["effect_size"] == bias.ieat(*(f[layer] for f in feats)).effect_size
    json.dumps(table)  # plain types only
    with pytest.raises(ValueError, match="features_B has layers"):
        bias.ieat_per_layer(*feats[:3], {"embed": feats[3]["embed"]})


def test_null_calibration_returns_one_p_per_trial(rng):
    X, Y, A, B = _sets(rng, (6, 6, 6, 6), shift=2.0)
    cal = bias.null_calibration(X, Y, A, B, n_trials=40, n_permutations=500)
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
    table = [dict(r, model=name) for name in ("p50", "p90") for r in bias.ieat_per_layer(*feats)]
    from igpt_lite.plots import bias_per_layer_chart

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
           "--colors", "8", "--steps", "2", "--batch-size", "8", "--n-per-set", "5", "--null-trials", "5",
           "--permutations", "1000", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    table = json.loads((out / "bias_table.json").read_text())["table"]
    assert {r["model"] for r in table} == {"figures-p50", "figures-p90"} and len(table) == 4
    assert "null p < 0.05" in done.stdout and (out / "bias_per_layer.html").exists()
    assert (out / "figures_samples.png").exists()
