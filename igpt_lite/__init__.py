"""igpt-lite: a compact Image GPT. Train one on a CPU or a GPU, complete images, look at attention,
probe every layer, and test representations for bias.

The calls a notebook user needs are here (imported on first use, so `import igpt_lite` is quick)::

    import igpt_lite as ig

    ck = ig.load_checkpoint("mnist")                       # a bundled model, by name
    test = ig.load_dataset("mnist", "test", resolution=28, limit=4)
    done = ig.complete_images(ck.model, ck.palette, test.images, keep_rows=14, n_samples=2)
    done.images.shape                                      # (4, 2, 28, 28, 1)

Each capability is a package with the rest of its calls, figures and result types:
`ig.data`, `ig.train`, `ig.sample`, `ig.attention`, `ig.probe`, `ig.bias`, `ig.interop`, `ig.palette`.
"""
from importlib import import_module

__version__ = "0.2.0"

# public name -> the module that defines it
_API = {
    "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint", "Checkpoint": "checkpoint",
    "GPT": "model", "GPTConfig": "model", "Palette": "palette",
    "load_dataset": "data", "Dataset": "data", "read_image": "data",
    "extract_features": "features",
    "pretrain": "train", "TrainConfig": "train",
    "complete_images": "sample",
    "attend": "attention",
    "probe_model": "probe", "probe_report": "probe", "LinearProbe": "probe", "KNNProbe": "probe",
    "FeatureExtractor": "probe",
    "likelihood_test": "bias", "bias_test": "bias",
    "load_hf": "interop",
}
_PACKAGES = ("checkpoint", "model", "palette", "data", "features", "train", "sample", "attention", "probe",
             "bias", "interop", "figures", "scoring", "storage", "studies")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    if name in _PACKAGES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'igpt_lite' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_API, *_PACKAGES})
