"""Colour palette: k-means centres in [-1, 1]; images <-> raster-order token sequences.

As in the paper (and the official code): pixels are normalised with x / 127.5 - 1, each pixel is
mapped to the nearest centre by squared Euclidean distance, and a centre decodes to
rint(127.5 * (c + 1)).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


def as_nhwc(images: np.ndarray) -> np.ndarray:
    """uint8 images as N×H×W×C (a grayscale N×H×W stack gets C = 1)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected images shaped N×H×W (grayscale) or N×H×W×C with C in (1, 3), got {images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels (0-255), got {images.dtype}: convert with .astype(np.uint8)")
    return images


CENTER_SLACK = 0.01  # k-means in float32 lands a little outside (-1.0002 seen); further out is no colour


@dataclass(frozen=True, eq=False)
class Palette:
    """k colour centres (k × C float32, C = 1 grey or 3 RGB) in [-1, 1].

    Example::

        palette = Palette.fit(train.images, 16)
        tokens = palette.encode(images)                # uint8 N×H×W×C -> long N×(H·W)
        back = palette.decode(tokens, 28, 28)
    """

    centers: np.ndarray

    def __post_init__(self):
        try:
            c = np.asarray(self.centers, dtype=np.float32)
        except (ValueError, TypeError) as e:  # ragged rows, strings
            raise ValueError(f"palette centres must be a k×1 or k×3 table of numbers ({e})") from None
        if c.ndim != 2 or c.shape[1] not in (1, 3) or len(c) < 2:
            raise ValueError(f"palette centres must be k×1 or k×3 with k >= 2, got shape {c.shape}")
        # a NaN centre is nobody's nearest colour and decodes to garbage; pixels map into [-1, 1]
        bad = np.flatnonzero(~(np.abs(c) <= 1 + CENTER_SLACK).all(1))
        if len(bad):
            raise ValueError(f"palette centre {bad[0]} is {c[bad[0]].tolist()}: centres must be finite numbers in "
                             f"[-1, 1] (pixel / 127.5 - 1)")
        object.__setattr__(self, "centers", c)

    @property
    def n_colors(self) -> int:
        return len(self.centers)

    @property
    def channels(self) -> int:
        return self.centers.shape[1]

    @property
    def fingerprint(self) -> str:
        """A short hash of the centres: checkpoints record it to refuse a foreign palette."""
        return hashlib.sha256(self.centers.tobytes()).hexdigest()[:16]

    def __eq__(self, other) -> bool:
        return isinstance(other, Palette) and np.array_equal(self.centers, other.centers)

    @classmethod
    def fit(cls, images: np.ndarray, n_colors: int, *, sample: int = 100_000, seed: int = 0) -> "Palette":
        """k-means (scikit-learn) over a random sample of the images' pixels.

        Centres are sorted by brightness so that token ids read as dark-to-light.
        """
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        images = as_nhwc(images)
        pixels = images.reshape(-1, images.shape[-1])
        rng = np.random.default_rng(seed)
        if len(pixels) > sample:
            pixels = pixels[rng.choice(len(pixels), sample, replace=False)]
        x = pixels.astype(np.float32) / 127.5 - 1
        n_distinct = len(np.unique(pixels, axis=0))
        if n_distinct < n_colors:
            raise ValueError(
                f"the images have only {n_distinct} distinct colours, fewer than n_colors={n_colors}: "
                "choose a smaller palette"
            )
        # one BLAS thread: beside torch's OpenMP pool, OpenBLAS's spinning threads made this 2.5-7x
        # slower on 2 cores (16 colours: 1.5 s vs 0.2 s; 128: 2.2 s vs 0.9 s), as in probe.LinearProbe
        with threadpool_limits(1, user_api="blas"):
            km = KMeans(n_clusters=n_colors, n_init=1, random_state=seed).fit(x)
        centers = km.cluster_centers_.astype(np.float32)
        return cls(centers[np.argsort(centers.sum(1), kind="stable")])

    def encode(self, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """uint8 N×H×W[×C] -> long N×(H·W) tokens in raster order (nearest centre)."""
        images = as_nhwc(images)
        if images.shape[-1] != self.channels:
            raise ValueError(
                f"images have {images.shape[-1]} channel(s) but this palette has {self.channels}: "
                "convert the images (grey <-> RGB) or use a palette fitted on such images"
            )
        n = len(images)
        x = torch.from_numpy(images.reshape(n, -1, self.channels).astype(np.float32)) / 127.5 - 1
        c = torch.from_numpy(self.centers)
        out = torch.empty(x.shape[:2], dtype=torch.long)
        for i in range(0, n, batch_size):
            xb = x[i : i + batch_size]
            # ||x - c||^2 up to the per-pixel constant ||x||^2, which does not change the argmin
            d = (c * c).sum(1) - 2 * xb @ c.T
            out[i : i + batch_size] = d.argmin(-1)
        return out

    def decode(self, tokens: torch.Tensor | np.ndarray, height: int, width: int) -> np.ndarray:
        """long N×(H·W) tokens -> uint8 N×H×W×C."""
        t = torch.as_tensor(tokens).long().cpu().numpy()
        if t.ndim == 1:
            t = t[None]
        if t.shape[1] != height * width:
            raise ValueError(f"{t.shape[1]} tokens cannot form a {height}×{width} image")
        if t.size and (t.min() < 0 or t.max() >= self.n_colors):
            raise ValueError(f"token ids must lie in [0, {self.n_colors}) for this palette")
        rgb = np.rint(127.5 * (self.centers[t] + 1)).clip(0, 255).astype(np.uint8)
        return rgb.reshape(len(t), height, width, self.channels)

    def quantise(self, images: np.ndarray) -> np.ndarray:
        """The images in this palette's colours (encode -> decode): what the model sees. uint8 N×H×W×C."""
        images = as_nhwc(images)
        return self.decode(self.encode(images), images.shape[1], images.shape[2])

    def round_trip_error(self, images: np.ndarray, tokens=None) -> float:
        """Mean absolute error (0-255 scale) of encode -> decode over all pixels and channels.
        `tokens`: the images' encoding when already at hand (it is not recomputed)."""
        images = as_nhwc(images)
        quantised = self.quantise(images) if tokens is None else self.decode(tokens, images.shape[1], images.shape[2])
        return float(np.abs(quantised.astype(np.float32) - images.astype(np.float32)).mean())

    def token_entropy_bits(self, tokens: torch.Tensor) -> float:
        """Entropy of the token frequencies in bits: the unigram baseline for bits/dim."""
        counts = torch.bincount(torch.as_tensor(tokens).flatten(), minlength=self.n_colors).double()
        p = counts[counts > 0] / counts.sum()
        return float(-(p * p.log2()).sum())

    @property
    def colors(self) -> np.ndarray:
        """The centres as uint8 k×C colours (what a token decodes to)."""
        return np.rint(127.5 * (self.centers + 1)).clip(0, 255).astype(np.uint8)

    def report(self, images: np.ndarray) -> "PaletteReport":
        """How well this palette fits `images` (uint8 N×H×W×C): round-trip error, token entropy, usage."""
        images = as_nhwc(images)
        tokens = self.encode(images)
        counts = torch.bincount(tokens.flatten(), minlength=self.n_colors).numpy()
        return PaletteReport(n_colors=self.n_colors, channels=self.channels, fingerprint=self.fingerprint,
                             colors=self.colors, usage=counts / max(1, counts.sum()),
                             round_trip_error=self.round_trip_error(images),
                             token_entropy_bits=self.token_entropy_bits(tokens), n_images=len(images),
                             palette=self)

    def to_json(self) -> str:
        """The palette.json text (`save` writes it, `load` and `from_json` read it): the centres as
        float32 values, which read back bit for bit."""
        return json.dumps({"centers": self.centers.tolist()})

    @classmethod
    def from_json(cls, text: str) -> "Palette":
        return cls(np.asarray(json.loads(text)["centers"], dtype=np.float32))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Palette":
        path = Path(path)
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: palette file missing; a checkpoint folder needs its palette.json")
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a valid palette file ({e}); refit it with `igpt-lite palette`") from e


@dataclass
class PaletteReport:
    """A palette and how it fits a set of images (`Palette.report`)."""
    n_colors: int
    channels: int
    fingerprint: str
    colors: np.ndarray  # uint8 k×C
    usage: np.ndarray  # share of pixels mapped to each colour (sums to 1)
    round_trip_error: float  # mean |pixel - decode(encode(pixel))|, 0-255 scale
    token_entropy_bits: float  # bits/dim of a model that learned only colour frequencies
    n_images: int
    palette: Palette | None = field(default=None, repr=False)  # the palette reported on (to save or download)

    def to_dict(self) -> dict:
        out = {**vars(self), "colors": self.colors.tolist(), "usage": self.usage.tolist()}
        out.pop("palette")
        return out


def palette_sweep(train_images: np.ndarray, val_images: np.ndarray, ks=(2, 4, 8, 16, 32, 64), *,
                  seed: int = 0) -> list[PaletteReport]:
    """Fit a palette of each size k on `train_images`, report each on `val_images`: the round-trip
    error falls and the token entropy (the sequence's cost) rises as k grows."""
    return [Palette.fit(train_images, k, seed=seed).report(val_images) for k in ks]
