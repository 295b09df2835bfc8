"""The shared sidebar of every page: pick a checkpoint, see its model card; cached loaders.

Models are loaded once per process with st.cache_resource and shared by every browser session, so
pages use them read-only (they are in eval mode; the library runs them under inference_mode).
Nothing here computes: it parses the sidebar, calls igpt_lite, and shows the result.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
import torch

from igpt_lite import checkpoint as ckpt
from igpt_lite import data

TYPE_A_PATH = "a folder on this machine…"
# Streamlit caps each file (.streamlit/config.toml, maxUploadSize: 20 MB); these cap a set of uploads
UPLOAD_TOTAL_MB = 40  # all the files of one uploader (or of the four sets of the bias page) together
UPLOAD_PIXELS = 100_000_000  # pixels decoded for one upload, all its images together
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


def model_choices() -> dict[str, str]:
    """Label shown -> checkpoint folder: bundled models, then the user's (IGPT_LITE_MODELS, imports)."""
    found = {}
    for name, path in ckpt.model_names().items():
        where = "bundled" if path.parent.resolve() == ckpt.BUNDLED_DIR.resolve() else "yours"
        found[f"{name} ({where})"] = str(path)
    return found


def model_sidebar() -> None:
    """Draw the model picker and model card in the sidebar (called by app/main.py on every page)."""
    choices = model_choices()
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
        st.sidebar.error(f"Cannot load this model: {escape_markdown(e)}")
        return
    with st.sidebar.expander("Model card", expanded=False):
        st.markdown("\n".join(f"- **{k}**: {escape_markdown(v)}" for k, v in ck.summary().card()))


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


def parse_upload(slot: str, files, parse, *args):
    """parse(files, *args, budget) for the files of one upload (an UploadedFile, a list, or None
    entries to skip), run once per uploaded bytes and arguments: kept in this session's state under
    `slot` (one result a slot, its error too), so a widget change redraws without decoding again.
    Refused before parsing (ValueError): more than UPLOAD_TOTAL_MB in all; the files are then dropped
    from the server's memory. `budget` is a data.PixelBudget of UPLOAD_PIXELS for parse to spend."""
    files = [f for f in (files if isinstance(files, list) else [files]) if f is not None]
    total = sum(f.size for f in files)
    if total > UPLOAD_TOTAL_MB * 1e6:
        ctx = get_script_run_ctx()
        for f in files:  # nothing of a refused upload is kept
            ctx.uploaded_file_mgr.remove_file(ctx.session_id, f.file_id)
        st.session_state.pop(f"upload:{slot}", None)
        raise ValueError(f"these {len(files)} file{'s' if len(files) > 1 else ''} hold {total / 1e6:.1f} MB in all, "
                         f"more than the {UPLOAD_TOTAL_MB} MB accepted at once: the model sees each image at a few "
                         "dozen pixels a side, so downscale them or upload fewer")
    h = hashlib.sha256(repr(args).encode())
    for f in files:
        h.update(hashlib.sha256(f.getvalue()).digest())
    kept = st.session_state.get(f"upload:{slot}")
    if kept is None or kept[0] != h.hexdigest():
        try:
            result = parse(files, *args, data.PixelBudget(UPLOAD_PIXELS))
        except ValueError as e:
            result = e
        kept = st.session_state[f"upload:{slot}"] = (h.hexdigest(), result)
    if isinstance(kept[1], ValueError):
        raise kept[1]
    return kept[1]


def escape_markdown(text) -> str:
    """Text from outside (file and folder names, messages that quote them) shown in Markdown as
    itself: `![t](http://...)` is not an image the viewer's browser fetches, `[a](b)` or a bare
    https://... not a link, `*a*` not emphasis. (The characters that start none of these are left
    alone, so a message reads the same in the page source.)"""
    out = "".join("\\" + c if c in "\\`*_[]<>!~$|" else c for c in str(text))
    return out.replace("://", ":\\/\\/").replace("www.", "www\\.")
