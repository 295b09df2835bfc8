"""Palette: the chosen model's colours (Palette.report), one image before and after quantisation
with its round-trip error, and palettes of k colours refitted on a dataset (palette.palette_sweep),
the one picked downloadable as palette.json (Palette.to_json, what Palette.save writes).

The refit runs on a button click (cached per dataset, size, colour mode, k values and seed); the
last request is kept in st.session_state so reruns redraw it without fitting again.
"""
import numpy as np
import streamlit as st

from common import current_checkpoint, current_dataset, escape_markdown, held_out_images, load_model, parse_upload
from igpt_lite import data, figures
from igpt_lite.palette import palette_swatches, palette_sweep, palette_sweep_chart

SOURCES = ["Held-out test image", "Upload"]
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
KS = [2, 4, 8, 16, 32, 64, 128, 256, 512]
DEFAULT_KS = [4, 8, 16, 32, 64]


@st.cache_data(show_spinner=False, max_entries=16)
def model_report(path: str, dataset: str, resolution: int, channels: int):
    """The checkpoint's palette measured on a dataset's test split."""
    images, _ = held_out_images(dataset, resolution, channels)
    return load_model(path).palette.report(images)


@st.cache_data(show_spinner=False, max_entries=8)
def sweep(dataset: str, resolution: int, channels: int, ks: tuple, seed: int):
    """Palettes of each size k fitted on the training split, reported on the validation split."""
    train = data.load_dataset(dataset, "train", resolution=resolution, channels=channels).images
    val = data.load_dataset(dataset, "val", resolution=resolution, channels=channels).images
    return palette_sweep(train, val, ks, seed=seed)


st.title("Palette")
ck = current_checkpoint()
palette, name = ck.palette, ck.summary().name
res, channels = ck.config.height, palette.channels
dataset = current_dataset(ck)
report = model_report(st.session_state["checkpoint_path"], dataset, res, channels)
st.caption(f"{name} turns each pixel into one of {palette.n_colors} {'grey levels' if channels == 1 else 'RGB colours'} "
           "(k-means centres, the nearest one wins), so an image is a sequence of colour tokens. Measured on the "
           f"{report.n_images} test images of {dataset} at {res}×{res}.")
c1, c2, c3 = st.columns(3)
c1.metric("Colours", palette.n_colors)
c2.metric("Round-trip error (test split)", f"{report.round_trip_error:.2f} / 255",
          help="mean |pixel − its palette colour| over every pixel and channel, 0–255 scale")
c3.metric("Token entropy", f"{report.token_entropy_bits:.3f} bits",
          help="the bits per pixel of a model that knows only how often each colour occurs: the baseline for bits/dim")
st.plotly_chart(palette_swatches(report.colors, report.usage, title=f"{name}'s palette",
                                       **(dict(ncols=32, cell_px=30) if palette.n_colors > 64 else {})),
                width="content")

st.subheader("An image before and after quantisation")
source = st.radio("Image", SOURCES, horizontal=True, key="palette_source")
image = None
if source == SOURCES[0]:
    images, _ = held_out_images(dataset, res, channels)
    index = int(st.number_input(f"Test image of {dataset} (0–{len(images) - 1})", 0, len(images) - 1, 0,
                                key="palette_index"))
    image, what = images[index], f"{dataset} test image #{index}"
else:
    upload = st.file_uploader("Upload an image (PNG, JPEG, WebP, GIF, BMP; any size and colour mode)",
                              type=UPLOAD_TYPES, key="palette_upload")
    if upload is None:
        st.info("Upload an image: it is square-cropped at the centre and resized to the model's size.")
    else:
        try:
            image = parse_upload("palette_upload", upload,
                                 lambda files, res, channels, budget: data.load_image(files[0], res, channels), res, channels)
            what = escape_markdown(upload.name)
        except ValueError as e:
            st.error(f"{escape_markdown(e)}. Try another file.")
if image is not None:
    quantised = palette.quantise(image[None])[0]
    left, right = st.columns([2, 1])
    left.image(figures.image_grid(np.stack([image, quantised]), ncols=2, scale=max(1, 192 // res)),
               caption=f"{what} at {res}×{res}: as it is (left), each pixel replaced by its nearest palette colour "
                       "(right: what the model sees)")
    right.metric("Round-trip error of this image", f"{palette.round_trip_error(image[None]):.2f} / 255")
    right.caption(f"{len(np.unique(quantised.reshape(-1, channels), axis=0))} of the {palette.n_colors} colours used")

st.subheader("Refit a palette")
st.caption(f"k-means over a sample of pixels of a dataset's training split at {name}'s size ({res}×{res}, "
           f"{'grey' if channels == 1 else 'RGB'}); each palette is measured on the validation split. More colours: "
           "a smaller error, but longer odds per token (higher entropy) for the model to learn.")
c1, c2, c3 = st.columns([2, 3, 1])
names = data.available_datasets()
model_key = st.session_state["checkpoint_path"]  # a new model starts from its own dataset and palette size
fit_on = c1.selectbox("Dataset", names, index=names.index(dataset) if dataset in names else 0,
                      key=f"palette_dataset:{model_key}")
ks = c2.multiselect("Colours k", KS, default=sorted(set(DEFAULT_KS) | {palette.n_colors} & set(KS)),
                    key=f"palette_ks:{model_key}")
seed = int(c3.number_input("Seed", 0, 1_000_000, 0, key="palette_seed"))
if st.button("Fit palettes", type="primary", key="palette_fit"):
    if not ks:
        st.error("Choose at least one number of colours.")
    else:
        st.session_state["palette_request"] = (fit_on, res, channels, tuple(sorted(ks)), seed)
request = st.session_state.get("palette_request")
if request is None or request[1:3] != (res, channels):
    st.stop()

fit_on, _, _, ks, seed = request
with st.spinner(f"Fitting {len(ks)} palettes on {fit_on}…"):
    try:
        reports = sweep(*request)
    except ValueError as e:
        st.error(f"{e}.")
        st.stop()
st.plotly_chart(palette_sweep_chart(reports, current=palette.n_colors if fit_on == dataset else None,
                                          title=f"Palettes fitted on {fit_on} ({res}×{res})"), width="content")
st.dataframe([{"colours k": r.n_colors, "round-trip error (0-255)": round(r.round_trip_error, 3),
               "token entropy (bits)": round(r.token_entropy_bits, 3)} for r in reports], hide_index=True,
             key="palette_sweep_table")
k = st.selectbox("Palette to download", [r.n_colors for r in reports], index=len(reports) - 1, key="palette_k")
chosen = next(r for r in reports if r.n_colors == k)
st.download_button(f"Download palette.json ({k} colours)", chosen.palette.to_json(), file_name="palette.json",
                   mime="application/json", key="palette_download")
st.caption(f"{k} colours fitted on {fit_on}, seed {seed}: train a model on it with "
           "`igpt-lite train --palette palette.json ...`; `Palette.load('palette.json')` reads it.")
