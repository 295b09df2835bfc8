"""Attention: click a pixel (or type its row and column) and see where every layer and head looks
from it (attention.attend), the rollout through all layers, and per-head summaries
(attention.attention_summary). The model is the sidebar's cached one; a click costs one `attend`.
"""
import numpy as np
import streamlit as st

from common import current_checkpoint, current_dataset, held_out_images, load_model
from igpt_lite import attention
from igpt_lite.attention import attend, attention_summary
from igpt_lite.threads import cpu_threads

SUMMARY_IMAGES = 8  # test images the per-head summary averages over, beside "this image"
SHOWN_LAYERS, SHOWN_HEADS = 6, 8  # the grid's default: at most this many rows and columns, spread evenly


@st.cache_data(show_spinner="Summarising attention over every pixel…", max_entries=32)
def summarise(model_path: str, images: np.ndarray):
    """attention_summary of the cached model over `images` (uint8 N×H×W×C), cached per model and images."""
    ck = load_model(model_path)
    with cpu_threads():
        return attention_summary(ck.model, ck.palette.encode(images))


@st.cache_data(show_spinner="Computing every layer's attention…", max_entries=64)
def maps_from(model_path: str, image: np.ndarray, row: int, col: int):
    """attend of the cached model, cached per model, image and pixel: choosing layers and heads redraws at once."""
    with cpu_threads():
        return attend(load_model(model_path), image, (row, col))


st.title("Attention")
ck = current_checkpoint()
cfg = ck.config
dataset = current_dataset(ck)
images, labels = held_out_images(dataset, cfg.height, ck.palette.channels)
st.caption(f"{ck.summary().name}: {cfg.n_layer} layers × {cfg.n_head} heads over {cfg.height}×{cfg.width} pixels. "
           "Choose a query pixel by clicking the image or typing its row and column: each map shows how much "
           "attention that pixel pays to every other pixel.")

for key, top in (("attention_row", cfg.height), ("attention_col", cfg.width), ("attention_index", len(images))):
    if st.session_state.get(key, 0) >= top:  # a smaller model or test set than before
        st.session_state[key] = top // 2 if key != "attention_index" else 0
st.session_state.setdefault("attention_row", cfg.height // 2)
st.session_state.setdefault("attention_col", cfg.width // 2)


def on_click():
    pixel = attention.picked_pixel(st.session_state["attention_click"].selection)
    if pixel is not None:
        st.session_state["attention_row"], st.session_state["attention_col"] = pixel


left, right = st.columns([1, 2])
with left:
    index = st.number_input(f"Test image (0–{len(images) - 1})", 0, len(images) - 1, key="attention_index")
    image = images[index]
    st.plotly_chart(attention.pixel_picker(image, size_px=300, title=f"{dataset} test image #{index}: click a pixel"),
                    key="attention_click", on_select=on_click, selection_mode="points",
                    config={"displayModeBar": False})
    r, c = st.columns(2)
    row = r.number_input(f"Row (0–{cfg.height - 1})", 0, cfg.height - 1, key="attention_row")
    col = c.number_input(f"Column (0–{cfg.width - 1})", 0, cfg.width - 1, key="attention_col")

att = maps_from(str(ck.path), image, int(row), int(col))

with left:
    if att.rollout_start is None:
        st.caption("BERT model: no start token, every pixel sees every pixel.")
    else:
        st.markdown("**Start token's share**")
        m1, m2 = st.columns(2)
        m1.metric("Rollout", f"{att.rollout_start:.1%}",
                  help="Share of the attention flow through all layers that ends on the start token")
        m2.metric("Last layer", f"{float(att.head_mean_start[-1]):.1%}",
                  help="Share of the last layer's attention (mean over heads) on the start token")
        st.caption("The start token's share is kept out of the maps (they show only pixels), so a map looks "
                   "faint when most of its weight parks there.")
with right:
    st.plotly_chart(attention.attention_rollout_figure(att, size_px=380), key="attention_rollout")

st.subheader("Layers and heads")
all_layers, all_heads = list(range(cfg.n_layer)), list(range(cfg.n_head))
g1, g2 = st.columns(2)
layers = g1.multiselect("Layers", all_layers, default=attention.spread(all_layers, SHOWN_LAYERS), key="attention_layers",
                        help=f"Rows of the grid; {cfg.n_layer} layers in all")
heads = g2.multiselect("Heads", all_heads, default=attention.spread(all_heads, SHOWN_HEADS), key="attention_heads",
                       help=f"Columns of the grid (the mean column is over all {cfg.n_head} heads)")
if layers:
    st.plotly_chart(attention.attention_grid(att, layers=sorted(layers), heads=sorted(heads),
                                             panel_px=max(80, min(120, 900 // (len(heads) + 1)))),
                    key="attention_grid")
    if len(layers) < cfg.n_layer or len(heads) < cfg.n_head:
        st.caption(f"{len(layers)} of {cfg.n_layer} layers × {len(heads)} of {cfg.n_head} heads shown: add more above.")
else:
    st.info("Choose at least one layer.")

st.subheader("One layer, enlarged")
layer = (st.columns(3)[0].select_slider("Layer", options=list(range(cfg.n_layer)), value=cfg.n_layer - 1,
                                        key="attention_layer") if cfg.n_layer > 1 else 0)
st.plotly_chart(attention.attention_grid(att, layers=[layer], panel_px=max(140, 900 // (cfg.n_head + 1))),
                key="attention_layer_grid")

st.subheader("Per head, over every pixel")
over = st.radio("Average over", ["this image", f"{SUMMARY_IMAGES} test images"], horizontal=True,
                key="attention_summary_over")
batch = image[None] if over == "this image" else images[:SUMMARY_IMAGES]
summ = summarise(str(ck.path), batch)
what = "this image" if summ.n_images == 1 else f"{summ.n_images} test images"
d, s = st.columns(2)
d.plotly_chart(attention.attention_distance_chart(summ.mean_distance, title=f"Mean attention distance per head ({what})"),
               key="attention_distance")
if summ.start_share is not None:
    s.plotly_chart(attention.attention_distance_chart(summ.start_share, ylabel="share of attention on the start token",
                                                  title=f"Start token's share per head ({what})"),
                   key="attention_start_share")
    s.caption(f"Mean over layers and heads: {np.mean(summ.start_share):.1%} of each pixel's attention goes to the "
              "start token; the distance chart counts only attention on pixels.")
