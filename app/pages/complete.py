import numpy as np
import streamlit as st

from igpt_lite.checkpoint import load_checkpoint, model_names
from igpt_lite.data import load_dataset
from igpt_lite.plots import completion_grid
from igpt_lite.sample import complete_images


@st.cache_resource
def get_checkpoint(name: str):
    return load_checkpoint(name)  # shared by all sessions: used read-only, in eval mode


@st.cache_data
def held_out_images(dataset: str, resolution: int) -> np.ndarray:
    return load_dataset(dataset, "test", resolution=resolution).images


st.title("Complete an image")
names = list(model_names())
if not names:
    st.error("No models found: train one (`igpt-lite train`) or restore data/models/.")
    st.stop()
name = st.sidebar.selectbox("Model", names, index=names.index("mnist") if "mnist" in names else 0)
ck = get_checkpoint(name)
cfg = ck.config
images = held_out_images(ck.dataset_name(), cfg.height)

st.caption(f"{name}: {ck.model.num_params() / 1e6:.2f}M parameters, {cfg.height}×{cfg.width}, "
           f"{ck.palette.n_colors} colours, trained on {ck.meta['dataset']}. Images below are held out (test split).")
c1, c2, c3, c4 = st.columns(4)
index = c1.number_input("Test image", 0, len(images) - 1, 0)
keep_rows = c2.slider("Rows to keep", 0, cfg.height, cfg.height // 2)
n_samples = c3.slider("Completions", 1, 8, 4)
temperature = c4.slider("Temperature", 0.5, 1.5, 1.0, 0.05)
seed = st.sidebar.number_input("Seed", 0, 10_000, 0)

original = images[index : index + 1]
completions = complete_images(ck.model, ck.palette, original, keep_rows, n_samples=n_samples,
                              temperature=temperature, seed=seed)
grid = completion_grid(original, completions.images, keep_rows, scale=max(1, 200 // cfg.height))
st.image(grid, caption="kept rows (grey: hidden) · completions · original")
