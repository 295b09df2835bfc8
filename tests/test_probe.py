import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
import sklearn

from igpt_lite import figures, probe
from igpt_lite.checkpoint import save_checkpoint
from igpt_lite.cli import main
from igpt_lite.features import extract_features, feature_layers
from igpt_lite.probe import (DEFAULT_CS, FeatureExtractor, KNNProbe, LinearProbe, ProbeTable, load_split,
                              probe_checkpoints, probe_layers, probe_model, umap_embedding)
from igpt_lite.cli import build_parser
from conftest import tiny_model

KINDS = {"trained", "random", "pixels", "palette"}


def tokens_for(model, n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.n_colors, (n, model.config.block_size), generator=g)


@pytest.fixture
def model():
    m = tiny_model(seed=1)
    with torch.no_grad():  # a final norm that is not the identity, so ln_f is its own layer
        m.ln_f.weight.uniform_(0.5, 2.0)
        m.ln_f.bias.uniform_(-1.0, 1.0)
    return m


@pytest.fixture
def digits_ckpt(tmp_path, grey_palette):
    return save_checkpoint(tmp_path / "m", tiny_model(seed=1, height=8, width=8), grey_palette, {"dataset": "digits"})


def separable(n, d=8, classes=3, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, d)) * 2
    return (centres[y] + noise * rng.standard_normal((n, d))).astype(np.float32), y


# ---- features ----

def test_features_match_a_hand_computation_from_the_cache(model):
    tokens = tokens_for(model)
    feats = extract_features(model, tokens, ["blocks.0", "ln_f"], batch_size=3)  # batches of 3, 3, 1
    with torch.no_grad():
        _, cache = model.run_with_cache(model.image_inputs(tokens), names={"blocks.0.resid_post", "ln_f"})
    for layer, name in (("blocks.0", "blocks.0.resid_post"), ("ln_f", "ln_f")):
        x = cache[name]  # the paper's features: layer norm without affine, then the mean over positions
        hand = F.layer_norm(x, x.shape[-1:]).mean(1).numpy()
        assert feats[layer].dtype == np.float32 and feats[layer].shape == (7, 32)
        np.testing.assert_allclose(feats[layer], hand, rtol=1e-5, atol=1e-6)
    # ln_f is its own layer (the affine final norm, then a plain one), not a copy of the last block
    last = extract_features(model, tokens, ["blocks.1"])["blocks.1"]
    assert not np.allclose(feats["ln_f"], last, atol=1e-3)
    # the other pools, and the default layer set is unchanged (callers rely on it)
    x = cache["ln_f"]
    ln = F.layer_norm(x, x.shape[-1:])
    np.testing.assert_allclose(extract_features(model, tokens, ["ln_f"], pool="max")["ln_f"], ln.amax(1), rtol=1e-5)
    np.testing.assert_allclose(extract_features(model, tokens, ["ln_f"], pool="last")["ln_f"], ln[:, -1], rtol=1e-5)
    assert list(extract_features(model, tokens)) == ["embed", "blocks.0", "blocks.1"]
    assert feature_layers(model, final_norm=True)[-1] == "ln_f"
    with pytest.raises(ValueError, match="pool"):
        extract_features(model, tokens, pool="median")


def test_features_of_low_layers_run_only_the_blocks_below_and_equal_the_full_pass():
    model = tiny_model(seed=2, n_layer=4)
    ran = []
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda *_, i=i: ran.append(i))
    tokens = tokens_for(model)
    for layer, name, blocks in (("embed", "embed", []), ("blocks.1", "blocks.1.resid_post", [0, 1]),
                                ("blocks.3", "blocks.3.resid_post", [0, 1, 2, 3]), ("ln_f", "ln_f", [0, 1, 2, 3])):
        ran.clear()
        feats = extract_features(model, tokens, [layer])[layer]
        assert ran == blocks, (layer, ran)
        with torch.no_grad():  # the reference: the whole forward pass, to the logits
            _, full = model.run_with_cache(model.image_inputs(tokens), names=[name])
        hand = F.layer_norm(full[name], full[name].shape[-1:]).mean(1).numpy()
        np.testing.assert_array_equal(feats, hand, err_msg=layer)


def test_feature_cache_hits_and_a_changed_model_or_data_misses(model, tmp_path, monkeypatch):
    tokens = tokens_for(model)
    first = extract_features(model, tokens, ["embed", "ln_f"], cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as f:  # a plain .npz, readable without pickle
        assert sorted(f.files) == ["embed", "ln_f"]

    def no_forward(*a, **kw):
        raise AssertionError("a cache hit must not run the model")

    monkeypatch.setattr(model, "run_with_cache", no_forward)
    hit = extract_features(model, tokens, ["embed", "ln_f"], cache_dir=tmp_path)
    assert list(hit) == ["embed", "ln_f"] and all(np.array_equal(first[l], hit[l]) for l in first)
    monkeypatch.undo()

    with torch.no_grad():
        model.blocks[1].mlp.proj.weight.mul_(1.5)  # changes ln_f, not embed
    changed = extract_features(model, tokens, ["embed", "ln_f"], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert np.array_equal(changed["embed"], first["embed"]) and not np.allclose(changed["ln_f"], first["ln_f"])
    extract_features(model, tokens[:5], ["embed", "ln_f"], cache_dir=tmp_path)  # other data
    extract_features(model, tokens, ["embed"], cache_dir=tmp_path)  # other layer set
    extract_features(model, tokens, ["embed", "ln_f"], pool="max", cache_dir=tmp_path)  # other pooling
    assert len(list(tmp_path.glob("*.npz"))) == 5


# ---- the probe ----

def test_probe_equals_sklearn_on_the_same_standardised_features():
    X, y = separable(500, noise=2.0)
    X = X * np.arange(1, 9) + 5  # unequal scales: standardising matters
    (X, y), (Xt, yt) = (X[:300], y[:300]), (X[300:], y[300:])
    probe = LinearProbe(Cs=[0.03], whiten=False).fit(X, y)
    scaler = StandardScaler().fit(X)
    ref = LogisticRegression(C=0.03, max_iter=1000).fit(scaler.transform(X), y)
    assert np.array_equal(probe.predict(Xt), ref.predict(scaler.transform(Xt)))
    assert probe.score(Xt, yt) == ref.score(scaler.transform(Xt), yt)
    np.testing.assert_allclose(probe.predict_proba(Xt), ref.predict_proba(scaler.transform(Xt)), rtol=1e-6)


def test_whitened_probe_equals_sklearn_pca_whitening_and_drops_null_directions():
    rng = np.random.default_rng(1)
    X, y = separable(600, d=6, noise=2.0)
    # two exact linear combinations of the others (the null directions layer norm creates) and
    # two near-copies at float32 level: 10 columns, 6 real directions
    X = np.c_[X, X[:, 0] - X[:, 1], X.sum(1), X[:, 2] + 1e-6 * rng.standard_normal(600),
              X[:, 3] + 1e-6 * rng.standard_normal(600)].astype(np.float32)
    (X, y), (Xt, yt) = (X[:400], y[:400]), (X[400:], y[400:])
    probe = LinearProbe(Cs=[0.5], tol=1e-8).fit(X, y)
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X).astype(np.float64)  # the probe whitens in float64
    ev = PCA().fit(Xs).explained_variance_
    k = int(np.sum(ev > 1e-8 * ev[0]))
    assert k == 6 and probe.whitener_.n_components_ == 6
    pca = PCA(n_components=k, whiten=True, svd_solver="full").fit(Xs)
    W = probe.preprocess(X)
    np.testing.assert_allclose(np.cov(W.T), np.eye(6), atol=1e-6)  # whitened on the training features
    # the same directions as scikit-learn's PCA up to sign, and (L2 being rotation-invariant) the same model
    np.testing.assert_allclose(np.abs(W), np.abs(pca.transform(Xs)), rtol=1e-4, atol=1e-4)
    ref = LogisticRegression(C=0.5, tol=1e-8, max_iter=5000).fit(pca.transform(Xs), y)
    ref_proba = ref.predict_proba(pca.transform(scaler.transform(Xt).astype(np.float64)))
    np.testing.assert_allclose(probe.predict_proba(Xt), ref_proba, atol=1e-5)
    assert np.array_equal(probe.predict(Xt), ref.classes_[ref_proba.argmax(1)]) and probe.converged_


def test_whitening_lets_lbfgs_converge_on_nearly_collinear_features():
    # the signal spread over directions whose variances span four decades, then rotated so that
    # standardising cannot undo it (as in mean-pooled layer-normed features): plain lbfgs needs
    # ~700 iterations at weak regularisation, whitened ~50
    rng = np.random.default_rng(0)
    S, y = separable(900, d=4, noise=1.0)
    Z = S @ rng.standard_normal((4, 30)) / 2 + 0.5 * rng.standard_normal((900, 30))
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    X = (Z * np.logspace(0, -4, 30)) @ Q
    plain = LinearProbe(Cs=[1e4], max_iter=300, whiten=False).fit(X[:600], y[:600])
    white = LinearProbe(Cs=[1e4], max_iter=300).fit(X[:600], y[:600])
    assert not plain.converged_ and plain.n_iter_ == 300
    assert white.converged_ and white.n_iter_ < 100
    ev = np.linalg.eigvalsh(np.cov(StandardScaler().fit_transform(X[:600]).T))
    assert white.whitener_.n_components_ == np.sum(ev > 1e-8 * ev.max())  # the near-null directions dropped


def test_auto_whitening_keeps_the_better_preprocessing_on_validation():
    rng = np.random.default_rng(2)
    X, y = separable(700, d=5, noise=2.0)
    X = np.c_[X, rng.standard_normal((700, 30))]
    (Xtr, ytr), (Xva, yva) = (X[:200], y[:200]), (X[200:], y[200:])
    Cs = [0.01, 1.0]
    auto = LinearProbe(Cs=Cs, whiten="auto").fit(Xtr, ytr, X_val=Xva, y_val=yva)
    scaler = StandardScaler().fit(Xtr)
    Xs, Xvs = scaler.transform(Xtr), scaler.transform(Xva)
    pca = PCA(whiten=True, svd_solver="full").fit(Xs)
    val = {}
    for w, (A, B) in ((True, (pca.transform(Xs), pca.transform(Xvs))), (False, (Xs, Xvs))):
        val[w] = [LogisticRegression(C=C, max_iter=5000).fit(A, ytr).score(B, yva) for C in Cs]
    best = max((True, False), key=lambda w: max(val[w]))  # first of equals: whitened
    assert auto.whitened_ == best and auto.val_scores_ == pytest.approx(val[best], abs=0.003)
    assert (auto.whitener_ is not None) == best
    with pytest.raises(ValueError, match="validation"):
        LinearProbe(whiten="auto").fit(Xtr, ytr)


def test_C_is_chosen_on_validation_and_the_grid_matters():
    # few training images, many noise features: strong regularisation wins on held-out data,
    # while training accuracy alone would pick the weakest
    rng = np.random.default_rng(0)
    X, y = separable(400, d=4, noise=1.5)
    X = np.c_[X, rng.standard_normal((400, 60))]
    (Xtr, ytr), (Xva, yva) = (X[:60], y[:60]), (X[60:], y[60:])
    Cs = np.logspace(-3, 2, 6)
    probe = LinearProbe(Cs=Cs, whiten=False).fit(Xtr, ytr, X_val=Xva, y_val=yva)
    scaler = StandardScaler().fit(Xtr)
    val = [LogisticRegression(C=C, max_iter=1000).fit(scaler.transform(Xtr), ytr).score(scaler.transform(Xva), yva)
           for C in Cs]
    assert probe.val_scores_ == pytest.approx(val)
    assert probe.C_ == Cs[int(np.argmax(val))] and probe.C_ < Cs[-1]
    assert max(val) - min(val) > 0.05  # the grid matters here
    ref = LogisticRegression(C=probe.C_, max_iter=1000).fit(scaler.transform(Xtr), ytr)
    assert np.array_equal(probe.predict(Xva), ref.predict(scaler.transform(Xva)))
    with pytest.raises(ValueError, match="validation"):
        LinearProbe(Cs=Cs).fit(Xtr, ytr)


# ---- scikit-learn conventions ----

def _expected_failures(estimator):
    """The estimator checks that do not apply, and why. (The default C grid is not checked: with
    several Cs, fit needs a validation split, which the checks do not pass; a single C is the same
    estimator with nothing to choose.)"""
    if isinstance(estimator, LinearProbe) and estimator.whiten:
        return {"check_fit2d_1sample": "one training sample leaves no direction to whiten: the error names "
                "0 features, not the single sample"}
    return {}


@parametrize_with_checks([LinearProbe(Cs=[1.0]), LinearProbe(Cs=[1.0], whiten=False), KNNProbe()],
                         expected_failed_checks=_expected_failures)
def test_probes_follow_scikit_learn(estimator, check):
    check(estimator)


def test_probe_parameters_clone_and_the_fitted_model_is_the_same():
    X, y = separable(300, noise=2.0)
    (Xtr, ytr), (Xva, yva) = (X[:200], y[:200]), (X[200:], y[200:])
    probe = LinearProbe(Cs=[0.01, 1.0], whiten="auto").set_params(max_iter=800)
    assert probe.get_params() == {"Cs": [0.01, 1.0], "max_iter": 800, "tol": 1e-4, "whiten": "auto", "rcond": 1e-8}
    twin = clone(probe)
    assert twin.get_params() == probe.get_params() and not hasattr(twin, "C_")
    a, b = probe.fit(Xtr, ytr, X_val=Xva, y_val=yva), twin.fit(Xtr, ytr, X_val=Xva, y_val=yva)
    assert (a.C_, a.val_scores_, a.whitened_) == (b.C_, b.val_scores_, b.whitened_)
    assert list(a.classes_) == [0, 1, 2] and a.n_features_in_ == 8
    assert clone(KNNProbe(k=5)).get_params()["k"] == 5


def test_a_pipeline_of_features_and_probe_equals_probe_layers(digits_ckpt, grey_palette):
    splits = {s: load_split("digits", s, grey_palette, 8, 60) for s in ("train", "val", "test")}
    images, tokens, labels = ({s: v[i] for s, v in splits.items()} for i in range(3))
    Cs = [0.01, 0.1, 1.0, 10.0]
    extractor = FeatureExtractor(digits_ckpt, "1").fit()
    feats = {s: {"blocks.1": extractor.transform(tokens[s])} for s in splits}
    ref = probe_layers(feats, labels, Cs=Cs, knn_k=None).rows[0]
    # X_val goes through the feature step too: scikit-learn's metadata routing
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline([("features", FeatureExtractor(digits_ckpt, "1")),
                         ("probe", LinearProbe(Cs=Cs).set_fit_request(X_val=True, y_val=True))],
                        transform_input=["X_val"])
        pipe.fit(images["train"], labels["train"], X_val=images["val"], y_val=labels["val"])
    assert pipe.score(images["test"], labels["test"]) == ref.test_acc
    assert pipe[-1].C_ == ref.C and max(pipe[-1].val_scores_) == ref.val_acc
    assert pipe[0].layer_ == "blocks.1" and np.array_equal(pipe[0].transform(images["test"]),
                                                           extractor.transform(tokens["test"]))
    with pytest.raises(ValueError, match="expected images shaped N×8×8×1"):
        pipe[0].transform(images["test"][:, :4])


def knn_reference(Xtr, ytr, Xq, k=20, T=0.07):
    """DINO's weighted kNN vote written out by hand, one query at a time."""
    preds = []
    for q in Xq:
        sims = [float(np.dot(q, x) / (np.linalg.norm(q) * np.linalg.norm(x))) for x in Xtr]
        order = sorted(range(len(Xtr)), key=lambda i: -sims[i])[:k]
        votes = {}
        for i in order:
            votes[ytr[i]] = votes.get(ytr[i], 0.0) + np.exp(sims[i] / T)
        preds.append(max(sorted(votes), key=lambda c: votes[c]))  # ties: the smallest label
    return np.array(preds)


def test_knn_probe_equals_a_brute_force_vote():
    X, y = separable(260, d=6, classes=4, noise=2.5, seed=3)
    X = X.astype(np.float64) * np.array([1, 5, 0.2, 3, 1, 2])  # scales matter for cosine: no standardising
    (Xtr, ytr), (Xq, yq) = (X[:200], y[:200]), (X[200:], y[200:])
    for k, T in ((20, 0.07), (5, 1.0), (1, 0.07)):
        ref = knn_reference(Xtr, ytr, Xq, k, T)
        knn = KNNProbe(k=k, temperature=T, batch_size=16).fit(Xtr, ytr)  # batches of 16: 4 and a rest
        assert np.array_equal(knn.predict(Xq), ref), (k, T)
        assert knn.score(Xq, yq) == np.mean(ref == yq)
    # the temperature weights the votes: one near neighbour outvotes two far ones when T is small
    Xtr = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    far = KNNProbe(k=3, temperature=0.07).fit(Xtr, ["a", "b", "b"])
    assert list(far.predict([[1.0, 0.3]])) == ["a"]
    assert list(KNNProbe(k=3, temperature=100.0).fit(Xtr, ["a", "b", "b"]).predict([[1.0, 0.3]])) == ["b"]
    assert list(KNNProbe(k=50).fit(Xtr, [0, 1, 1]).predict([[0.1, 1.0]])) == [1]  # k above n: all of them
    with pytest.raises(ValueError, match="temperature"):
        KNNProbe(temperature=0).fit(Xtr, [0, 1, 1])


def test_probe_layers_rows():
    feats, labels = {}, {}
    for i, split in enumerate(("train", "val", "test")):
        X, y = separable(90, seed=0)
        feats[split] = {"a": X + 0.1 * i, "b": X[:, :2]}
        labels[split] = y
    rows = probe_layers(feats, labels, Cs=[0.1, 1.0])
    assert [r.layer for r in rows] == ["a", "b"] and [r.depth for r in rows] == [0, 1]
    r = rows.rows[0]
    assert r.dim == 8 and r.n_test == 90 and r.C in (0.1, 1.0) and len(r.val_acc_by_C) == 2
    assert r.test_stderr == pytest.approx(np.sqrt(r.test_acc * (1 - r.test_acc) / 90))
    for r in rows:  # the kNN read-out in the same row, fitted on train, scored on val and test
        Xtr = feats["train"][r.layer]
        for split in ("val", "test"):
            ref = knn_reference(Xtr, labels["train"], feats[split][r.layer])
            assert getattr(r, f"knn_{split}_acc") == np.mean(ref == labels[split])
        assert r.knn_test_stderr == pytest.approx(np.sqrt(r.knn_test_acc * (1 - r.knn_test_acc) / 90))
        assert (r.knn_k, r.knn_temperature) == (20, 0.07)
    assert "knn_test_acc" not in probe_layers(feats, labels, Cs=[1.0], knn_k=None).to_records()[0]
    json.dumps(rows.to_records())  # plain types only


def test_probe_summary_picks_layers_on_validation_and_measures_margins():
    def row(kind, layer, val, test, **kw):
        return {"kind": kind, "layer": layer, "val_acc": val, "test_acc": test,
                "test_stderr": float(np.sqrt(test * (1 - test) / 400)), **kw}
    table = [row("trained", "blocks.0", 0.70, 0.72, step=100), row("trained", "blocks.1", 0.95, 0.10, step=100),
             row("trained", "blocks.0", 0.80, 0.79, step=200), row("trained", "blocks.1", 0.85, 0.84, step=200),
             row("random", "blocks.0", 0.60, 0.61), row("random", "blocks.1", 0.58, 0.70),
             row("pixels", "pixels", 0.75, 0.76), row("palette", "palette", 0.74, 0.74)]
    s = ProbeTable.from_records(table).summary()
    # the latest step's best layer on validation, not the best test number and not the old step
    assert s.trained.layer == "blocks.1" and s.trained.test_acc == 0.84
    assert s.baselines["random"].layer == "blocks.0" and s.baselines["random"].test_acc == 0.61
    se = np.hypot(np.sqrt(0.84 * 0.16 / 400), np.sqrt(0.76 * 0.24 / 400))
    assert s.margins["pixels"].points == pytest.approx(8.0)
    assert s.margins["pixels"].z == pytest.approx(0.08 / se)
    assert s.beats_all is True
    table.append(row("pixels", "pixels", 0.76, 0.83))  # a baseline within one s.e.
    assert ProbeTable.from_records(table).summary().beats_all is False


def test_depth_shape_finds_a_middle_peak_and_measures_the_fall():
    def rows(vals, tests, n=400, **kw):
        return ProbeTable.from_records([
            {"kind": "trained", "layer": f"l{d}", "depth": d, "val_acc": v, "test_acc": t,
             "test_stderr": float(np.sqrt(t * (1 - t) / n)), "knn_val_acc": v, "knn_test_acc": t - 0.2,
             "knn_test_stderr": float(np.sqrt((t - 0.2) * (1.2 - t) / n)), **kw} for d, (v, t) in
            enumerate(zip(vals, tests))])
    # the peak is chosen on validation (l2), not on test (l3 reads higher there)
    table = rows([0.3, 0.6, 0.8, 0.7, 0.6], [0.32, 0.62, 0.78, 0.80, 0.66])
    s = table.depth_shape()
    se = lambda a: np.sqrt(a * (1 - a) / 400)  # noqa: E731
    assert (s.peak, s.first, s.last, s.inside, s.shape) == ("l2", "l0", "l4", True, True)
    assert s.fall_points == pytest.approx(12.0) and s.fall_z == pytest.approx(0.12 / np.hypot(se(0.78), se(0.66)))
    assert s.rise_z == pytest.approx(0.46 / np.hypot(se(0.78), se(0.32)))
    k = table.depth_shape("knn")
    assert k.fall_z == pytest.approx(0.12 / np.hypot(se(0.58), se(0.46))) and k.peak == "l2"
    # a fall within noise, or a peak at the last layer, is not the shape
    assert not rows([0.3, 0.6, 0.8, 0.7], [0.3, 0.6, 0.8, 0.78]).depth_shape().shape
    flat = rows([0.3, 0.6, 0.8, 0.9], [0.3, 0.6, 0.8, 0.9]).depth_shape()
    assert flat.peak == "l3" and not flat.inside and not flat.shape
    # over checkpoints: the latest step unless one is named
    over = ProbeTable(rows([0.3, 0.9, 0.5], [0.3, 0.9, 0.5], step=1).rows + rows([0.3, 0.5, 0.9], [0.3, 0.5, 0.9],
                                                                                    step=2).rows)
    assert over.depth_shape().peak == "l2" and over.depth_shape(step=1).peak == "l1"


def test_probe_table_records_text_and_best_rule():
    table = plain_table()
    assert ProbeTable.from_records(table.to_records()) == table
    records = table.to_records()
    assert "seed" in records[0] and "seed" not in records[-1] and "step" not in records[0]  # as probe_model wrote them
    assert records[-1]["depth"] is None and "val_bpd" not in records[0]
    lines = table.text().splitlines()
    assert lines[0].split() == ["kind", "layer", "train_acc", "val_acc", "test_acc", "test_stderr", "C", "C_at_edge"]
    assert lines[2].split() == ["trained", "blocks.0", "0.9", "0.8", "0.8", "0.02", "1", "False"]
    assert len(lines) == 1 + len(table) and len({len(line) for line in lines}) == 1  # aligned
    assert table._repr_html_().count("<tr>") == 1 + len(table) and "<th>test_acc</th>" in table._repr_html_()
    # the best layer on validation; first of equals: the shallower
    assert table.best().layer == "blocks.0" and table.best("pixels").layer == "pixels"
    tied = ProbeTable.from_records([dict(r, val_acc=0.5) for r in reversed(table.to_records())])
    assert tied.best().layer == "embed" and tied.best("random").layer == "embed"
    with pytest.raises(ValueError, match="no 'knn' rows"):
        table.best("knn")


# ---- probe_model: results always come with their baselines ----

def test_probe_model_table_holds_the_baselines(digits_ckpt):
    table = probe_model(digits_ckpt, limit=30, Cs=[0.1, 1.0])
    assert {r.kind for r in table} == KINDS
    layers = ["embed", "blocks.0", "blocks.1", "ln_f"]
    assert [r.layer for r in table if r.kind == "trained"] == layers
    assert [r.layer for r in table if r.kind == "random"] == layers
    assert all(r.seed == 0 for r in table if r.kind == "random")
    assert {r.layer for r in table if r.kind in ("pixels", "palette")} == {"pixels", "palette"}
    assert all(r.n_train == 30 and r.n_val == 30 and r.n_test == 30 for r in table)
    assert all(0 <= getattr(r, k) <= 1 for r in table for k in ("train_acc", "val_acc", "test_acc"))
    # the random copy has other weights than the checkpoint (tiny_model(seed=1) vs seed 0)
    trained = {r.layer: r.val_acc_by_C for r in table if r.kind == "trained"}
    random = {r.layer: r.val_acc_by_C for r in table if r.kind == "random"}
    assert trained != random
    assert table.best().kind == "trained"
    json.dumps(table.to_records())
    sub = probe_model(digits_ckpt, limit=30, Cs=[1.0], layers=["blocks.1"])
    assert {r.kind for r in sub} == KINDS and {r.layer for r in sub if r.kind == "random"} == {"blocks.1"}
    assert {r.depth for r in sub if r.kind in ("trained", "random")} == {2}  # its place in the network


def test_probe_checkpoints_over_a_run(tmp_path, grey_palette):
    # a history as training writes it: step 100 was evaluated (and 50, which has no checkpoint), 200 was not
    history = [{"step": 50, "val_bpd": 2.5}, {"step": 100, "val_bpd": 2.25}]
    for step, seed in ((100, 2), (200, 3)):
        save_checkpoint(tmp_path / "run" / f"step-{step:06d}", tiny_model(seed=seed, height=8, width=8), grey_palette,
                        {"dataset": "digits", "training": {"step": step, "history": history}})
    table = probe_checkpoints(tmp_path / "run", limit=20, Cs=[1.0], layers=["embed", "blocks.1"])
    trained = [r for r in table if r.kind == "trained"]
    assert [(r.step, r.layer) for r in trained] == [(100, "embed"), (100, "blocks.1"), (200, "embed"),
                                                    (200, "blocks.1")]
    assert [r.val_bpd for r in trained] == [2.25, 2.25, None, None]  # that step's own evaluation only
    assert {r.kind for r in table} == KINDS and sum(r.kind == "pixels" for r in table) == 1
    fig = probe.probe_checkpoints_chart(table)
    assert len([t for t in fig.data if t.name.startswith("step")]) == 2
    with pytest.raises(FileNotFoundError, match="step"):
        probe_checkpoints(tmp_path / "empty")


# ---- figures from plain tables ----

def plain_table():
    rows = []
    for kind, accs in (("trained", [0.6, 0.8, 0.7]), ("random", [0.5, 0.55, 0.5])):
        for depth, (layer, acc) in enumerate(zip(["embed", "blocks.0", "ln_f"], accs)):
            rows.append(dict(kind=kind, layer=layer, depth=depth, train_acc=acc + 0.1, val_acc=acc, test_acc=acc,
                             test_stderr=0.02, C=1.0, C_at_edge=depth == 2, n_test=500, seed=0))
    for kind in ("pixels", "palette"):
        rows.append(dict(kind=kind, layer=kind, depth=None, train_acc=0.9, val_acc=0.7, test_acc=0.72,
                         test_stderr=0.02, C=0.1, C_at_edge=False, n_test=500))
    return ProbeTable.from_records(rows)


def test_plots_build_from_plain_tables(rng):
    table = plain_table()
    fig = probe.probe_depth_chart(table)
    names = [t.name for t in fig.data]
    assert names == ["random weights (seed 0)", "raw pixels: 72.0 ± 2.0%", "palette pixels: 72.0 ± 2.0%", "trained"]
    assert list(fig.data[-1].error_y.array) == [2.0, 2.0, 2.0]  # percent
    assert list(fig.layout.xaxis.categoryarray) == ["embed", "blocks.0", "ln_f"]
    assert "edge of the grid" in fig.layout.title.text
    assert len(fig.layout.shapes) == 2  # the pixel baselines' standard-error bands
    over_time = ProbeTable.from_records([dict(r, step=s) if r["kind"] == "trained" else r for s in (10, 20)
                                         for r in table.to_records() if r["kind"] == "trained" or s == 10])
    assert [t.name for t in probe.probe_checkpoints_chart(over_time).data][-2:] == ["step 10", "step 20"]
    assert probe.probe_depth_chart(over_time).data[-1].name == "trained (step 20)"
    # the kNN read-out, where the rows have it, is drawn beside the linear curve
    with_knn = ProbeTable.from_records([
        dict(r, knn_val_acc=r["val_acc"] - 0.1, knn_test_acc=r["test_acc"] - 0.05, knn_test_stderr=0.03, knn_k=20)
        if r["kind"] == "trained" else r for r in table.to_records()])
    fig = probe.probe_depth_chart(with_knn)
    assert [t.name for t in fig.data][-2:] == ["trained", "trained, kNN (k = 20)"]
    assert list(fig.data[-1].y) == pytest.approx([55.0, 75.0, 65.0]) and list(fig.data[-1].error_y.array) == [3, 3, 3]
    # accuracy against bits/dim: one point per step, the layer chosen on validation (not on test)
    steps = []
    for step, bpd, accs in ((100, 3.0, [(0.6, 0.7), (0.5, 0.9)]), (200, 2.5, [(0.7, 0.6), (0.8, 0.75)])):
        for depth, (val, test) in enumerate(accs):
            steps.append(dict(kind="trained", layer=f"blocks.{depth}", depth=depth, step=step, val_bpd=bpd,
                              val_acc=val, test_acc=test, test_stderr=0.02, knn_val_acc=val, knn_test_acc=test - 0.1,
                              knn_test_stderr=0.02, n_test=500))
    steps.append(dict(kind="random", layer="blocks.0", depth=0, val_acc=0.3, test_acc=0.31, test_stderr=0.02))
    fig = probe.probe_bits_chart(ProbeTable.from_records(steps))
    linear, knn = fig.data
    assert list(linear.x) == [3.0, 2.5] and list(linear.y) == pytest.approx([70.0, 75.0])
    assert list(knn.y) == pytest.approx([60.0, 65.0]) and list(linear.text) == ["100", "200"]
    assert fig.layout.xaxis.autorange == "reversed" and "random weights" in fig.layout.annotations[0].text
    fig = probe.umap_scatter(rng.standard_normal((40, 2)), np.arange(40) % 3, class_names=["a", "b", "c"])
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    assert "plotly" in figures.figures_html([fig])


@pytest.mark.slow
def test_save_figures_writes_the_page_and_a_screenshot(tmp_path):
    fig = probe.probe_depth_chart(plain_table(), title="depth chart for the docs")
    written = figures.save_figures([fig], tmp_path / "out" / "probe.html", title="page title", png=False)
    assert written == [str(tmp_path / "out" / "probe.html")]
    page = (tmp_path / "out" / "probe.html").read_text()
    assert "<title>page title</title>" in page and "depth chart for the docs" in page
    if not Path(figures.CHROMIUM).exists():
        pytest.skip(f"no {figures.CHROMIUM}: the PNG half needs Debian's chromium")
    written = figures.save_figures([fig], tmp_path / "probe.html")
    png = tmp_path / "probe.png"
    assert written == [str(tmp_path / "probe.html"), str(png)] and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "probe.html", "probe.png"]  # no screenshot copy left


@pytest.mark.slow  # umap-learn's import and numba compile: tens of seconds in a fresh process
def test_umap_is_seeded_and_separates_clusters():
    X, y = separable(150, d=16, classes=2, noise=0.3)
    a, b = umap_embedding(X, seed=0), umap_embedding(X, seed=0)
    assert a.shape == (150, 2) and a.dtype == np.float32 and np.array_equal(a, b)
    centres = np.array([a[y == k].mean(0) for k in (0, 1)])
    spread = max(a[y == k].std(0).max() for k in (0, 1))
    assert np.linalg.norm(centres[0] - centres[1]) > 3 * spread


# ---- the CLI ----

def test_cli_probe_json_carries_every_number(digits_ckpt, tmp_path, capsys):
    html = tmp_path / "probe.html"
    assert main(["probe", "--model", str(digits_ckpt), "--limit", "25", "--C", "1", "0.1", "--layers", "embed", "1",
                 "ln_f", "--html", str(html), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "digits" and out["Cs"] == [0.1, 1.0] and out["seed"] == 0 and out["umap"] is None
    direct = probe_model(digits_ckpt, limit=25, Cs=[0.1, 1.0], layers=["embed", "blocks.1", "ln_f"])
    drop = lambda rows: [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in rows]  # noqa: E731
    assert drop(out["table"]) == drop(direct.to_records())  # every row, every number
    assert all(isinstance(r["seconds"], float) for r in out["table"])
    best = direct.best()
    assert out["best"]["layer"] == best.layer and out["best"]["test_acc"] == best.test_acc
    assert out["summary"] == json.loads(json.dumps(direct.summary().to_dict()))
    assert html.exists() and "Linear probes" in html.read_text()
    assert main(["probe", "--model", str(digits_ckpt), "--limit", "25", "--C", "1", "--layers", "1"]) == 0
    text = capsys.readouterr().out
    assert "test_acc" in text and "palette" in text and "random" in text
    assert "best layer minus baselines: random" in text and "s.e.)" in text
    assert text.rstrip().endswith(probe_model(digits_ckpt, limit=25, Cs=[1.0], layers=["1"]).text().splitlines()[-1])
    assert main(["probe", "--model", str(digits_ckpt), "--layers", "blocks.9"]) == 2
    assert "unknown layer" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_probe_umap(digits_ckpt, capsys):
    assert main(["probe", "--model", str(digits_ckpt), "--limit", "60", "--C", "1", "--layers", "1", "--umap",
                 "--json"]) == 0
    u = json.loads(capsys.readouterr().out)["umap"]
    assert u["layer"] == "blocks.1" and u["split"] == "test" and len(u["x"]) == len(u["labels"]) == 60


def test_cli_probe_help_shows_the_default_grid():
    probe_parser = build_parser()._subparsers._group_actions[0].choices["probe"]
    (action,) = [a for a in probe_parser._actions if "--C" in a.option_strings]
    assert f"from {DEFAULT_CS[0]:.0e} to {DEFAULT_CS[-1]:.0e}" in action.help and "1e-05 to 1e+05" in action.help
    assert f"{len(DEFAULT_CS)} values" in action.help
