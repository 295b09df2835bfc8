
import numpy as np
import pytest
import torch

from igpt_lite import checkpoint
from igpt_lite.checkpoint import load_checkpoint, save_checkpoint
from igpt_lite.palette import Palette
from conftest import tiny_model


@pytest.fixture
def saved(tmp_path, grey_palette):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "ck", model, grey_palette, {"dataset": "digits"})
    return path, model, grey_palette


def test_round_trip_gives_the_same_model_palette_and_metadata(saved):
    path, model, palette = saved
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "palette.json"]
    ck = load_checkpoint(path)
    x = model.image_inputs(torch.randint(0, 8, (2, 30)))
    torch.testing.assert_close(ck.model(x), model(x), atol=0, rtol=0)
    assert ck.palette == palette and ck.meta["dataset"] == "digits" and ck.config == model.config
    assert not ck.model.training


@pytest.mark.parametrize("meta_init_above", [0, 10**12])  # big models skip random init on the meta device
def test_loaded_weights_are_the_saved_ones_whichever_way_the_model_is_built(saved, monkeypatch, meta_init_above):
    path, model, _ = saved
    monkeypatch.setattr(checkpoint, "META_INIT_ABOVE", meta_init_above)
    ck = load_checkpoint(path)
    loaded, saved_state = ck.model.state_dict(), model.state_dict()
    assert loaded.keys() == saved_state.keys()
    for name, tensor in saved_state.items():
        assert loaded[name].device.type == "cpu", name
        torch.testing.assert_close(loaded[name], tensor, atol=0, rtol=0)


def test_existing_folders_are_not_overwritten(saved, grey_palette):
    path, model, _ = saved
    with pytest.raises(FileExistsError, match="already exists"):
        save_checkpoint(path, model, grey_palette)


def test_a_failed_write_leaves_the_old_checkpoint_whole(saved, monkeypatch):
    path, model, palette = saved
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def crash(*a, **k):
        raise KeyboardInterrupt  # a kill in the middle of writing the weights
    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, tiny_model(seed=1), palette, overwrite=True)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in path.parent.iterdir()] == ["ck"]  # no temporary folder left behind


def test_missing_and_corrupt_files_name_the_file(saved):
    path, _, _ = saved
    (path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match=r"model.safetensors: cannot be read as safetensors"):
        load_checkpoint(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model.safetensors: missing"):
        load_checkpoint(path)
    (path / "config.json").write_text("{")
    with pytest.raises(ValueError, match=r"config.json: not a valid igpt-lite config"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at .* and no model named"):
        load_checkpoint(path.parent / "nothing")


def test_weights_that_do_not_match_the_config(saved, grey_palette):
    path, _, _ = saved
    other = save_checkpoint(path.parent / "wide", tiny_model(n_embd=64), grey_palette)
    (path / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="weights do not match .*config.json"):
        load_checkpoint(path)


def test_a_foreign_palette_is_refused(saved, rng):
    path, _, palette = saved
    other = Palette(np.sort(rng.uniform(-1, 1, (8, 1)).astype(np.float32), axis=0))
    other.save(path / "palette.json")
    with pytest.raises(ValueError, match="palette.json: this palette .* is not the one"):
        load_checkpoint(path)
    palette.save(path / "palette.json")
    ck = load_checkpoint(path)
    with pytest.raises(ValueError, match="palette mismatch"):
        ck.check_palette(other)


def test_run_folders_load_their_latest_step_and_names_resolve(tmp_path, grey_palette, monkeypatch):
    for step in (100, 200):
        save_checkpoint(tmp_path / "run" / f"step-{step:06d}", tiny_model(seed=step), grey_palette)
    assert load_checkpoint(tmp_path / "run").path.name == "step-000200"
    monkeypatch.setattr(checkpoint, "USER_DIR", tmp_path / "run")
    assert load_checkpoint("step-000100").path == tmp_path / "run" / "step-000100"
