"""The token cache: a split encoded once, on disk as uint16, exactly palette.encode's tokens; damaged
files are rebuilt, never used; training from it ends with the same weights as from memory."""
import json
import warnings

import numpy as np
import pytest
import torch

from igpt_lite.data import tokens as tok
from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.data import load_dataset
from igpt_lite.palette import Palette
from igpt_lite.data.tokens import encoded_split, token_batch, token_cache_path
from igpt_lite.train import TrainConfig, pretrain
from conftest import tiny_config


@pytest.fixture(scope="module")
def rgb_palette():
    return Palette.fit(load_dataset("shapes", "train", limit=200).images, 12)


def test_the_cache_holds_exactly_the_palettes_tokens_and_is_reused(tmp_path, grey_palette, monkeypatch):
    ref = grey_palette.encode(load_dataset("digits", "train").images)
    got = encoded_split("digits", "train", grey_palette, 8, cache_dir=tmp_path)
    assert isinstance(got, np.memmap) and got.dtype == np.uint16 and got.shape == (len(ref), 64)
    assert torch.equal(torch.from_numpy(got.astype(np.int64)), ref)
    path = token_cache_path("digits", "train", grey_palette, 8, cache_dir=tmp_path)
    assert path.parent.parent == tmp_path and path.exists() and not list(path.parent.glob(".tmp-*"))

    def no_loading(*args, **kwargs):
        raise AssertionError("the dataset was read again")

    monkeypatch.setattr(tok, "load_dataset", no_loading)
    again = encoded_split("digits", "train", grey_palette, 8, cache_dir=tmp_path)
    assert np.array_equal(again, got)


def test_encoding_in_chunks_gives_the_same_tokens(tmp_path, rgb_palette, monkeypatch):
    monkeypatch.setattr(tok, "ENCODE_CHUNK", 7)  # 7 does not divide the split: a short last chunk
    images = load_dataset("shapes", "val").images
    got = encoded_split("shapes", "val", rgb_palette, 16, cache_dir=tmp_path)
    assert len(images) % 7 and torch.equal(torch.from_numpy(got.astype(np.int64)), rgb_palette.encode(images))


def test_files_replaced_behind_a_dataset_name_get_a_new_cache(grey_palette, tmp_path):
    folder = tmp_path / "pics" / "a"
    folder.mkdir(parents=True)
    (folder / "1.png").write_bytes(b"first")
    name = f"folder:{tmp_path / 'pics'}"
    before = token_cache_path(name, "train", grey_palette, 8, cache_dir=tmp_path)
    assert token_cache_path(name, "train", grey_palette, 8, cache_dir=tmp_path) == before  # stable
    (folder / "1.png").write_bytes(b"second, longer")
    assert token_cache_path(name, "train", grey_palette, 8, cache_dir=tmp_path) != before
    # the embedded sets are not files: the data root does not enter their key
    assert (token_cache_path("digits", "train", grey_palette, 8, root=tmp_path / "a", cache_dir=tmp_path)
            == token_cache_path("digits", "train", grey_palette, 8, cache_dir=tmp_path))


def test_the_key_separates_palettes_resolutions_splits_and_roots(grey_palette, rgb_palette, tmp_path):
    other = Palette(np.linspace(-1, 0.9, 8, dtype=np.float32)[:, None])
    paths = {token_cache_path("digits", "train", grey_palette, 8, cache_dir=tmp_path),
             token_cache_path("digits", "train", other, 8, cache_dir=tmp_path),
             token_cache_path("digits", "train", grey_palette, 4, cache_dir=tmp_path),
             token_cache_path("digits", "val", grey_palette, 8, cache_dir=tmp_path),
             token_cache_path("cifar10", "train", grey_palette, 8, root=tmp_path / "a", cache_dir=tmp_path),
             token_cache_path("cifar10", "train", grey_palette, 8, root=tmp_path / "b", cache_dir=tmp_path),
             token_cache_path("folder:/x/y", "train", grey_palette, 8, cache_dir=tmp_path),
             token_cache_path("folder:/x_y", "train", grey_palette, 8, cache_dir=tmp_path)}
    assert len(paths) == 8
    assert all(p.is_relative_to(tmp_path) for p in paths)  # a dataset name with slashes stays inside
    with pytest.raises(ValueError, match="this palette has 3"):  # the palette's channels must be the data's
        encoded_split("digits", "train", rgb_palette, 8, cache_dir=tmp_path)


def _damage_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])


def _damage_extend(path):
    path.write_bytes(path.read_bytes() + b"\0" * 64)


def _damage_header(path):
    path.write_bytes(b"not a numpy file" + path.read_bytes()[16:])


def _damage_range(path):  # a well-formed file whose tokens do not belong to an 8-colour palette
    arr = np.lib.format.open_memmap(path, mode="r+")
    arr[3, 5] = 8
    arr.flush()


def _damage_dtype(path):
    np.save(path, np.zeros((10, 64), dtype=np.int32))


def _damage_zero(path):  # the header intact, every token 0: in range, the right size, and wrong
    arr = np.lib.format.open_memmap(path, mode="r+")
    arr[:] = 0
    arr.flush()


def _damage_checksum_file(path):
    path.with_suffix(".crc32").unlink()


@pytest.mark.parametrize("damage,why", [(_damage_truncate, "unreadable"), (_damage_extend, "bytes, its header says"),
                                        (_damage_header, "unreadable"), (_damage_range, "holds token 8"),
                                        (_damage_dtype, "holds int32"),
                                        (_damage_zero, r"does not match its checksum \(it changed after it was written\)"),
                                        (_damage_checksum_file, "has no checksum file")])
def test_a_damaged_cache_is_rebuilt_with_a_warning(tmp_path, grey_palette, damage, why):
    ref = encoded_split("digits", "val", grey_palette, 8, cache_dir=tmp_path).copy()
    path = token_cache_path("digits", "val", grey_palette, 8, cache_dir=tmp_path)
    damage(path)
    with pytest.warns(UserWarning, match=f"token cache {path}.*{why}.*rebuilding it"):
        got = encoded_split("digits", "val", grey_palette, 8, cache_dir=tmp_path)
    assert np.array_equal(got, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt whole: no warning the next time
        encoded_split("digits", "val", grey_palette, 8, cache_dir=tmp_path)


def test_an_unwritable_cache_encodes_in_memory_with_a_warning(tmp_path, grey_palette):
    (tmp_path / "file").write_text("a file where the cache folder would go")
    with pytest.warns(UserWarning, match="cannot write the token cache .*encoding in memory instead"):
        got = encoded_split("digits", "val", grey_palette, 8, cache_dir=tmp_path / "file")
    ref = grey_palette.encode(load_dataset("digits", "val").images)
    assert got.dtype == np.uint16 and torch.equal(torch.from_numpy(got.astype(np.int64)), ref)


def test_a_batch_is_read_in_the_order_asked_as_long(tmp_path, grey_palette):
    arr = encoded_split("digits", "val", grey_palette, 8, cache_dir=tmp_path)
    idx = torch.tensor([5, 0, 17, 5])
    got = token_batch(arr, idx)
    assert got.dtype == torch.long and got.shape == (4, 64)
    for row, i in zip(got, idx.tolist()):
        assert row.tolist() == arr[i].astype(int).tolist()
    ref = torch.from_numpy(arr.astype(np.int64))
    assert torch.equal(token_batch(ref, idx), ref[idx])


def test_pretraining_from_the_cache_equals_pretraining_from_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("IGPT_LITE_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(height=8, width=8)
    tcfg = TrainConfig(steps=3, batch_size=16, warmup_steps=1, eval_every=3, save_every=3, eval_images=16)
    runs = {}
    for cached in (True, False):
        model, pal, history = pretrain("digits", tmp_path / f"run-{int(cached)}", model_cfg=cfg, train_cfg=tcfg,
                                       progress=False, token_cache=cached)
        runs[cached] = (load_checkpoint(tmp_path / f"run-{int(cached)}").model.state_dict(), history)
    files = sorted((tmp_path / "cache" / "tokens" / "digits").glob("*.npy"))
    assert [f.name for f in files] == [token_cache_path("digits", split, pal, 8).name for split in ("train", "val")]
    metas = [json.loads((tmp_path / f"run-{cached}" / "step-000003" / "config.json").read_text()) for cached in (1, 0)]
    assert metas[0]["palette_error"] == metas[1]["palette_error"] and metas[0]["baseline_bpd"] == metas[1]["baseline_bpd"]
    for (name, a), b in zip(runs[True][0].items(), runs[False][0].values()):
        assert torch.equal(a, b), name
    assert runs[True][1][-1].val_bpd == runs[False][1][-1].val_bpd
