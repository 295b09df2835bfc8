"""Every model shipped in data/models loads by name and is what README says it is: a trained model
of its own dataset, with its own palette."""
import pytest

from igpt_lite.checkpoint import BUNDLED_DIR, load_checkpoint
from igpt_lite.data import dataset_names, load_dataset
from igpt_lite.scoring import evaluate_bits_per_dim

BUNDLED = sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "config.json").exists()) if BUNDLED_DIR.exists() else []


def test_the_readme_models_are_shipped():
    assert {"mnist", "shapes"} <= set(BUNDLED)


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_beats_its_baseline_on_held_out_images(name):
    ck = load_checkpoint(name)
    meta = ck.meta
    assert meta["dataset"] in dataset_names(), f"{name} names an unknown dataset"
    assert (ck.config.height, ck.config.width) == (meta["resolution"],) * 2
    val = load_dataset(meta["dataset"], "val", resolution=meta["resolution"], limit=48)
    assert val.images.shape[-1] == ck.palette.channels
    # its palette reproduces the images about as well as training recorded (48 images vs the whole split)
    assert ck.palette.round_trip_error(val.images) == pytest.approx(meta["palette_error"], rel=0.25)
    # trained: far below the unigram entropy, and near the validation bits/dim its training logged
    bpd = evaluate_bits_per_dim(ck.model, ck.palette.encode(val.images))
    assert bpd < 0.5 * meta["baseline_bpd"]
    assert bpd == pytest.approx(meta["training"]["history"][-1]["val_bpd"], rel=0.2)
