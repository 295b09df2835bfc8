import math
import shutil

import pytest
import torch

from igpt_lite.checkpoint import load_checkpoint, step_dirs
from igpt_lite.data import load_dataset
from igpt_lite.model import GPT
from igpt_lite.palette import Palette
from igpt_lite.scoring import bits_per_image, evaluate_bits_per_dim
from igpt_lite.train import EvalPoint, History, TrainConfig, TrainResult, batch_indices, pretrain, train
from conftest import tiny_config


@pytest.fixture(scope="module")
def digits():
    tr, va = load_dataset("digits", "train"), load_dataset("digits", "val")
    pal = Palette.fit(tr.images, 8)
    return pal, pal.encode(tr.images), pal.encode(va.images)


def _fresh(objective="ar"):
    torch.manual_seed(0)
    return GPT(tiny_config(height=8, width=8, objective=objective))


def test_schedule_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert cfg.lr_at(0) == pytest.approx(0.1) and cfg.lr_at(9) == pytest.approx(1.0)
    assert cfg.lr_at(55) == pytest.approx(0.55) and cfg.lr_at(100) == pytest.approx(0.1)


def test_batches_cover_each_epoch_once():
    seen = torch.cat([batch_indices(10, 3, s, seed=0) for s in range(3)])
    assert sorted(seen.tolist()) == sorted(set(seen.tolist())) and len(seen) == 9
    assert not torch.equal(batch_indices(10, 3, 0, 0), batch_indices(10, 3, 3, 0))  # a new order per epoch


def test_training_beats_the_unigram_baseline(digits, tmp_path):
    pal, xt, xv = digits
    model = _fresh()
    cfg = TrainConfig(steps=80, batch_size=32, lr=3e-3, warmup_steps=10, eval_every=40, save_every=40)
    history = train(model, pal, xt, xv, tmp_path / "run", cfg, progress=False)
    baseline = pal.token_entropy_bits(xv)
    assert history[0].val_bpd > history[-1].val_bpd
    assert history[-1].val_bpd < baseline - 0.3, (history[-1], baseline)
    assert [p.name for p in step_dirs(tmp_path / "run")] == ["step-000040", "step-000080"]
    assert load_checkpoint(tmp_path / "run").meta["training"]["step"] == 80


@pytest.mark.parametrize("objective,accum", [("ar", 1), ("bert", 2)])
def test_a_killed_and_resumed_run_ends_with_the_same_weights(digits, tmp_path, objective, accum):
    pal, xt, xv = digits
    cfg = TrainConfig(steps=6, batch_size=16, grad_accum=accum, warmup_steps=2, eval_every=3, save_every=3,
                      eval_images=32)
    whole = _fresh(objective)
    train(whole, pal, xt, xv, tmp_path / "whole", cfg, progress=False)

    first = _fresh(objective)
    train(first, pal, xt, xv, tmp_path / "resumed", cfg, progress=False)
    # the kill: everything after the step-3 checkpoint is lost, so the run restarts from step 3
    shutil.rmtree(step_dirs(tmp_path / "resumed")[-1])
    resumed = _fresh(objective)
    torch.manual_seed(1234)  # a different global RNG state must not matter
    history = train(resumed, pal, xt, xv, tmp_path / "resumed", cfg, resume=True, progress=False)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert history[-1].step == 6


def test_an_existing_run_is_not_overwritten(digits, tmp_path):
    pal, xt, xv = digits
    cfg = TrainConfig(steps=2, batch_size=16, warmup_steps=1, eval_every=2, save_every=2, eval_images=16)
    train(_fresh(), pal, xt, xv, tmp_path / "run", cfg, progress=False)
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        train(_fresh(), pal, xt, xv, tmp_path / "run", cfg, progress=False)


def test_pretrain_fits_a_palette_and_records_the_baseline(tmp_path):
    cfg = tiny_config(height=8, width=8)
    tcfg = TrainConfig(steps=2, batch_size=16, warmup_steps=1, eval_every=2, save_every=2, eval_images=16)
    model, pal, history = pretrain("digits", tmp_path / "run", model_cfg=cfg, train_cfg=tcfg, progress=False)
    meta = load_checkpoint(tmp_path / "run").meta
    assert pal.n_colors == 8 and meta["dataset"] == "digits" and meta["resolution"] == 8
    assert 0 < meta["baseline_bpd"] <= math.log2(8)
    with pytest.raises(ValueError, match="model is 8×8 but the data would be 16×16"):
        pretrain("digits", tmp_path / "r2", model_cfg=cfg, train_cfg=tcfg, resolution=16)


def test_bits_per_image_sums_each_images_pixel_surprisal():
    torch.manual_seed(0)
    model = GPT(tiny_config()).eval()
    cfg = model.config
    tokens = torch.randint(0, cfg.n_colors, (5, cfg.block_size))
    bits = bits_per_image(model, tokens, batch_size=2)
    with torch.no_grad():  # by hand: -log2 p(pixel | the pixels before it), summed per image
        logp = torch.log_softmax(model(model.image_inputs(tokens)), -1)
        expected = -logp.gather(-1, tokens[..., None]).squeeze(-1).sum(1) / math.log(2)
    assert bits.shape == (5,) and torch.allclose(bits, expected, atol=1e-4)
    assert bits.mean().item() / cfg.block_size == pytest.approx(evaluate_bits_per_dim(model, tokens), rel=1e-5)
    with pytest.raises(ValueError, match="ar model"):
        bits_per_image(GPT(tiny_config(objective="bert")), tokens)


def test_history_reads_and_writes_the_rows_checkpoints_keep():
    rows = [{"step": 2, "train_bpd": 2.5, "val_bpd": 2.25, "lr": 1e-3, "tokens_per_s": 100.0},
            {"step": 4, "train_bpd": 2.0, "val_bpd": 1.75, "lr": 5e-4, "tokens_per_s": 120.0}]
    history = History.from_records(rows)
    assert history.to_records() == rows and list(rows[0]) == list(history.to_records()[0])  # same keys, same order
    assert len(history) == 2 and history[0] == EvalPoint(2, 2.5, 2.25, 1e-3, 100.0) and history.last.step == 4
    assert history[:1] == History([history[0]]) and [p.step for p in reversed(history)] == [4, 2]
    old = History.from_records([{"step": 50, "val_bpd": 2.5}, {"step": 100}])  # rows that lack keys read as None
    assert old.last.val_bpd is None and old.last_val_bpd == 2.5
    assert not History.from_records(None) and History().last is None and History().last_val_bpd is None


def test_train_result_text_is_one_line_a_field_without_the_history(tmp_path):
    history = History([EvalPoint(2, 2.5, 2.25, 1e-3, 100.0)])
    result = TrainResult(out=tmp_path / "step-000002", dataset="digits", parameters=1234, steps=2,
                         seconds=5.38312, val_bpd=2.25, baseline_bpd=None, history=history)
    assert result.text().splitlines() == [f"out: {tmp_path / 'step-000002'}", "dataset: digits", "parameters: 1234",
                                          "steps: 2", "seconds: 5.383", "val_bpd: 2.25", "baseline_bpd: None"]
    assert result.to_dict() == {"out": str(tmp_path / "step-000002"), "dataset": "digits", "parameters": 1234,
                                "steps": 2, "seconds": 5.38312, "val_bpd": 2.25, "baseline_bpd": None,
                                "history": history.to_records()}

