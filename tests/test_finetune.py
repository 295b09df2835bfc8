"""Fine-tuning (train.finetune): the paper's joint classification + generative loss on a copy of a model."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from igpt_lite.checkpoint import load_checkpoint, save_checkpoint
from igpt_lite.data import load_dataset
from igpt_lite.train import finetune

from conftest import tiny_model


@pytest.fixture
def digits_ckpt(tmp_path, grey_palette):
    return save_checkpoint(tmp_path / "m", tiny_model(seed=1, height=8, width=8), grey_palette, {"dataset": "digits"})


def test_finetune_reports_the_accuracy_of_its_own_model_and_leaves_the_checkpoint_alone(digits_ckpt, grey_palette):
    ck = load_checkpoint(digits_ckpt)
    before = {k: v.clone() for k, v in ck.model.state_dict().items()}
    result = finetune(ck, limit=60, steps=6, batch_size=8, progress=False)
    test = load_dataset("digits", "test", resolution=8, limit=60)
    tokens = grey_palette.encode(test.images)
    with torch.no_grad():  # the reference: the head on the mean-pooled final norm of the fine-tuned copy
        _, cache = result.model.run_with_cache(result.model.image_inputs(tokens), names=["ln_f"])
        predicted = result.head(cache["ln_f"].mean(1)).argmax(1).numpy()
    assert result.test_acc == pytest.approx(np.mean(predicted == test.labels))
    assert np.array_equal(result.predict(tokens), predicted)
    assert result.test_stderr == pytest.approx(np.sqrt(result.test_acc * (1 - result.test_acc) / 60))
    assert (result.n_train, result.n_test, result.steps) == (60, 60, 6) and len(result.history) == 6
    assert all(h["loss"] == pytest.approx(h["clf_loss"] + h["gen_loss"]) for h in result.history)
    assert all(torch.equal(v, before[k]) for k, v in ck.model.state_dict().items()), "the checkpoint's model changed"
    assert any(not torch.equal(v, before[k]) for k, v in result.model.state_dict().items()), "nothing was trained"
    assert "fine-tuned 6 steps on 60 images" in result.text() and result.to_dict()["steps"] == 6
    assert repr(result) == f"FinetuneResult({result.text()})"  # short in a notebook, not the weights


def test_the_first_step_minimises_the_joint_loss_of_the_paper(digits_ckpt, grey_palette):
    """Step 1's loss is L_clf + gen_weight·L_gen computed by hand: cross-entropy of a fresh head on the
    pooled final norm, plus the model's own next-pixel loss, on the first batch."""
    ck = load_checkpoint(digits_ckpt)
    result = finetune(ck, limit=40, steps=1, batch_size=8, gen_weight=0.5, seed=3, progress=False)
    from igpt_lite.train import batch_indices

    train = load_dataset("digits", "train", resolution=8, limit=40)
    idx = batch_indices(40, 8, 0, 3)
    tokens, labels = grey_palette.encode(train.images)[idx], torch.as_tensor(train.labels)[idx]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        head = torch.nn.Linear(ck.model.config.n_embd, 10)
    with torch.no_grad():
        logits, cache = ck.model.run_with_cache(ck.model.image_inputs(tokens), names=["ln_f"])
        clf = F.cross_entropy(head(cache["ln_f"].mean(1)), labels)
        gen = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    first = result.history[0]
    assert first["clf_loss"] == pytest.approx(clf.item(), rel=1e-5)
    assert first["gen_loss"] == pytest.approx(gen.item(), rel=1e-5)
    assert first["loss"] == pytest.approx(clf.item() + 0.5 * gen.item(), rel=1e-5)


def test_finetune_refuses_zero_steps(digits_ckpt):
    with pytest.raises(ValueError, match="steps and batch_size must be at least 1, got 0 and 8"):
        finetune(digits_ckpt, steps=0, batch_size=8)


def test_a_bert_model_finetunes_on_its_masked_pixels(tmp_path, grey_palette):
    path = save_checkpoint(tmp_path / "b", tiny_model(seed=1, height=8, width=8, objective="bert"), grey_palette,
                           {"dataset": "digits"})
    result = finetune(path, limit=40, steps=2, batch_size=8, progress=False)
    assert len(result.history) == 2 and all(np.isfinite(h["gen_loss"]) for h in result.history)
    assert 0 <= result.test_acc <= 1
