"""Image files and folders as model inputs: the one reader (`read_image`: a path, or an upload's
bytes), square crop and resize, colour conversion, a folder's images as one set, and folder datasets
(one sub-folder of images per class). Every other reader here and the app go through `read_image`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a uint8 N×H×W×C stack with area averaging (PIL BOX) down, bicubic up."""
    n, h, w, c = images.shape
    if (h, w) == (height, width):
        return images
    method = Image.BOX if height <= h and width <= w else Image.BICUBIC
    out = np.empty((n, height, width, c), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if c == 1 else img)
        out[i] = np.asarray(pil.resize((width, height), method)).reshape(height, width, c)
    return out


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 N×H×W×C with C converted to `channels`: grey repeated to RGB, or RGB to grey with
    PIL's ITU-R 601 luma (L = 0.299 R + 0.587 G + 0.114 B), as read_image converts files."""
    c = images.shape[-1]
    if c == channels:
        return images
    if channels == 3 and c == 1:
        return images.repeat(3, -1)
    if channels == 1 and c == 3:
        luma = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.rint(luma).clip(0, 255).astype(np.uint8)[..., None]
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


# ---- image files: the one reader ----

MAX_IMAGE_PIXELS = 50_000_000  # set on purpose: a few-KB PNG can claim 30,000 × 30,000 pixels (a decompression bomb)
MODES = {1: "L", 3: "RGB"}


class OverBudget(ValueError):
    """More pixels than a `PixelBudget` allows."""


class PixelBudget:
    """A cap on the pixels decoded for one upload or set of files, not only per image: 3,200 images
    of 49 MP each pass the per-image check one by one. Each image's pixels are taken from it before
    the image is decoded; the first that does not fit is refused, naming it."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def take(self, pixels: int, name: str) -> None:
        if self.used + pixels > self.limit:
            raise OverBudget(f"{name}: the images hold more than {self.limit:,} pixels in all (the cap on one upload); "
                             "the model sees each at a few dozen pixels a side: downscale them or send fewer")
        self.used += pixels


def source_name(source) -> str:
    return str(getattr(source, "name", None) or source)


def _open_image(source, channels: int, background: tuple[int, int, int] = (255, 255, 255),
                budget: PixelBudget | None = None) -> tuple[np.ndarray, str]:
    """(uint8 H×W×channels, the file's own PIL mode)."""
    from PIL import ImageOps, UnidentifiedImageError

    if channels not in MODES:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    name = str(source) if isinstance(source, (str, os.PathLike)) else source_name(source)  # a path whole
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        with Image.open(source) as img:
            mode = img.mode
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{name}: {img.width}×{img.height} pixels is more than this reader accepts "
                                 f"({MAX_IMAGE_PIXELS:,}); downscale it first (the model sees it at a few dozen pixels)")
            if budget is not None:  # before a pixel is decoded
                budget.take(img.width * img.height, name)
            img = ImageOps.exif_transpose(img)  # phones store the camera's orientation in EXIF
            img.load()
            if mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / 32-bit grey: scale, do not clip
                a = np.asarray(img, dtype=np.float64)
                top = 1.0 if mode == "F" and a.max() <= 1.0 else 255.0 if a.max() <= 255 else 65535.0
                img = Image.fromarray(np.rint(np.clip(a / top, 0, 1) * 255).astype(np.uint8), "L")
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.new("RGBA", rgba.size, (*background, 255))
                img.alpha_composite(rgba)
            pixels = np.asarray(img.convert(MODES[channels]))
    except FileNotFoundError:  # an OSError too: said apart, not as "truncated or corrupt"
        raise FileNotFoundError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{name}: a folder, not an image file") from None
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not an image file PIL can read (png, jpg, webp, gif, bmp, ...)") from None
    except Image.DecompressionBombError as e:  # PIL's own check, at twice its limit
        raise ValueError(f"{name}: refused as a possible decompression bomb ({e}); downscale it first (the model "
                         "sees it at a few dozen pixels)") from None
    except (OSError, SyntaxError) as e:  # truncated or corrupt data
        raise ValueError(f"{name}: the image data is truncated or corrupt ({e}); re-save or re-download it") from None
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels), mode


def read_image(source, channels: int = 3, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """An image file (a path or a binary file object, e.g. an upload) as uint8 H×W×channels.

    EXIF orientation is applied; 16-bit and float grey images are scaled to 0–255 (not clipped);
    transparency is composited over `background` (white); colour is converted to grey (PIL's
    ITU-R 601 luma) or RGB as `channels` says. Files that are not images, truncated files and
    images of more than MAX_IMAGE_PIXELS pixels raise ValueError naming the file.

    Example::

        img = read_image("photo.jpg", channels=3)       # uint8 H×W×3, EXIF-rotated
        small = prepare_image(img, 32)                 # centre square crop, resized to 32×32
    """
    return _open_image(source, channels, background)[0]


def prepare_image(image: np.ndarray, resolution: int, crop: str = "center") -> np.ndarray:
    """One uint8 H×W[×C] array -> resolution×resolution×C: square crop (the centre, or the top-left
    as iEAT does), then resize (area average down, bicubic up)."""
    if crop not in ("center", "top-left"):
        raise ValueError(f"crop must be 'center' or 'top-left', got {crop!r}")
    img = image if image.ndim == 3 else image[..., None]
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = ((h - s) // 2, (w - s) // 2) if crop == "center" else (0, 0)
    return resize(img[None, top : top + s, left : left + s], resolution, resolution)[0]


def load_image(source, resolution: int, channels: int, crop: str = "center") -> np.ndarray:
    """An image file as a model input, uint8 resolution×resolution×channels: `read_image`, then
    `prepare_image` (square crop, resize)."""
    return prepare_image(read_image(source, channels), resolution, crop)


MIN_FOLDER_IMAGES = 2  # a "set" of one image is one exemplar, and a spread of scores needs two


@dataclass
class ImageFolder:
    """A folder's images, ready for a model: uint8 N×R×R×C."""

    path: Path
    images: np.ndarray
    files: list[Path]
    modes: dict[str, int] = field(default_factory=dict)  # PIL colour mode -> count, before conversion

    def conversion_note(self, channels: int) -> str | None:
        """A line saying which images were converted to the model's colour mode, or None."""
        target = MODES[channels]
        other = {m: c for m, c in self.modes.items() if m != target}
        if not other:
            return None
        what = ", ".join(f"{c} {m}" for m, c in sorted(other.items()))
        return (f"{self.path}: {sum(other.values())} of {len(self.files)} images converted to {target} "
                f"(the model's palette has {channels} channel{'s' if channels > 1 else ''}): {what}")


def load_image_files(sources, resolution: int, channels: int, crop: str = "center", *, name: str = "set",
                     min_images: int = MIN_FOLDER_IMAGES, remove_hint: str = "remove it from the set",
                     budget: PixelBudget | None = None) -> ImageFolder:
    """Several image files as one set of model inputs: each source (a path, or a binary file object
    with a .name, e.g. an upload or a zip member) through `read_image`, then `prepare_image`.
    `name` says what the set is in messages and becomes the result's `path`. A file that is not an
    image is an error naming it (nothing is silently left out), and so is a set of fewer than
    `min_images` images. budget: a `PixelBudget` the images' pixels are taken from (an upload's cap)."""
    images, files, modes = [], [], {}
    for source in sources:
        try:
            pixels, mode = _open_image(source, channels, budget=budget)
        except ValueError as e:
            if isinstance(e, OverBudget):  # not this file's fault: the set as a whole is too big
                raise
            raise ValueError(f"{e}; {remove_hint}") from None
        modes[mode] = modes.get(mode, 0) + 1
        images.append(prepare_image(pixels, resolution, crop))
        files.append(Path(source_name(source)))
    if len(images) < min_images:
        raise ValueError(f"{name}: holds {len(images)} image{'' if len(images) == 1 else 's'}, at least {min_images} "
                         "are needed: one image is one exemplar, not a set, and the effect size needs a spread of scores")
    return ImageFolder(path=Path(name), images=np.stack(images), files=files, modes=modes)


def load_image_folder(path, resolution: int, channels: int, crop: str = "center",
                      min_images: int = MIN_FOLDER_IMAGES) -> ImageFolder:
    """Every image file directly in `path` (any format PIL reads, any size) through `load_image`.
    Hidden files (.DS_Store, ...) and sub-folders are skipped; any other file that is not an image
    is an error, so nothing is silently left out."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        subfolders = [d.name for d in path.iterdir() if d.is_dir()]
        hint = f" (sub-folders such as {subfolders[0]}/ are not searched)" if subfolders else ""
        raise ValueError(f"{path}: the folder holds no image files{hint}")
    folder = load_image_files(files, resolution, channels, crop, name=str(path), min_images=min_images,
                              remove_hint="remove it from the folder")
    folder.path = path
    return folder


# ---- folder datasets (folder:PATH): one sub-folder of images per class ----

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
MIN_FOLDER_DATASET = 10  # the fewest images whose 80/10/10 split leaves no split empty


@lru_cache(maxsize=2)
def _read_classes(path: str, resolution: int, stamp: tuple) -> tuple:
    folder = Path(path)
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder}: no sub-folders; a folder dataset holds one sub-folder of images per class")
    parts = [load_image_folder(folder / c, resolution, 3, min_images=1) for c in classes]
    images = np.concatenate([p.images for p in parts])
    if all(set(p.modes) <= GREY_MODES for p in parts):  # every file grey: keep one channel
        images = images[..., :1]
    if len(images) < MIN_FOLDER_DATASET:
        raise ValueError(f"{folder}: {len(images)} image{'s' if len(images) != 1 else ''}; a folder dataset needs at "
                         f"least {MIN_FOLDER_DATASET} so that its 80/10/10 train/val/test split leaves none empty")
    labels = np.concatenate([np.full(len(p.images), i, dtype=np.int64) for i, p in enumerate(parts)])
    return images, labels, classes


def image_classes(path: str, resolution: int) -> tuple:
    """(images, labels, class names) of a folder with one sub-folder per class (names sorted), each
    image centre-cropped and resized; grey when every file is grey, else RGB. Cached per folder
    state (a file added or removed changes its sub-folder's time stamp)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (a folder dataset, folder:PATH, holds one sub-folder of "
                                "images per class)")
    stamp = tuple((d.name, d.stat().st_mtime_ns) for d in sorted(folder.iterdir()) if d.is_dir())
    return _read_classes(str(folder.resolve()), resolution, (folder.stat().st_mtime_ns, stamp))

