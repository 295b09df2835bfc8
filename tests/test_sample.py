import pytest
import torch

from igpt_lite.sample import complete, filter_logits, generate, sample
from conftest import tiny_model


def test_cached_and_uncached_decoding_agree_token_for_token():
    model = tiny_model()
    prompt = torch.randint(0, 8, (4, 7))
    for kw in (dict(top_k=1), dict(temperature=0.9, seed=3)):
        cached = generate(model, prompt, use_cache=True, **kw)
        plain = generate(model, prompt, use_cache=False, **kw)
        assert torch.equal(cached, plain), kw
        assert torch.equal(cached[:, :7], prompt)


def test_greedy_decoding_picks_the_argmax_of_a_full_forward():
    model = tiny_model()
    out = generate(model, torch.randint(0, 8, (2, 3)), top_k=1)
    logits = model(model.image_inputs(out))
    assert torch.equal(out[:, 3:], logits[:, 3:].argmax(-1))


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    model = tiny_model()
    a, b, c = sample(model, 4, seed=1), sample(model, 4, seed=1), sample(model, 4, seed=2)
    assert a.shape == (4, 30) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() < 8


def test_complete_keeps_the_top_rows_of_every_sample():
    model = tiny_model()
    tokens = torch.randint(0, 8, (3, 30))
    out = complete(model, tokens, keep_rows=2, n_samples=4, seed=0)
    assert out.shape == (3, 4, 30)
    assert torch.equal(out[:, :, :10], tokens[:, None, :10].expand(3, 4, 10))
    assert len({tuple(s.tolist()) for s in out[0]}) > 1  # the samples differ
    assert torch.equal(complete(model, tokens, keep_rows=6)[:, 0], tokens)


def test_bert_model_completes_by_unmasking():
    model = tiny_model(objective="bert")
    tokens = torch.randint(0, 8, (2, 30))
    out = complete(model, tokens, keep_rows=3, n_samples=2, top_k=1)
    assert torch.equal(out[:, :, :15], tokens[:, None, :15].expand(2, 2, 15))
    # greedy unmasking: pixel 15 is the argmax with every later pixel masked
    x = tokens.clone()
    x[:, 15:] = 8
    assert torch.equal(out[:, 0, 15], model(x)[:, 15].argmax(-1))


def test_filters_keep_the_expected_sets():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    probs = logits.softmax(-1)[0]  # 0.64, 0.24, 0.09, 0.03
    kept = ~torch.isinf(filter_logits(logits, top_p=0.8))
    assert kept.tolist() == [[True, True, False, False]] and probs[:2].sum() >= 0.8
    kept = ~torch.isinf(filter_logits(logits, top_p=0.5))
    assert kept.tolist() == [[True, False, False, False]]
    torch.testing.assert_close(filter_logits(logits, temperature=2.0), logits / 2)


def test_bad_prompts_are_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="prompt tokens must lie in"):
        generate(model, torch.full((1, 3), 8))
    with pytest.raises(ValueError, match="keep_rows must be between 0 and 6"):
        complete(model, torch.zeros(1, 30, dtype=torch.long), keep_rows=7)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), temperature=0)
