"""The shared sidebar of every page: pick a checkpoint, see its model card; cached loaders.

Models are loaded once per process with st.cache_resource and shared by every browser session, so
pages use them read-only (they are in eval mode; the library runs them under inference_mode).
Nothing here computes: it parses the sidebar, calls igpt_lite, and shows the result.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from igpt_lite import checkpoint as ckpt
from igpt_lite import data

TYPE_A_PATH = "a folder on this machine…"
DEFAULT_MODEL = "mnist-small"  # the fastest bundled model to sample from


@st.cache_resource(show_spinner="Loading the model…")
def _load_model(path: str, device: str) -> ckpt.Checkpoint:
    return ckpt.load_checkpoint(path, device=device)


def load_model(path: str) -> ckpt.Checkpoint:
    """One Checkpoint per folder, device and process, shared by every session: used read-only. On
    the sidebar's device: a CUDA GPU when torch sees one (the sidebar then offers the CPU too)."""
    return _load_model(path, st.session_state.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))


@st.cache_data(show_spinner=False)
def held_out_images(dataset: str, resolution: int, channels: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a dataset's split at the model's size and colour mode."""
    ds = data.load_dataset(dataset, split, resolution=resolution, channels=channels)
    return ds.images, ds.labels


def _choices() -> dict[str, str]:
    """Label shown -> checkpoint folder: bundled models, then the user's (IGPT_LITE_MODELS, imports)."""
    found = {}
    for name, path in ckpt.model_names().items():
        where = "bundled" if path.parent.resolve() == ckpt.BUNDLED_DIR.resolve() else "yours"
        found[f"{name} ({where})"] = str(path)
    return found


def model_sidebar() -> None:
    """Draw the model picker and model card in the sidebar (called by app/main.py on every page)."""
    choices = _choices()
    labels = [*choices, TYPE_A_PATH]
    default = next((i for i, l in enumerate(labels) if l.startswith(DEFAULT_MODEL + " ")), 0)
    label = st.sidebar.selectbox("Model", labels, index=default, key="model_label")
    if label == TYPE_A_PATH:
        typed = st.sidebar.text_input("Checkpoint or training-run folder", key="model_path",
                                      placeholder="runs/digits  or  ~/.cache/igpt-lite/models/imagegpt-small")
        path = str(Path(typed.strip()).expanduser()) if typed.strip() else None
    else:
        path = choices[label]
    st.session_state["checkpoint_path"] = path
    if torch.cuda.is_available():  # with no GPU there is nothing to choose
        st.sidebar.radio("Device", ["cuda", "cpu"], key="device", horizontal=True)
    if path is None:
        st.sidebar.info("Type the folder of a checkpoint (config.json, model.safetensors, palette.json) or of a "
                        "training run.")
        return
    try:
        ck = load_model(path)
    except (OSError, ValueError) as e:  # missing, unreadable (permissions), damaged or mismatched files
        st.session_state["checkpoint_path"] = None
        st.sidebar.error(f"Cannot load this model: {e}")
        return
    with st.sidebar.expander("Model card", expanded=False):
        st.markdown("\n".join(f"- **{k}**: {v}" for k, v in ck.summary().card()))


def current_checkpoint() -> ckpt.Checkpoint:
    """The checkpoint chosen in the sidebar; stops the page with a message when there is none."""
    path = st.session_state.get("checkpoint_path")
    if not path:
        st.info("Choose a model in the sidebar.")
        st.stop()
    return load_model(path)


def current_dataset(ck: ckpt.Checkpoint) -> str:
    """The dataset whose held-out images a page shows: the model's own, or (for a model that names
    none, e.g. an imported one) one the user picks in the sidebar."""
    try:
        name = ck.dataset_name()
        if data.dataset_available(name):
            return name
    except ValueError:  # names none, or one this process does not have (e.g. registered elsewhere)
        pass
    # or names a dataset whose files are not on this machine
    named = ck.meta.get("dataset")
    why = f"{named!r} is not available here" if named else "this model names no dataset"
    return st.sidebar.selectbox(f"Images from ({why})", data.available_datasets(), key="dataset")
