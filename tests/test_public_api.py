"""`import igpt_lite as ig` gives the calls a notebook user needs, each documented with an example."""
import inspect
import subprocess
import sys

import numpy as np

import igpt_lite as ig
from igpt_lite.checkpoint import load_checkpoint
from igpt_lite.data import load_dataset
from igpt_lite.probe import probe_report
from igpt_lite.sample import complete_images


def test_import_is_light_and_every_public_name_resolves():
    # the package imports its parts on first use: `import igpt_lite` alone does not import torch
    out = subprocess.run([sys.executable, "-c", "import sys, igpt_lite; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for name in ig.__all__:
        assert getattr(ig, name) is not None
    assert ig.load_checkpoint is load_checkpoint and ig.probe.probe_report is ig.probe_report


def test_every_public_call_says_what_it_does_with_an_example():
    missing = [name for name in ig.__all__[1:] if "Example::" not in (inspect.getdoc(getattr(ig, name)) or "")]
    assert not missing, f"no docstring with an example: {missing}"


def test_short_reprs_name_what_a_user_holds():
    ck = load_checkpoint("mnist")
    assert repr(ck) == ("Checkpoint('mnist': 6 layers × 128, 28×28×1, 8 colours, ar, "
                        f"{ck.model.num_params() / 1e6:.2f}M parameters)")
    ds = load_dataset("mnist", "test", resolution=28, limit=4)
    assert repr(ds) == "Dataset('mnist': 4 images 28×28×1, 10 classes)"


def test_result_objects_print_short():
    """A result in a notebook cell or a log reads in one line, not as its arrays (3,600 characters)."""
    ck = load_checkpoint("mnist-small")
    images = np.zeros((2, 28, 28, 1), dtype=np.uint8)
    done = complete_images(ck.model, ck.palette, images, keep_rows=27, n_samples=1)
    for result in (done, probe_report("mnist"), ck.summary(), ck.summary().history):
        assert len(repr(result)) < 200 and "\n" not in repr(result), repr(result)[:300]
    assert repr(done).startswith("Completions(2 images × 1 samples, 28×28×1, top 27 rows kept")
