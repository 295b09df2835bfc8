"""Hugging Face ImageGPT interop: an imported model gives transformers' outputs (logits, every hidden
state, attention, greedy completions, palette tokens); export -> import is the identity."""
import json
import shutil

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling, ImageGPTImageProcessor  # noqa: E402

from igpt_lite import checkpoint, cli, interop  # noqa: E402
from igpt_lite.features import extract_features  # noqa: E402
from igpt_lite.model import GPT, GPTConfig  # noqa: E402
from igpt_lite.palette import Palette  # noqa: E402
from igpt_lite.sample import complete  # noqa: E402

TOL = dict(atol=1e-5, rtol=0)

# widths, depths, heads, resolutions (one non-square), palette sizes, both activations and the flags
CONFIGS = {
    "square-quick-gelu": dict(hf=dict(n_embd=32, n_layer=2, n_head=2), colors=8, size=(8, 8)),
    "non-square-inverse-layer-scale": dict(
        hf=dict(n_embd=48, n_layer=3, n_head=4, scale_attn_by_inverse_layer_idx=True, layer_norm_epsilon=1e-6),
        colors=16, size=(6, 5)),
    "gelu-mlp-ratio-2-upcast": dict(
        hf=dict(n_embd=64, n_layer=1, n_head=8, activation_function="gelu", n_inner=128,
                reorder_and_upcast_attn=True), colors=32, size=(4, 7)),
}


def random_hf(hf_kw: dict, n_colors: int, size: tuple, seed: int = 0):
    torch.manual_seed(seed)
    h, w = size
    model = ImageGPTForCausalImageModeling(ImageGPTConfig(vocab_size=n_colors + 1, n_positions=h * w, **hf_kw))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name:  # HF leaves its norm weights uninitialised: set them
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):  # random, not the official zeros, so their mapping is tested
                p.normal_(0, 0.05)
            else:  # wider than the 0.02 init: peaked attention, logits far apart
                p.normal_(0, 0.1)
    clusters = np.random.default_rng(seed).uniform(-1, 1, (n_colors, 3))
    processor = ImageGPTImageProcessor(clusters=clusters, size={"height": h, "width": w})
    return model.eval(), processor


def write_bin_folder(model, processor, folder, old_buffers: bool):
    """The layout of old Hub exports: pytorch_model.bin, with the causal-mask buffers."""
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    state = dict(model.state_dict())
    if old_buffers:
        T = model.config.n_positions
        for i in range(model.config.n_layer):
            state[f"transformer.h.{i}.attn.bias"] = torch.ones(T, T, dtype=torch.bool).tril().view(1, 1, T, T)
            state[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, folder / "pytorch_model.bin")  # writing a test fixture; we only ever read it weights_only


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each configuration's random HF model and processor, saved once per test module."""
    cache = {}

    def get(name):
        if name not in cache:
            spec = CONFIGS[name]
            model, processor = random_hf(spec["hf"], spec["colors"], spec["size"])
            folder = tmp_path_factory.mktemp("hf") / name
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            cache[name] = dict(model=model, processor=processor, folder=folder, size=spec["size"],
                               colors=spec["colors"])
        return cache[name]
    return get


@pytest.fixture(params=list(CONFIGS))
def hf(request, saved):
    return saved(request.param)


@pytest.fixture
def hf_square(saved):
    return saved("square-quick-gelu")


@pytest.fixture
def hf_non_square(saved):
    return saved("non-square-inverse-layer-scale")


@torch.no_grad()
def test_logits_hidden_states_and_attention_equal_transformers(hf):
    ck = interop.load_hf(hf["folder"])
    cfg = ck.config
    assert (cfg.height, cfg.width, cfg.n_colors) == (*hf["size"], hf["colors"])
    assert cfg.norm == "rms" and cfg.activation == hf["model"].config.activation_function
    tokens = torch.randint(0, cfg.n_colors, (3, cfg.block_size), generator=torch.Generator().manual_seed(1))
    ids = ck.model.image_inputs(tokens)  # [start = n_colors] + tokens[:-1], as HF is fed
    assert ids[0, 0] == hf["model"].config.vocab_size - 1
    theirs = hf["model"](ids, output_hidden_states=True, output_attentions=True)
    logits, cache = ck.model.run_with_cache(ids)
    torch.testing.assert_close(logits, theirs.logits, **TOL)
    # HF's hidden states: the embeddings, blocks 0..L-2, then ln_f(last block)
    L = cfg.n_layer
    ours = [cache["embed"]] + [cache[f"blocks.{i}.resid_post"] for i in range(L - 1)] + [cache["ln_f"]]
    assert len(theirs.hidden_states) == len(ours) == L + 1
    for a, b in zip(ours, theirs.hidden_states):
        torch.testing.assert_close(a, b, **TOL)
    for i in range(L):
        torch.testing.assert_close(cache[f"blocks.{i}.attn.pattern"], theirs.attentions[i], **TOL)
    torch.testing.assert_close(ck.model(ids), theirs.logits, **TOL)  # the fused attention path too


def test_palette_tokens_equal_the_image_processor(hf):
    ck = interop.load_hf(hf["folder"])
    np.testing.assert_array_equal(ck.palette.centers, np.asarray(hf["processor"].clusters, dtype=np.float32))
    h, w = hf["size"]
    images = np.random.default_rng(2).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    # images already at the model's size: the processor's resize would resample them otherwise
    theirs = hf["processor"](images=list(images), do_resize=False, input_data_format="channels_last",
                             return_tensors="pt")["input_ids"]
    assert torch.equal(ck.palette.encode(images), theirs.long())


@torch.no_grad()
def test_greedy_completions_equal_hf_generate(hf):
    ck = interop.load_hf(hf["folder"])
    cfg = ck.config
    tokens = torch.randint(0, cfg.n_colors, (2, cfg.block_size), generator=torch.Generator().manual_seed(3))
    keep = cfg.height // 2
    ours = complete(ck.model, tokens, keep_rows=keep, top_k=1)[:, 0]
    start = torch.full((2, 1), cfg.special_id)
    theirs = hf["model"].generate(input_ids=torch.cat([start, tokens[:, : keep * cfg.width]], 1),
                                  max_length=cfg.block_size + 1, do_sample=False)
    assert torch.equal(ours, theirs[:, 1:])


def test_bin_files_with_old_buffers_load_the_same_weights(hf, tmp_path):
    write_bin_folder(hf["model"], hf["processor"], tmp_path, old_buffers=True)
    a, b = interop.load_hf(hf["folder"]), interop.load_hf(tmp_path)
    assert a.config == b.config and a.palette == b.palette
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_all_zero_biases_are_dropped(tmp_path):
    model, processor = random_hf(CONFIGS["square-quick-gelu"]["hf"], 8, (8, 8))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()  # as in the official weights
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    ck = interop.load_hf(tmp_path)
    assert ck.config.bias is False
    ids = ck.model.image_inputs(torch.randint(0, 8, (2, 64)))
    with torch.no_grad():
        torch.testing.assert_close(ck.model(ids), model(ids).logits, **TOL)


def _our_model(bias: bool, **kw):
    torch.manual_seed(0)
    cfg = GPTConfig(n_colors=12, height=5, width=6, n_layer=2, n_head=4, n_embd=32, norm="rms",
                    activation="quick_gelu", bias=bias, norm_eps=1e-6, mlp_ratio=3, dropout=0.1, **kw)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if ".ln_" in name or name.startswith("ln_f") else 0.0, 0.1)
    palette = Palette(np.random.default_rng(0).uniform(-1, 1, (12, 3)).astype(np.float32))
    return checkpoint.Checkpoint(model=model, palette=palette)


@pytest.mark.parametrize("bias,inverse", [(False, False), (True, True)])
def test_export_then_import_is_the_identity_and_transformers_loads_it(tmp_path, bias, inverse):
    ck = _our_model(bias, scale_attn_by_inverse_layer_idx=inverse)
    out = interop.export_hf(ck, tmp_path / "hf")
    back = interop.load_hf(out)
    assert back.config == ck.config and back.palette == ck.palette
    sa, sb = ck.model.state_dict(), back.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    model, info = ImageGPTForCausalImageModeling.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    ids = ck.model.image_inputs(torch.randint(0, 12, (2, 30)))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(ids).logits, ck.model(ids), **TOL)
    processor = ImageGPTImageProcessor.from_pretrained(out)
    images = np.random.default_rng(4).integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    theirs = processor(images=list(images), input_data_format="channels_last", return_tensors="pt")["input_ids"]
    assert torch.equal(ck.palette.encode(images), theirs.long())  # its size is the model's: resize is a no-op


def test_export_refuses_what_hf_cannot_run(tmp_path):
    ck = _our_model(True)
    for kw, match in [(dict(norm="layernorm"), "norm='layernorm'"), (dict(objective="bert"), "autoregressive")]:
        bad = checkpoint.Checkpoint(model=GPT(GPTConfig(**{**ck.config.to_dict(), **kw})), palette=ck.palette)
        with pytest.raises(ValueError, match=match):
            interop.export_hf(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("edit,match", [
    (dict(scale_attn_weights=False), "scale_attn_weights=False"),
    (dict(add_cross_attention=True), "cross-attention"),
    (dict(activation_function="gelu_new"), "activation_function='gelu_new'"),
    (dict(n_inner=40), "n_inner=40"),
    (dict(tie_word_embeddings=True), "untied"),
    (dict(vocab_size=9 + 1), "clusters"),
])
def test_unsupported_configs_raise_clear_errors(hf_square, tmp_path, edit, match):
    folder = tmp_path / "m"
    shutil.copytree(hf_square["folder"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **edit}))
    with pytest.raises(ValueError, match=match):
        interop.load_hf(folder)


def test_missing_files_and_foreign_heads_are_explained(hf_square, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(hf_square["folder"], folder)
    (folder / "preprocessor_config.json").rename(tmp_path / "p.json")
    with pytest.raises(FileNotFoundError, match="clusters"):
        interop.load_hf(folder)
    (tmp_path / "p.json").rename(folder / "preprocessor_config.json")
    hf_square["model"].transformer.save_pretrained(folder)  # an ImageGPTModel: no lm_head, no prefix
    with pytest.raises(ValueError, match="ImageGPTForCausalImageModeling"):
        interop.load_hf(folder)


def test_cli_import_finds_by_name_and_the_model_runs_unchanged(hf_non_square, tmp_path, monkeypatch, capsys):
    hf = hf_non_square
    monkeypatch.setattr(checkpoint, "USER_DIR", tmp_path / "models")
    assert cli.main(["import-hf", str(hf["folder"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    name = hf["folder"].name
    assert result["out"] == str(tmp_path / "models" / name) and result["name"] == name
    ck = checkpoint.load_checkpoint(name)
    cfg = ck.config
    tokens = ck.palette.encode(np.random.default_rng(5).integers(0, 256, (3, cfg.height, cfg.width, 3), dtype=np.uint8))
    feats = extract_features(ck.model, tokens, norm="next")
    assert list(feats) == ["embed"] + [f"blocks.{i}" for i in range(cfg.n_layer)]
    assert all(f.shape == (3, cfg.n_embd) and np.isfinite(f).all() for f in feats.values())
    out = complete(ck.model, tokens, keep_rows=2, n_samples=2, seed=0)
    kept = 2 * cfg.width
    assert out.shape == (3, 2, cfg.block_size)
    assert torch.equal(out[:, :, :kept], tokens[:, None, :kept].expand(3, 2, -1))  # the kept rows stay

    assert cli.main(["export-hf", "--model", name, str(tmp_path / "back"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(tmp_path / "back")
    back = interop.load_hf(tmp_path / "back")
    assert back.config == cfg and all(torch.equal(a, b) for a, b in zip(back.model.parameters(), ck.model.parameters()))
    assert cli.main(["import-hf", str(hf["folder"])]) == 2  # exists: refused, not overwritten
    assert "already exists" in capsys.readouterr().err


def test_a_grey_palette_exports_as_rgb_with_the_same_tokens(tmp_path):
    ck = _our_model(False)
    grey = Palette(np.linspace(-1, 1, 12, dtype=np.float32)[:, None])
    out = interop.export_hf(checkpoint.Checkpoint(model=ck.model, palette=grey), tmp_path / "hf")
    back = interop.load_hf(out)
    np.testing.assert_array_equal(back.palette.centers, np.repeat(grey.centers, 3, axis=1))
    images = np.random.default_rng(6).integers(0, 256, (2, 5, 6), dtype=np.uint8)
    rgb = np.repeat(images[..., None], 3, axis=-1)
    theirs = ImageGPTImageProcessor.from_pretrained(out)(images=list(rgb), input_data_format="channels_last",
                                                         return_tensors="pt")["input_ids"]
    assert torch.equal(grey.encode(images), theirs.long()) and torch.equal(back.palette.encode(rgb), theirs.long())


def test_loading_an_hf_folder_as_a_checkpoint_says_to_import_it(hf_square):
    with pytest.raises(FileNotFoundError, match="Hugging Face ImageGPT folder.*igpt-lite import-hf"):
        checkpoint.load_checkpoint(hf_square["folder"])
