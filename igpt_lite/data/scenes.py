"""Generated "figures" scenes for a controlled bias experiment.

A scene is a pictogram person next to a prop. Men wear trousers and short hair, women a dress and
long hair; otherwise both draw from the same skin, hair and clothing colours, poses, sizes and
positions, so the silhouette is the only gender cue. Props are career ones (briefcase, laptop,
desk) or domestic ones (pram, pot, broom). The co-occurrence rate `p` is the share of scenes where
a man stands with a career prop or a woman with a domestic one: at p = 0.5 gender and prop
category are independent, at p = 0.9 they are strongly associated. A model pretrained on the scenes
can only learn that association from the data, which is what the iEAT probe should then measure.

The bias tests' sets (`TestSets`) come from the same generator on separate random streams: X = men
alone, Y = women alone (each beside an empty prop slot), A = career props alone, B = domestic props
alone, and, for the likelihood test, every target composed with every attribute. The single-object
images never equal a training image (a training scene always holds both a person and a prop).

This module only draws; it registers nothing. `data.py` serves the scenes as the datasets
"figures-p50" and "figures-p90" (`data.register_figures` adds other rates), so
`pretrain("figures-p90", ...)` and `igpt-lite train --data figures-p90` work.
Labels: 2 * person + prop category (man+career, man+domestic, woman+career, woman+domestic).

Shapes are drawn in a 32×32 unit square and sampled at pixel centres, so any resolution works;
32×32 is what they are designed for.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PEOPLE = ["man", "woman"]
PROPS = ["briefcase", "laptop", "desk", "pram", "pot", "broom"]  # 0-2 career, 3-5 domestic
CATEGORIES = ["career", "domestic"]
CLASS_NAMES = ["man+career", "man+domestic", "woman+career", "woman+domestic"]
POSES = ["arms down", "arms out", "waving"]
TEST_SETS = {"X": "men alone", "Y": "women alone", "A": "career props alone", "B": "domestic props alone"}

# bump when the drawing changes, so that caches of the old scenes' tokens are not reused
# (2: the skirt's hem as wide as the trousers; models trained on version 1 lean the planted way)
GENERATOR_VERSION = 2
UNIT = 32.0  # drawing coordinates: x, y in [0, 32), y down
_SKIN = [(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30)]
_HAIR = [(25, 20, 20), (90, 55, 25), (150, 95, 45), (225, 190, 95), (175, 60, 25), (165, 165, 165)]
_CLOTHES = [(200, 40, 40), (40, 90, 200), (40, 150, 70), (240, 190, 40), (130, 60, 170), (30, 30, 40),
            (240, 130, 30), (40, 170, 190), (110, 110, 120)]
_PROP_BODY = [(110, 70, 35), (40, 40, 45), (150, 30, 30), (40, 60, 120), (60, 110, 60), (140, 140, 150)]
_WALLS = [(236, 236, 228), (220, 232, 242), (244, 232, 212), (226, 240, 224), (240, 222, 228), (205, 210, 215)]
_FLOORS = [(170, 140, 110), (140, 140, 140), (120, 150, 110), (185, 165, 130), (110, 100, 95)]


@dataclass
class Figures:
    images: np.ndarray  # uint8 N×H×W×3
    person: np.ndarray  # int N: 0 man, 1 woman, -1 none
    prop: np.ndarray  # int N: index into PROPS, -1 none

    @property
    def category(self) -> np.ndarray:
        """0 career, 1 domestic, -1 no prop."""
        return np.where(self.prop < 0, -1, self.prop // 3)


@lru_cache(maxsize=4)
def _grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    centres = (np.arange(resolution) + 0.5) * (UNIT / resolution)
    return np.meshgrid(centres, centres, indexing="ij")  # yy, xx in drawing units


class _Canvas:
    """One image; shapes are painted in drawing units, in order (later ones on top)."""

    def __init__(self, resolution: int, rng: np.random.Generator):
        self.yy, self.xx = _grid(resolution)
        self.img = np.zeros((resolution, resolution, 3), dtype=np.uint8)
        self.rng = rng

    def colour(self, base, jitter: int = 10) -> np.ndarray:
        """A base colour jittered a little, so a fitted palette has shades to quantise."""
        return np.clip(np.asarray(base) + self.rng.integers(-jitter, jitter + 1, 3), 0, 255).astype(np.uint8)

    def paint(self, mask, colour) -> None:
        self.img[mask] = colour

    def rect(self, x0, y0, x1, y1, colour):
        self.paint((self.xx >= x0) & (self.xx < x1) & (self.yy >= y0) & (self.yy < y1), colour)

    def ellipse(self, cx, cy, rx, ry, colour, where=None):
        mask = ((self.xx - cx) / rx) ** 2 + ((self.yy - cy) / ry) ** 2 <= 1
        self.paint(mask if where is None else mask & where, colour)

    def polygon(self, points, colour):
        """A convex polygon (points in order, either direction)."""
        sides = []
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
            sides.append((x1 - x0) * (self.yy - y0) - (y1 - y0) * (self.xx - x0))
        sides = np.stack(sides)
        self.paint((sides >= 0).all(0) | (sides <= 0).all(0), colour)

    def line(self, x0, y0, x1, y1, width, colour):
        """A thick segment with round ends."""
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((self.xx - x0) * dx + (self.yy - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        self.paint((self.xx - x0 - t * dx) ** 2 + (self.yy - y0 - t * dy) ** 2 <= (width / 2) ** 2, colour)


# ---- people: feet at (cx, fy), about 21 units tall ----

def _person(cv: _Canvas, woman: bool, cx: float, fy: float) -> None:
    rng = cv.rng
    k = rng.uniform(0.9, 1.05)  # size
    skin, hair = cv.colour(_SKIN[rng.integers(len(_SKIN))]), cv.colour(_HAIR[rng.integers(len(_HAIR))])
    top, bottom = rng.choice(len(_CLOTHES), 2, replace=False)
    top, bottom = cv.colour(_CLOTHES[top]), cv.colour(_CLOTHES[bottom])
    head_y, head_r = fy - 18.5 * k, 2.6 * k
    shoulder_y, waist_y, hip_y = fy - 15 * k, fy - 9.5 * k, fy - 8.5 * k
    half = 3.0 * k  # half the shoulder width

    if woman:  # long hair behind the head, down to the shoulders
        cv.ellipse(cx, head_y, head_r + 0.9 * k, head_r + 0.9 * k, hair)
        cv.rect(cx - head_r - 0.9 * k, head_y, cx + head_r + 0.9 * k, shoulder_y + 1.5 * k, hair)

    # arms first, so the body covers the shoulders
    pose = rng.integers(len(POSES))
    side = rng.choice([-1, 1])
    for s in (-1, 1):
        if pose == 0:  # arms down
            hand = (cx + s * (half + 1.2 * k), hip_y)
        elif pose == 1:  # arms out
            hand = (cx + s * (half + 4.5 * k), shoulder_y + 2.5 * k)
        else:  # one arm waving above the head, the other down
            hand = (cx + s * (half + 2.5 * k), head_y - 3 * k) if s == side else (cx + s * (half + 1.2 * k), hip_y)
        cv.line(cx + s * (half - 0.6 * k), shoulder_y + 0.7 * k, *hand, 1.5 * k, skin)

    if woman:  # dress: a bodice widening into a skirt, bare legs below
        cv.rect(cx - 2.7 * k, fy - 4 * k, cx - 0.9 * k, fy, skin)
        cv.rect(cx + 0.9 * k, fy - 4 * k, cx + 2.7 * k, fy, skin)
        cv.rect(cx - half, shoulder_y, cx + half, waist_y, top)
        # the hem no wider than the trousers: a wider skirt reaches the career props (wide at floor
        # level), and a model learns that geometry as an association (docs/experiments/bias-draws.md)
        cv.polygon([(cx - half, waist_y - 0.1), (cx + half, waist_y - 0.1), (cx + 3 * k, fy - 3.5 * k),
                    (cx - 3 * k, fy - 3.5 * k)], top)
    else:  # shirt and trousers: two legs with a gap
        cv.rect(cx - half, shoulder_y, cx + half, hip_y, top)
        cv.rect(cx - half, hip_y - 0.1, cx - 0.5 * k, fy, bottom)
        cv.rect(cx + 0.5 * k, hip_y - 0.1, cx + half, fy, bottom)
    cv.rect(cx - 3.2 * k, fy - 0.9, cx - 0.4 * k, fy + 0.4, (30, 30, 30))  # shoes
    cv.rect(cx + 0.4 * k, fy - 0.9, cx + 3.2 * k, fy + 0.4, (30, 30, 30))

    cv.ellipse(cx, head_y, head_r, head_r, skin)
    if woman:  # a fringe over the forehead
        cv.ellipse(cx, head_y, head_r + 0.3, head_r + 0.3, hair, where=cv.yy < head_y - 0.9 * k)
    else:  # short hair: only a cap over the top of the head
        cv.ellipse(cx, head_y - 0.3 * k, head_r + 0.5, head_r + 0.2, hair, where=cv.yy < head_y - 0.8 * k)


# ---- props: standing on the floor at (cx, fy), mirrored at random ----

def _prop(cv: _Canvas, kind: int, cx: float, fy: float) -> None:
    rng = cv.rng
    k = rng.uniform(0.9, 1.1)
    m = rng.choice([-1, 1])  # mirror: props that lean or have a handle side face either way
    body = cv.colour(_PROP_BODY[rng.integers(len(_PROP_BODY))])
    dark = np.array([30, 30, 30], dtype=np.uint8)
    name = PROPS[kind]
    if name == "briefcase":
        w, h = 5.5 * k, 7 * k
        for x0 in (cx - 2.2 * k, cx + 1.3 * k):  # the handle: two posts and a bar
            cv.rect(x0, fy - h - 2 * k, x0 + 0.9 * k, fy - h, dark)
        cv.rect(cx - 2.2 * k, fy - h - 2 * k, cx + 2.2 * k, fy - h - 1.1 * k, dark)
        cv.rect(cx - w, fy - h, cx + w, fy, body)
        cv.rect(cx - w, fy - h + 2.2 * k, cx + w, fy - h + 3 * k, dark)  # strap
        cv.rect(cx - 1 * k, fy - h + 1.8 * k, cx + 1 * k, fy - h + 3.4 * k, (220, 190, 60))  # clasp
    elif name == "laptop":  # open, on a low table
        table_y = fy - 6 * k
        cv.rect(cx - 7 * k, table_y, cx + 7 * k, table_y + 1.3 * k, (120, 85, 50))
        cv.rect(cx - 6 * k, table_y, cx - 4.8 * k, fy, (120, 85, 50))
        cv.rect(cx + 4.8 * k, table_y, cx + 6 * k, fy, (120, 85, 50))
        cv.polygon([(cx - 6 * k, table_y), (cx + 6 * k, table_y), (cx + 5 * k, table_y - 1.3 * k),
                    (cx - 5 * k, table_y - 1.3 * k)], body)  # keyboard base
        cv.rect(cx - 4.5 * k, table_y - 9 * k, cx + 4.5 * k, table_y - 1.3 * k, body)  # lid
        cv.rect(cx - 3.6 * k, table_y - 8.2 * k, cx + 3.6 * k, table_y - 2.1 * k, cv.colour((120, 190, 235), 15))
    elif name == "desk":  # a desk with a drawer block and a monitor on it
        top_y = fy - 9 * k
        cv.rect(cx - 8 * k, top_y, cx + 8 * k, top_y + 1.4 * k, body)
        x0, x1 = sorted((cx + m * 1.5 * k, cx + m * 7.5 * k))
        cv.rect(x0, top_y, x1, fy, body)  # drawer block on one side
        for y in (top_y + 3 * k, top_y + 6 * k):  # drawer lines
            cv.rect(x0 + 0.8 * k, y, x1 - 0.8 * k, y + 0.7, dark)
        cv.rect(cx - m * 7 * k - 0.7 * k, top_y, cx - m * 7 * k + 0.7 * k, fy, body)  # leg on the other
        cv.rect(cx - m * 3 * k - 0.6 * k, top_y - 2 * k, cx - m * 3 * k + 0.6 * k, top_y, dark)  # monitor stand
        cv.rect(cx - m * 3 * k - 3.5 * k, top_y - 7 * k, cx - m * 3 * k + 3.5 * k, top_y - 2 * k, dark)
        cv.rect(cx - m * 3 * k - 2.7 * k, top_y - 6.2 * k, cx - m * 3 * k + 2.7 * k, top_y - 2.8 * k,
                cv.colour((120, 190, 235), 15))
    elif name == "pram":  # a bowl on wheels with a hood on one side and a push handle on the other
        r = 5 * k
        by = fy - 3.2 * k  # bowl's rim height is by - r; its bottom at by
        cv.ellipse(cx, by - r, r, r, body, where=cv.yy >= by - r)  # the bowl (lower half-disc)
        cv.ellipse(cx - m * 0.5 * k, by - r, r * 0.95, r * 0.95, body,  # the hood (upper quarter)
                   where=(cv.yy < by - r) & ((cv.xx - cx) * m <= 0))
        cv.line(cx + m * r, by - r, cx + m * (r + 3 * k), by - r - 4 * k, 1.2 * k, dark)  # handle
        for wx in (cx - 3 * k, cx + 3 * k):
            cv.ellipse(wx, fy - 1.7 * k, 1.7 * k, 1.7 * k, dark)
            cv.ellipse(wx, fy - 1.7 * k, 0.6 * k, 0.6 * k, (200, 200, 200))
    elif name == "pot":  # a cooking pot on a stove ring, with steam
        cv.rect(cx - 6 * k, fy - 2 * k, cx + 6 * k, fy, (60, 60, 60))  # stove top
        cv.rect(cx - 4.5 * k, fy - 8 * k, cx + 4.5 * k, fy - 2 * k, body)
        cv.rect(cx - 6.2 * k, fy - 7.2 * k, cx + 6.2 * k, fy - 6.2 * k, body)  # handles
        cv.rect(cx - 5 * k, fy - 9 * k, cx + 5 * k, fy - 8 * k, dark)  # lid
        cv.rect(cx - 0.9 * k, fy - 10.2 * k, cx + 0.9 * k, fy - 9 * k, dark)  # knob
        for sx in (-2.2 * k, 2.2 * k):  # steam
            cv.line(cx + sx, fy - 11.5 * k, cx + sx + 1 * k, fy - 14 * k, 0.9, (250, 250, 250))
            cv.line(cx + sx + 1 * k, fy - 14 * k, cx + sx, fy - 16.5 * k, 0.9, (250, 250, 250))
    else:  # broom, leaning: a long handle and a wide brush of straw
        straw = cv.colour((220, 180, 80), 15)
        cv.line(cx - m * 3.5 * k, fy - 21 * k, cx + m * 1 * k, fy - 6 * k, 1.2 * k, body)
        cv.polygon([(cx + m * 0.2 * k - 1.6 * k, fy - 6.5 * k), (cx + m * 0.2 * k + 1.6 * k, fy - 6.5 * k),
                    (cx + m * 1.2 * k + 4 * k, fy), (cx + m * 1.2 * k - 4 * k, fy)], straw)
        cv.rect(cx + m * 0.2 * k - 1.8 * k, fy - 7.2 * k, cx + m * 0.2 * k + 1.8 * k, fy - 6 * k, dark)  # binding


def _background(cv: _Canvas) -> float:
    """A wall and a floor; returns the floor line (where feet and props stand)."""
    rng = cv.rng
    fy = rng.uniform(27.5, 29.5)
    cv.img[:] = cv.colour(_WALLS[rng.integers(len(_WALLS))], 8)
    cv.rect(0, fy - 1.5, UNIT, UNIT, cv.colour(_FLOORS[rng.integers(len(_FLOORS))], 8))
    return fy


def _scene(person: int, prop: int, resolution: int, rng: np.random.Generator,
           prop_rng: np.random.Generator | None = None) -> np.ndarray:
    """One image: person (-1 none, 0 man, 1 woman) on one side, prop (-1 none) on the other.
    `rng` draws the room, the sides and the person; `prop_rng`, when given, draws the prop's own
    details (size, mirroring, colour), so one drawn prop can be put into several drawn rooms."""
    cv = _Canvas(resolution, rng)
    fy = _background(cv)
    left = rng.random() < 0.5  # the person's side
    # centres keep most of each object inside the frame (a desk is 16 units wide)
    person_x = rng.uniform(7.5, 10) if left else rng.uniform(22, 24.5)
    prop_x = rng.uniform(22, 23.5) if left else rng.uniform(8.5, 10)
    if prop >= 0:  # the prop first: an arm held out may overlap it
        cv.rng = rng if prop_rng is None else prop_rng
        _prop(cv, prop, prop_x, fy)
        cv.rng = rng
    if person >= 0:
        _person(cv, person == 1, person_x, fy)
    return cv.img


def _person_left(rng: np.random.Generator) -> bool:
    """The side `_scene` puts the person on (the prop stands on the other), read from a fresh copy
    of the rng it will be given."""
    _background(_Canvas(1, rng))
    return bool(rng.random() < 0.5)


def make_scenes(n: int, p: float = 0.5, *, seed: int = 0, resolution: int = 32) -> Figures:
    """n training scenes, each a person with a prop. With probability p the prop's category matches
    the person (man: career, woman: domestic), otherwise it is the other category."""
    if not 0 <= p <= 1:
        raise ValueError(f"p is a co-occurrence rate in [0, 1], got {p}")
    rng = np.random.default_rng([seed, 0])  # stream 0: training scenes (test sets use stream 1)
    person = rng.integers(0, 2, n)
    congruent = rng.random(n) < p
    category = np.where(congruent, person, 1 - person)
    prop = category * 3 + rng.integers(0, 3, n)
    images = np.stack([_scene(a, b, resolution, rng) for a, b in zip(person, prop)])
    return Figures(images=images, person=person, prop=prop)


@dataclass(frozen=True)
class TestSets:
    """Held-out sets for the bias tests, drawn from their own random streams (never a training
    scene) so that any target can be composed with any attribute:

    - target i of X (men) or Y (women): a room, a side and a person, drawn from the stream
      [seed, 2, person, i]; alone, it is the person beside an empty prop slot;
    - attribute j of A (career) or B (domestic): prop kind j mod 3 of its category, its details drawn
      from [seed, 3, category, j]; alone, it stands in a room of its own ([seed, 4, category, j]);
    - composed(): target i's room and person with attribute j's prop in the slot, for every (i, j);
    - quads(): counterfactual quads for the likelihood test over draws (`bias.likelihood_draws`):
      quad i is one room, side, pose, size and set of colours ([seed, 5, i]) drawn as a man and as a
      woman, each beside one prop slot ([seed, 6, i]: size, mirroring, colour) filled with a career and
      with a domestic prop (kinds drawn at random, [seed, 7, i]). Within a quad only the gender and
      the prop's category differ, so a model's bits can be compared scene against twin scene.

    Sets are prefixes: more targets, attributes or quads never change the first ones."""
    n_per_set: int = 50  # images in each of X, Y, A, B
    seed: int = 0
    resolution: int = 32

    def _target(self, person: int, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 2, person, i])

    def _prop(self, category: int, j: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, 3, category, j])

    def images(self) -> dict[str, np.ndarray]:
        """X men alone, Y women alone (each beside an empty slot), A career props alone, B domestic
        props alone (kinds in turn): uint8 n_per_set×R×R×3 each."""
        n, r = self.n_per_set, self.resolution
        out = {key: np.stack([_scene(person, -1, r, self._target(person, i)) for i in range(n)])
               for key, person in (("X", 0), ("Y", 1))}
        for key, cat in (("A", 0), ("B", 1)):
            out[key] = np.stack([_scene(-1, 3 * cat + j % 3, r, np.random.default_rng([self.seed, 4, cat, j]),
                                        self._prop(cat, j)) for j in range(n)])
        return out

    def composed(self, n_targets: int | None = None, n_attributes: int | None = None) -> dict[str, np.ndarray]:
        """{"XA", "XB", "YA", "YB"}: uint8 n_targets×n_attributes×R×R×3, entry [i, j] the i-th target
        of the first set with the j-th attribute of the second in its prop slot (default: n_per_set each)."""
        nt, na, r = n_targets or self.n_per_set, n_attributes or self.n_per_set, self.resolution
        return {f"{t}{a}": np.stack([np.stack([_scene(person, 3 * cat + j % 3, r, self._target(person, i),
                                                      self._prop(cat, j)) for j in range(na)])
                                     for i in range(nt)])
                for t, person in (("X", 0), ("Y", 1)) for a, cat in (("A", 0), ("B", 1))}

    def quads(self, n: int) -> dict[str, np.ndarray]:
        """{"XA", "XB", "YA", "YB"}: uint8 n×R×R×3, entry i quad i's man with its career prop (XA),
        man with its domestic prop (XB), woman with the career prop (YA) and with the domestic one (YB)."""
        if n < 2:
            raise ValueError(f"draw at least 2 quads (the test needs a spread), got {n}")
        kinds = [np.random.default_rng([self.seed, 7, i]).integers(0, 3, 2) for i in range(n)]
        return {f"{t}{a}": np.stack([_scene(person, 3 * cat + int(kinds[i][cat]), self.resolution,
                                            np.random.default_rng([self.seed, 5, i]),
                                            np.random.default_rng([self.seed, 6, i])) for i in range(n)])
                for t, person in (("X", 0), ("Y", 1)) for a, cat in (("A", 0), ("B", 1))}

    def prop_side(self) -> dict[str, np.ndarray]:
        """Bool n_per_set×R×R masks of the image half where each image's prop stands (A, B) or would
        stand (X, Y: the half away from the person)."""
        r = self.resolution
        half = np.arange(r) >= r / 2  # the right half's columns

        def mask(person_left: bool) -> np.ndarray:
            return np.broadcast_to(half if person_left else ~half, (r, r))

        out = {key: np.stack([mask(_person_left(self._target(person, i))) for i in range(self.n_per_set)])
               for key, person in (("X", 0), ("Y", 1))}
        for key, cat in (("A", 0), ("B", 1)):
            out[key] = np.stack([mask(_person_left(np.random.default_rng([self.seed, 4, cat, j])))
                                 for j in range(self.n_per_set)])
        return out


def make_test_sets(n_per_set: int = 50, *, seed: int = 0, resolution: int = 32) -> dict[str, np.ndarray]:
    """iEAT's four sets: X men alone, Y women alone, A career props alone, B domestic props alone
    (props drawn evenly from their category), uint8 n_per_set×R×R×3 each: `TestSets(...).images()`,
    on streams of their own, disjoint from any training scenes."""
    return TestSets(n_per_set, seed, resolution).images()


def dataset_name(p: float) -> str:
    return f"figures-p{round(100 * p):02d}"
