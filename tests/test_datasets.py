"""The readers of the datasets users bring (CIFAR-10/100, STL-10, IDX, image folders), on fixture
files written here by writers that follow the published formats, independently of the readers.

Every fixture image is asymmetric (a left-to-right red gradient, a green value per image, a blue
3×2 mark in the top-left corner, the image's number in the bottom-right blue pixel), so a read that
transposes, flips or swaps channels fails the pixel-exact comparisons."""
import gzip
import re
import json
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from igpt_lite import data
from igpt_lite.checkpoint import Checkpoint
from igpt_lite.cli import main
from conftest import tiny_model

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def picture(i: int, size: int) -> np.ndarray:
    img = np.zeros((size, size, 3), dtype=np.uint8)
    img[..., 0] = np.arange(size) * 255 // (size - 1)  # red grows along each row, left to right
    img[..., 1] = (7 * i + 40) % 256
    img[:3, :2, 2] = 255  # the mark: top-left, 3 rows tall, 2 columns wide
    img[-1, -1, 2] = i
    return img


def planes(img: np.ndarray, order: str) -> bytes:
    """The red, green and blue planes one after another, each row-major (C) or column-major (F)."""
    return b"".join(img[:, :, c].ravel(order=order).tobytes() for c in range(3))


def write_cifar10(root, n_per_batch=4, n_test=6, names=True):
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    images, labels = {}, {}
    files = {f"data_batch_{b}.bin": ("train", b - 1) for b in range(1, 6)} | {"test_batch.bin": ("test", 0)}
    for file, (split, b) in files.items():
        n = n_test if split == "test" else n_per_batch
        ids = [100 + i if split == "test" else b * n_per_batch + i for i in range(n)]
        blob = b"".join(bytes([i % 10]) + planes(picture(i, 32), "C") for i in ids)
        (folder / file).write_bytes(blob)
        images.setdefault(split, []).extend(picture(i, 32) for i in ids)
        labels.setdefault(split, []).extend(i % 10 for i in ids)
    if names:
        (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    return folder, {s: np.stack(v) for s, v in images.items()}, {s: np.array(v) for s, v in labels.items()}


def write_stl10(root, n_train=10, n_test=4, n_unlabeled=12):
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        ids = [i + {"train": 0, "test": 50, "unlabeled": 100}[split] for i in range(n)]
        (folder / f"{split}_X.bin").write_bytes(b"".join(planes(picture(i, 96), "F") for i in ids))
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes(bytes(i % 10 + 1 for i in ids))
        images[split] = np.stack([picture(i, 96) for i in ids])
    (folder / "class_names.txt").write_text("\n".join(f"class{k}" for k in range(10)) + "\n")
    return folder, images


def idx_bytes(array: np.ndarray, magic=None) -> bytes:
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(root, folder_name="mnist", gz=True, n_train=10, n_test=5):
    folder = root / folder_name
    folder.mkdir(parents=True)
    out = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        grey = np.stack([picture(i, 28)[..., 0] for i in range(n)])
        grey[:, :3, :2] = 255
        labels = np.arange(n) % 10
        for kind, arr in (("images-idx3", grey), ("labels-idx1", labels)):
            blob = idx_bytes(arr)
            name = f"{stem}-{kind}-ubyte"
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(blob) if gz else blob)
        out["train" if stem == "train" else "test"] = (grey[..., None], labels)
    return folder, out


def holdout(n):
    """The documented rule: val = the last 10% of default_rng(0).permutation(n), sorted."""
    perm = np.random.default_rng(0).permutation(n)
    k = round(n / 10)
    return np.sort(perm[: n - k]), np.sort(perm[n - k:])


# ---- good files: pixels, orientation, labels, class names, splits ----

def test_cifar10_reads_every_pixel_upright_in_rgb_order_with_labels_and_names(tmp_path):
    _, images, labels = write_cifar10(tmp_path)
    test = data.load_dataset("cifar10", "test", root=tmp_path)
    assert test.images.dtype == np.uint8 and test.images.shape == (6, 32, 32, 3) and test.labels.dtype == np.int64
    np.testing.assert_array_equal(test.images, images["test"])
    np.testing.assert_array_equal(test.labels, labels["test"])
    assert test.class_names == CIFAR10_NAMES
    first = test.images[0]
    assert first[0, 0, 2] == 255 and first[0, -1, 2] == 0 and first[-1, 0, 2] == 0  # mark top-left only
    assert first[5, 0, 0] == 0 and first[5, -1, 0] == 255  # red grows left to right


def test_train_and_val_are_the_documented_hold_out_of_the_official_training_split(tmp_path):
    _, images, labels = write_cifar10(tmp_path)
    train = data.load_dataset("cifar10", "train", root=tmp_path)
    val = data.load_dataset("cifar10", "val", root=tmp_path)
    t_idx, v_idx = holdout(20)
    assert (len(train), len(val)) == (18, 2)
    np.testing.assert_array_equal(train.images, images["train"][t_idx])
    np.testing.assert_array_equal(val.images, images["train"][v_idx])
    np.testing.assert_array_equal(val.labels, labels["train"][v_idx])
    np.testing.assert_array_equal(data.load_dataset("cifar10", "val", root=tmp_path).images, val.images)  # stable
    n = 50_000
    parts = [data.holdout_indices(n, s) for s in ("train", "val")]
    assert [len(p) for p in parts] == [45_000, 5_000] and len(np.unique(np.concatenate(parts))) == n


def test_limit_resolution_and_channels_behave_as_for_embedded_sets(tmp_path):
    _, images, _ = write_cifar10(tmp_path)
    ds = data.load_dataset("cifar10", "test", resolution=16, limit=3, channels=1, root=tmp_path)
    assert ds.images.shape == (3, 16, 16, 1)
    ids = [data.load_dataset("cifar10", "test", limit=3, root=tmp_path).images[k, -1, -1, 2] for k in range(3)]
    chosen = images["test"][np.array(ids) - 100]
    np.testing.assert_array_equal(ds.images, data.to_channels(data.resize(chosen, 16, 16), 1))


def test_the_data_root_is_the_argument_then_the_environment_then_the_repository(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "env")
    monkeypatch.setenv("IGPT_LITE_DATA", str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env" and data.data_root(tmp_path) == tmp_path
    assert len(data.load_dataset("cifar10", "test")) == 6
    monkeypatch.delenv("IGPT_LITE_DATA")
    assert data.data_root() == data.DEFAULT_ROOT and data.DEFAULT_ROOT.parts[-2:] == ("data", "datasets")


def test_cifar100_fine_labels_by_default_and_coarse_ones_by_name(tmp_path):
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    ids = list(range(7))
    coarse, fine = [i % 20 for i in ids], [(i * 13) % 100 for i in ids]
    for file in ("train.bin", "test.bin"):
        (folder / file).write_bytes(b"".join(bytes([c, f]) + planes(picture(i, 32), "C")
                                             for i, c, f in zip(ids, coarse, fine)))
    (folder / "fine_label_names.txt").write_text("\n".join(f"fine{k}" for k in range(100)))
    (folder / "coarse_label_names.txt").write_text("\n".join(f"coarse{k}" for k in range(20)))
    ds = data.load_dataset("cifar100", "test", root=tmp_path)
    np.testing.assert_array_equal(ds.images, np.stack([picture(i, 32) for i in ids]))
    assert ds.labels.tolist() == fine and ds.class_names[13] == "fine13" and len(ds.class_names) == 100
    c = data.load_dataset("cifar100-coarse", "test", root=tmp_path)
    assert c.labels.tolist() == coarse and c.class_names == [f"coarse{k}" for k in range(20)]
    np.testing.assert_array_equal(c.images, ds.images)


def test_stl10_reads_column_major_planes_untransposed_and_labels_from_zero(tmp_path):
    _, images = write_stl10(tmp_path)
    test = data.load_dataset("stl10", "test", root=tmp_path)
    np.testing.assert_array_equal(test.images, images["test"])
    assert test.labels.tolist() == [(50 + i) % 10 for i in range(4)]  # the file's 1..10 as 0..9
    assert test.class_names == [f"class{k}" for k in range(10)] and data.NATIVE_RESOLUTION["stl10"] == 96
    t_idx, v_idx = holdout(10)
    np.testing.assert_array_equal(data.load_dataset("stl10", "val", root=tmp_path).images, images["train"][v_idx])


def test_stl10_unlabeled_is_memory_mapped_and_a_limit_reads_only_its_rows(tmp_path):
    _, images = write_stl10(tmp_path)
    ds = data.load_dataset("stl10", "unlabeled", root=tmp_path)
    assert isinstance(ds.images, np.memmap) and ds.images.shape == (12, 96, 96, 3)
    np.testing.assert_array_equal(ds.images, images["unlabeled"])
    assert (ds.labels == -1).all()
    few = data.load_dataset("stl10", "unlabeled", limit=3, root=tmp_path)
    assert not isinstance(few.images, np.memmap) and few.images.nbytes == 3 * 96 * 96 * 3
    ids = few.images[:, -1, -1, 2].astype(int) - 100
    assert len(set(ids)) == 3 and list(ids) == sorted(ids)
    np.testing.assert_array_equal(few.images, images["unlabeled"][ids])
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_dataset("cifar10", "unlabeled", root=tmp_path)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_gzipped_or_not(tmp_path, gz):
    _, expected = write_idx(tmp_path, "fashion-mnist", gz=gz)
    test = data.load_dataset("fashion-mnist", "test", root=tmp_path)
    np.testing.assert_array_equal(test.images, expected["test"][0])
    np.testing.assert_array_equal(test.labels, expected["test"][1])
    assert test.images.shape == (5, 28, 28, 1) and test.class_names[9] == "Ankle boot"
    assert test.images[0, 0, 1, 0] == 255 and test.images[0, 0, 2, 0] != 255  # the mark is 2 columns wide
    t_idx, _ = holdout(10)
    np.testing.assert_array_equal(data.load_dataset("fashion-mnist", "train", root=tmp_path).images,
                                  expected["train"][0][t_idx])


def test_mnist_idx_is_not_the_embedded_mnist(tmp_path):
    write_idx(tmp_path, "mnist")
    assert len(data.load_dataset("mnist-idx", "test", root=tmp_path)) == 5
    assert len(data.load_dataset("mnist", "test")) == 500  # the embedded 5,000-image sample, 80/10/10


def write_folder(root, grey_class=False):
    folder = root / "pics"
    expected = {}
    for name, ids in (("zebra", [1, 2, 3, 6, 7, 8, 9]), ("ant", [4, 5, 10])):
        (folder / name).mkdir(parents=True)
        for i in ids:
            img = picture(i, 32)
            Image.fromarray(img[..., 0] if grey_class else img).save(folder / name / f"{i}.png")
            expected[i] = img[..., :1] if grey_class else img
    (folder / "ant" / ".DS_Store").write_bytes(b"\0")
    return folder, expected


def test_folder_dataset_one_sub_folder_per_class(tmp_path):
    folder, expected = write_folder(tmp_path)
    name = data.check_dataset_name(f"folder:{folder}")
    parts = [data.load_dataset(name, s) for s in data.SPLITS]
    assert [len(p) for p in parts] == [8, 1, 1]
    assert parts[0].class_names == ["ant", "zebra"]
    for ds in parts:
        for img, label in zip(ds.images, ds.labels):
            i = int(img[-1, -1, 2])
            np.testing.assert_array_equal(img, expected[i])
            assert label == (0 if i in (4, 5, 10) else 1)
    assert data.load_dataset(name, "train", resolution=8).images.shape[1:] == (8, 8, 3)
    grey, _ = write_folder(tmp_path / "g", grey_class=True)
    assert data.load_dataset(f"folder:{grey}", "train").images.shape[-1] == 1  # every file grey: one channel
    (folder / "ant" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="notes.txt: not an image file"):
        data.load_dataset(name, "train")
    few, _ = write_folder(tmp_path / "few")
    (few / "zebra" / "9.png").unlink()
    with pytest.raises(ValueError, match="pics: 9 images; a folder dataset needs at least 10"):
        data.load_dataset(f"folder:{few}", "test")


def test_folder_names_are_made_absolute_and_checkpoints_find_real_datasets_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert data.check_dataset_name("folder:pics") == f"folder:{tmp_path / 'pics'}"
    ck = Checkpoint(model=tiny_model(), palette=None, meta={"dataset": "cifar10"})
    assert ck.dataset_name() == "cifar10" and ck.dataset_name("folder:pics") == f"folder:{tmp_path / 'pics'}"
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; available: .*cifar10.*or folder:PATH"):
        data.check_dataset_name("cifar")


# ---- refused and broken files: an error naming the file and what is wrong ----

def test_the_cifar_python_version_is_refused_without_unpickling(tmp_path, monkeypatch):
    py = tmp_path / "cifar-10-batches-py"
    py.mkdir()
    (py / "data_batch_1").write_bytes(pickle.dumps({"data": [1]}))

    def no(*a, **k):
        raise AssertionError("unpickled")
    monkeypatch.setattr(pickle, "load", no)
    monkeypatch.setattr(pickle, "loads", no)
    with pytest.raises(ValueError, match=r"cifar-10-batches-py: this is the CIFAR \"python version\" \(pickle files\), "
                                         r"which igpt-lite refuses .* binary version, which extracts to "
                                         r"cifar-10-batches-bin/: igpt-lite data download cifar10"):
        data.load_dataset("cifar10", "test", root=tmp_path)


def test_a_missing_dataset_names_the_folder_the_readme_and_the_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'stl10_binary'}: no such folder; it should hold the "
                                                r"files of stl10_binary.tar.gz .*data/README.md.*igpt-lite data "
                                                "download stl10"):
        data.load_dataset("stl10", "train", root=tmp_path)


def _cut(path, n):
    path.write_bytes(path.read_bytes()[:-n])


def _cifar_broken(kind, root):
    folder, _, _ = write_cifar10(root)
    if kind == "truncated":
        _cut(folder / "data_batch_3.bin", 100)
    elif kind == "short batch":
        _cut(folder / "data_batch_2.bin", 3073)
    elif kind == "label":
        blob = bytearray((folder / "data_batch_5.bin").read_bytes())
        blob[2 * 3073] = 11
        (folder / "data_batch_5.bin").write_bytes(bytes(blob))
    elif kind == "missing":
        (folder / "data_batch_4.bin").unlink()
    elif kind == "empty":
        (folder / "data_batch_1.bin").write_bytes(b"")
    elif kind == "names":
        (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES[:9]))
    return "cifar10"


def _stl_broken(kind, root):
    folder, _ = write_stl10(root)
    if kind == "truncated":
        _cut(folder / "train_X.bin", 5)
    else:  # one label lost
        _cut(folder / "test_y.bin", 1)
    return "stl10"


def _idx_broken(kind, root):
    folder, _ = write_idx(root, gz=kind == "gz cut")
    train_images = folder / "train-images-idx3-ubyte"
    if kind == "gz cut":
        _cut(folder / "train-images-idx3-ubyte.gz", 40)
    elif kind == "magic":
        train_images.write_bytes(idx_bytes(np.zeros((10, 28, 28)), magic=0x0801))
    elif kind == "dims":
        train_images.write_bytes(idx_bytes(np.zeros((10, 27, 28))))
    elif kind == "truncated":
        _cut(train_images, 28)
    elif kind == "count":
        (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(9)))
    return "mnist-idx"


BROKEN = [
    (_cifar_broken, "truncated", ValueError, "data_batch_3.bin: 12,192 bytes is not a whole number of 3,073-byte "
                                             "records; the file is truncated — download it again \\(igpt-lite data "
                                             "download cifar10; see data/README.md\\)"),
    (_cifar_broken, "short batch", ValueError, "data_batch_2.bin: 3 records where data_batch_1.bin has 4; the file is "
                                               "truncated"),
    (_cifar_broken, "label", ValueError, "data_batch_5.bin: record 2 has label 11, but labels here run from 0 to 9; "
                                         "the file is corrupt"),
    (_cifar_broken, "missing", FileNotFoundError, "cifar-10-batches-bin/data_batch_4.bin: missing; download it again"),
    (_cifar_broken, "empty", ValueError, "data_batch_1.bin: the file is empty"),
    (_cifar_broken, "names", ValueError, "batches.meta.txt: 9 class names, where there are 10 classes"),
    (_stl_broken, "truncated", ValueError, "train_X.bin: 276,475 bytes is not a whole number of 27,648-byte records"),
    (_stl_broken, "count", ValueError, "test_y.bin: 3 labels for the 4 images of test_X.bin; one of the two is "
                                       "truncated"),
    (_idx_broken, "gz cut", ValueError, "train-images-idx3-ubyte.gz: the gzip stream ends early; the file is "
                                        "truncated — download it again \\(igpt-lite data download mnist-idx"),
    (_idx_broken, "magic", ValueError, "train-images-idx3-ubyte: magic number 0x00000801, where an IDX file of "
                                       "unsigned bytes in 3 dimensions starts with 0x00000803; not the images file"),
    (_idx_broken, "dims", ValueError, "train-images-idx3-ubyte: images of 27×28 pixels, where mnist-idx images are "
                                      "28×28"),
    (_idx_broken, "truncated", ValueError, "train-images-idx3-ubyte: 7,828 bytes where its header \\(10×28×28\\) "
                                           "needs 7,856; the file is truncated"),
    (_idx_broken, "count", ValueError, "train-labels-idx1-ubyte: 9 labels for the 10 images of "
                                       "train-images-idx3-ubyte; the two files do not belong together"),
]


@pytest.mark.parametrize("make,kind,error,message", BROKEN, ids=[f"{m.__name__[1:-7]}-{k}" for m, k, *_ in BROKEN])
def test_broken_files_are_errors_naming_the_file_and_what_is_wrong(tmp_path, make, kind, error, message):
    name = make(kind, tmp_path)
    with pytest.raises(error, match=message):
        data.load_dataset(name, "val" if kind != "count" or name != "stl10" else "test", root=tmp_path)
    status = {s.name: s for s in data.check_datasets(tmp_path)}[name]
    assert status.status == "broken" and status.counts == {}
    assert re.search(message, status.problem)


# ---- data check: library and CLI ----

def test_check_datasets_reports_counts_notes_and_problems(tmp_path):
    write_cifar10(tmp_path)
    _stl_broken("count", tmp_path)
    got = {s.name: s for s in data.check_datasets(tmp_path)}
    assert list(got) == ["cifar10", "cifar100", "cifar100-coarse", "stl10", "mnist-idx", "fashion-mnist"]
    ok = got["cifar10"]
    assert ok.status == "ok" and ok.counts == {"train": 18, "val": 2, "test": 6} and ok.problem is None
    assert ok.notes == ["the train files hold 20 images; the official archive's hold 50,000",
                        "the test files hold 6 images; the official archive's hold 10,000"]
    assert got["stl10"].status == "broken" and "test_y.bin: 3 labels" in got["stl10"].problem
    assert got["mnist-idx"].status == "missing" and str(tmp_path / "mnist") in got["mnist-idx"].problem


def test_cli_data_check_text_and_json(tmp_path, capsys):
    write_cifar10(tmp_path)
    _stl_broken("count", tmp_path)
    assert main(["data", "check", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"root: {tmp_path}"
    assert lines[1].split() == ["cifar10", "ok", "train", "18,", "val", "2,", "test", "6"]
    stl = next(i for i, line in enumerate(lines) if line.startswith("stl10"))
    assert lines[stl].split()[:2] == ["stl10", "broken"] and lines[stl + 1].strip().startswith("test_y.bin: 3 labels")
    assert any(line.split()[:2] == ["fashion-mnist", "missing"] for line in lines)
    assert main(["data", "check", "--root", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["root"] == str(tmp_path)
    rows = {r["name"]: r for r in out["datasets"]}
    assert rows["cifar10"]["counts"] == {"train": 18, "val": 2, "test": 6} and rows["cifar10"]["status"] == "ok"
    assert rows["stl10"]["status"] == "broken" and rows["cifar100"]["status"] == "missing"


def test_cli_refuses_an_unknown_dataset_and_reports_a_missing_one(tmp_path, capsys):
    assert main(["palette", "--data", "cifar", "--out", str(tmp_path / "p.json")]) == 2
    assert "argument --data: unknown dataset 'cifar'; available:" in capsys.readouterr().err
    assert main(["palette", "--data", "cifar10", "--root", str(tmp_path), "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"igpt-lite palette: error: {tmp_path / 'cifar-10-batches-bin'}: no such folder")
    assert not (tmp_path / "p.json").exists()


def test_cli_trains_on_cifar10_files_then_probes_and_bias_tests_the_result(tmp_path, capsys, monkeypatch):
    write_cifar10(tmp_path / "datasets")
    assert main(["train", "--data", "cifar10", "--root", str(tmp_path / "datasets"), "--preset", "tiny",
                 "--resolution", "8", "--colors", "4", "--steps", "2", "--batch-size", "4", "--eval-every", "2",
                 "--out", str(tmp_path / "run"), "--json"]) == 0
    tr = json.loads(capsys.readouterr().out)
    assert tr["dataset"] == "cifar10" and tr["out"].endswith("step-000002") and len(tr["history"]) == 1
    monkeypatch.setenv("IGPT_LITE_DATA", str(tmp_path / "datasets"))  # the model finds its data again by name
    assert main(["probe", "--model", str(tmp_path / "run"), "--layers", "1", "--C", "1", "--json"]) == 0
    pr = json.loads(capsys.readouterr().out)
    assert pr["dataset"] == "cifar10" and pr["resolution"] == 8
    trained = [r for r in pr["table"] if r["kind"] == "trained"]
    assert [r["layer"] for r in trained] == ["blocks.1"] and 0 <= trained[0]["test_acc"] <= 1
    # and the bias tests run on it: four folders of CIFAR-shaped images as X, Y, A, B
    from PIL import Image

    _, images, _ = write_cifar10(tmp_path / "sets-source", n_per_batch=1, n_test=16)
    for k, name in enumerate("XYAB"):
        (tmp_path / name).mkdir()
        for i, image in enumerate(images["test"][4 * k : 4 * k + 4]):
            Image.fromarray(image).save(tmp_path / name / f"{i}.png")
    assert main(["bias", "--model", str(tmp_path / "run"), *(f"--{k.lower()}={tmp_path / k}" for k in "XYAB"),
                 "--permutations", "100", "--no-baseline", "--json"]) == 0
    bi = json.loads(capsys.readouterr().out)
    rows = bi["table"]
    assert rows and all(0 < r["p_value"] <= r["p_holm"] <= 1 for r in rows)
