"""Hugging Face ImageGPT folders in and out, with outputs equal to the original."""
from .hf import (  # noqa: F401
    HF_DEFAULTS,
    ACTIVATIONS,
    WEIGHT_FILES,
    name_map,
    config_from_hf,
    load_hf,
    hf_config,
    hf_processor_config,
    export_hf,
    fetch_and_convert,
)
