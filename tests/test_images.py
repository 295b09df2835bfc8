"""data.read_image: the one reader of image files and uploads (the CLI, the bias folders and the app use it)."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from igpt_lite import data


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(16, dtype=np.uint16)[None].repeat(4, 0) * 4369)  # 0 .. 65535 in 16 steps
    Image.fromarray(ramp).save(tmp_path / "deep.png")  # PIL writes a 16-bit greyscale PNG
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode in ("I;16", "I")
    out = data.read_image(tmp_path / "deep.png", channels=1)
    np.testing.assert_array_equal(out[..., 0], np.rint(ramp / 65535 * 255).astype(np.uint8))


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 6, 3), dtype=np.uint8)
    pixels[0, 0] = 255  # a white top-left corner in the stored image
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation 6: the viewer rotates the stored image 90° clockwise
    img.save(tmp_path / "phone.png", exif=exif)
    out = data.read_image(tmp_path / "phone.png")
    expected = np.rot90(pixels, k=-1)  # 90° clockwise: the stored top-left lands top-right
    assert out.shape == (6, 4, 3)
    np.testing.assert_array_equal(out, expected)


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent: white
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black: mid grey
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = data.read_image(tmp_path / "a.png").astype(int)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 1]) == (255, 255, 255)
    assert abs(out[1, 0] - 127).max() <= 1


def test_uploads_are_read_from_file_objects_and_named_in_errors():
    upload = io.BytesIO(_png_bytes(Image.fromarray(np.full((3, 5), 200, np.uint8))))
    upload.name = "digit.png"
    assert data.read_image(upload, channels=1).shape == (3, 5, 1)
    assert data.read_image(upload, channels=3).shape == (3, 5, 3)  # readable twice: rewound
    empty = io.BytesIO(b"")
    empty.name = "empty.png"
    with pytest.raises(ValueError, match="empty.png: not an image file"):
        data.read_image(empty)


def test_truncated_files_are_refused_with_the_file_named(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = _png_bytes(Image.fromarray(noise))
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="cut.png: the image data is truncated or corrupt"):
        data.read_image(tmp_path / "cut.png")
    jpeg = _png_bytes(Image.fromarray(noise), "JPEG")
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(ValueError, match="cut.jpg: the image data is truncated or corrupt"):
        data.load_image(tmp_path / "cut.jpg", 8, 3)


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width×height 1-bit pixels, all zero, in a few KB."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.mark.slow
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = _bomb_png(30_000, 30_000)
    assert len(bomb) < 200_000  # a few KB claiming 900 million pixels
    (tmp_path / "bomb.png").write_bytes(bomb)
    with pytest.raises(ValueError, match="bomb.png: .*downscale it first"):
        data.read_image(tmp_path / "bomb.png")
    big = _bomb_png(8_000, 8_000)  # under PIL's own limit, over ours: refused from the header alone
    (tmp_path / "big.png").write_bytes(big)
    with pytest.raises(ValueError, match="big.png: 8000×8000 pixels is more than this reader accepts"):
        data.read_image(tmp_path / "big.png")


def test_to_channels_matches_pil_conversion(rng):
    rgb = rng.integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    grey = data.to_channels(rgb, 1)
    for img, g in zip(rgb, grey):
        np.testing.assert_allclose(np.asarray(Image.fromarray(img).convert("L")), g[..., 0], atol=1)
    np.testing.assert_array_equal(data.to_channels(grey, 3), grey.repeat(3, -1))
    assert data.load_dataset("shapes", "test", limit=4, channels=1).images.shape == (4, 16, 16, 1)


@pytest.mark.slow
def test_scenes_register_nothing_on_import_and_data_serves_them():
    import importlib

    from igpt_lite.data import scenes

    before = set(data.dataset_names())
    importlib.reload(scenes)
    assert set(data.dataset_names()) == before  # drawing scenes registers no dataset
    assert {"figures-p50", "figures-p90"} <= before  # data.py serves the bias experiment's two rates
    ds = data.load_dataset("figures-p90", "test", limit=6)
    assert ds.images.shape == (6, 32, 32, 3) and ds.class_names == scenes.CLASS_NAMES
