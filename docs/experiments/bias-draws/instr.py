"""Instrumented figures generator: monkeypatches scenes._background/_prop/_person to record every
drawn detail (replaying the rng from a state copy) and the image layers (background, +prop, final).
Produces identical images to scenes.py (checked by callers)."""
import numpy as np
from igpt_lite import scenes as S

_orig = dict(bg=S._background, prop=S._prop, person=S._person)
REC = []  # one dict per _scene call (filled progressively)

def _clone(rng):
    g = np.random.Generator(type(rng.bit_generator)())
    g.bit_generator.state = rng.bit_generator.state
    return g

def bg(cv):
    r = _clone(cv.rng)
    fy = r.uniform(27.5, 29.5); wall = int(r.integers(len(S._WALLS))); r.integers(-8, 9, 3)
    floor = int(r.integers(len(S._FLOORS)))
    out = _orig["bg"](cv)
    assert abs(out - fy) < 1e-12
    REC.append(dict(fy=fy, wall=wall, floor=floor, img_bg=cv.img.copy(), prop=-1, person=-1))
    return out

def prop(cv, kind, cx, fy):
    r = _clone(cv.rng)
    k = r.uniform(0.9, 1.1); m = int(r.choice([-1, 1])); body = int(r.integers(len(S._PROP_BODY)))
    REC[-1].update(prop=kind, prop_x=cx, prop_k=k, prop_m=m, prop_body=body)
    _orig["prop"](cv, kind, cx, fy)
    REC[-1]["img_prop"] = cv.img.copy()

def person(cv, woman, cx, fy):
    r = _clone(cv.rng)
    k = r.uniform(0.9, 1.05); skin = int(r.integers(len(S._SKIN))); r.integers(-10, 11, 3)
    hair = int(r.integers(len(S._HAIR))); r.integers(-10, 11, 3)
    top, bottom = (int(v) for v in r.choice(len(S._CLOTHES), 2, replace=False))
    r.integers(-10, 11, 3); r.integers(-10, 11, 3)
    pose = int(r.integers(len(S.POSES))); side = int(r.choice([-1, 1]))
    rec = REC[-1]
    if "img_prop" not in rec:
        rec["img_prop"] = cv.img.copy()
    rec.update(person=int(woman), person_x=cx, person_k=k, skin=skin, hair=hair, top=top, bottom=bottom,
               pose=pose, wave_side=side)
    _orig["person"](cv, woman, cx, fy)

def install():
    S._background, S._prop, S._person = bg, prop, person

def uninstall():
    S._background, S._prop, S._person = _orig["bg"], _orig["prop"], _orig["person"]

def finish(rec, img):
    """Derived features of one recorded scene with final image img."""
    bgi, pri = rec["img_bg"], rec.get("img_prop", rec["img_bg"])
    prop_mask = (pri != bgi).any(-1)          # pixels the prop painted (before the person)
    changed = (img != pri).any(-1)            # pixels the person painted
    out = {k: v for k, v in rec.items() if not k.startswith("img_")}
    out.update(prop_area=int(prop_mask.sum()), person_area=int(changed.sum()),
               occluded=int((prop_mask & changed).sum()))
    if "person_x" in rec:
        out["left"] = int(rec["person_x"] < 16)
        out["dist"] = abs(rec["prop_x"] - rec["person_x"]) if "prop_x" in rec else np.nan
    return out
