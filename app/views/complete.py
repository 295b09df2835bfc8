"""Complete an image: keep its top rows and let the model sample the rest (sample.complete_images).

The image is a held-out test image (picked from a thumbnail strip), an upload (data.read_image +
data.prepare_image) or a drawing. Sampling runs on a button click only; the last result is kept in
st.session_state so reruns redraw it without sampling again.
"""
import hashlib
import io
import time

import numpy as np
import streamlit as st

from common import current_checkpoint, current_dataset, escape_markdown, held_out_images, load_model, parse_upload
from igpt_lite import data, estimate, figures, sample
from igpt_lite.sample import complete_images
from igpt_lite.threads import cpu_threads

STRIP = 10  # thumbnails per page of the strip
SOURCES = ["Held-out test image", "Upload", "Draw"]
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]


@st.cache_data(show_spinner="Timing the model on this machine…", max_entries=32)
def speed(path: str, batch: int) -> estimate.Speed:
    return estimate.measure(load_model(path).model, batch)

st.title("Complete an image")
ck = current_checkpoint()
cfg, palette = ck.config, ck.palette
summary = ck.summary()
dataset = current_dataset(ck)
res, channels = cfg.height, palette.channels
st.caption(f"{summary.name}: {summary.parameters / 1e6:.2f}M parameters, {summary.resolution}, "
           f"{palette.n_colors} colours, trained on {summary.dataset or 'unknown data (imported)'}. "
           "The model keeps the rows above the red line and samples the rest, pixel by pixel.")


def pick_test_image() -> tuple[np.ndarray, str]:
    images, labels = held_out_images(dataset, res, channels)
    if "complete_index" not in st.session_state or st.session_state["complete_index"] >= len(images):
        st.session_state["complete_index"] = 0
    index = st.session_state["complete_index"]
    start = index // STRIP * STRIP
    cols = st.columns(STRIP)
    for col, i in zip(cols, range(start, min(start + STRIP, len(images)))):
        col.image(figures.image_grid(images[i : i + 1], scale=max(1, 56 // res), pad=0), width="stretch")
        col.button(f"#{i}", key=f"complete_pick_{i - start}", type="primary" if i == index else "secondary",
                   on_click=st.session_state.__setitem__, args=("complete_index", i), width="stretch")
    st.columns(4)[0].number_input(f"Test image (0–{len(images) - 1})", 0, len(images) - 1, key="complete_index",
                                  help=f"The strip shows the page of {STRIP} around it")
    return images[index], f"{dataset} test image #{index}"


def read_upload() -> tuple[np.ndarray, str] | None:
    upload = st.file_uploader("Upload an image (PNG, JPEG, WebP, GIF, BMP)", type=UPLOAD_TYPES, key="complete_upload")
    if upload is None:
        st.info("Upload an image: any size and colour mode.")
        return None
    try:
        full = parse_upload("complete_upload", upload, lambda files, channels, budget: data.read_image(files[0], channels),
                            channels)
    except ValueError as e:
        st.error(f"{escape_markdown(e)}. Try another file.")
        return None
    image = data.prepare_image(full, res)
    h, w = full.shape[:2]
    s = min(h, w)
    crop = "no crop (square)" if h == w else f"centre {s}×{s} square cut from {w}×{h}"
    how = "area average" if s >= res else "bicubic"
    a, b, _ = st.columns([1, 1, 2])
    a.image(full if channels == 3 else full[..., 0], caption=f"{escape_markdown(upload.name)}: {w}×{h}", width=220)
    b.image(figures.image_grid(palette.quantise(image[None]), scale=max(1, 220 // res), pad=0),
            caption=f"what the model sees: {res}×{res}, {palette.n_colors} colours", width=220)
    st.caption(f"Prepared as: EXIF orientation applied, transparency on white, {crop}, resized to {res}×{res} "
               f"({how}), {'grey (luma)' if channels == 1 else 'RGB'}, each pixel mapped to the nearest palette colour.")
    return image, upload.name


def read_drawing() -> tuple[np.ndarray, str] | None:
    from streamlit_drawable_canvas import st_canvas

    a, b = st.columns([1, 2])
    with b:
        stroke = st.slider("Brush width", 4, 40, 22, key="complete_brush")
        color = "#ffffff" if channels == 1 else st.color_picker("Brush colour", "#ffffff", key="complete_color")
        st.caption(f"Draw on black, like the training images; the drawing is resized to {res}×{res}.")
    with a:
        canvas = st_canvas(stroke_width=stroke, stroke_color=color, background_color="#000000", height=280, width=280,
                           drawing_mode="freedraw", return_image_data=True, key="complete_canvas")
    png = canvas.image_bytes
    if png is None or not (canvas.json_data or {}).get("objects"):
        st.info("Draw something, then press Complete.")
        return None
    full = data.read_image(io.BytesIO(png), channels, background=(0, 0, 0))
    return data.prepare_image(full, res), "your drawing"


source = st.radio("Image", SOURCES, horizontal=True, key="complete_source")
picked = {"Held-out test image": pick_test_image, "Upload": read_upload, "Draw": read_drawing}[source]()
if picked is None:
    st.stop()
image, image_name = picked
image_id = hashlib.sha1(image.tobytes()).hexdigest()[:12]

c1, c2, c3, c4 = st.columns(4)
keep_rows = c1.slider("Rows to keep", 0, res - 1, res // 2, key="complete_keep_rows")
if st.session_state.get("complete_n_model") != str(ck.path):  # each model starts at the default that fits it
    st.session_state["complete_n_model"] = str(ck.path)
    st.session_state["complete_n"] = 1 if summary.parameters >= estimate.LARGE_PARAMETERS else 4
n_samples = c2.slider("Completions", 1, 8, key="complete_n")
temperature = c3.slider("Temperature", 0.1, 2.0, 1.0, 0.05, key="complete_temperature")
top_k = c4.number_input(f"Top-k (0: all {palette.n_colors} colours)", 0, palette.n_colors, 0, key="complete_top_k")
if "complete_seed" not in st.session_state:
    st.session_state["complete_seed"] = 0


def new_seed():
    st.session_state["complete_seed"] = int(np.random.default_rng().integers(0, 1_000_000))
    st.session_state["complete_go"] = True


b1, b2, b3 = st.columns([1, 1, 2], vertical_alignment="bottom")
b3.number_input("Seed", 0, 1_000_000, key="complete_seed")
go = b1.button("Complete (same seed)", key="complete_run", type="primary",
               help="Sample with the seed shown: the same settings give the same images again")
b2.button("New seed", key="complete_new_seed", on_click=new_seed, help="Draw a new seed and sample")
go = go or st.session_state.pop("complete_go", False)

expected = estimate.sampling_seconds(ck.model, speed(str(ck.path), n_samples), keep_rows * cfg.width)
st.caption(f"Expected: {estimate.say_seconds(expected)} for {n_samples} completion{'s' if n_samples > 1 else ''} of "
           f"{(res - keep_rows) * cfg.width} pixels on this machine. A bar shows the progress; the Stop button at "
           "the top right stops it.")

left, right = st.columns([1, 3])
left.image(sample.cut_preview(palette.quantise(image[None])[0], keep_rows),
           caption=f"{image_name}: rows 0–{keep_rows - 1} kept" if keep_rows else f"{image_name}: nothing kept")

if go:
    bar = right.progress(0.0, text="Sampling…")
    shown = [time.perf_counter()]

    def on_step(done, total):
        # a few updates a second: each one is redrawn by the browser, which shares the CPU with sampling
        if time.perf_counter() - shown[0] > 0.25 or done == total:
            bar.progress(done / total, text=f"Sampling pixel {done} of {total}…")
            shown[0] = time.perf_counter()

    seed = int(st.session_state["complete_seed"])
    with cpu_threads():  # the cores other programs (and other sessions) leave free
        result = complete_images(ck.model, palette, image[None], keep_rows, n_samples=n_samples,
                                 temperature=temperature, top_k=top_k or None, seed=seed, on_step=on_step)
    bar.empty()
    st.session_state["complete_result"] = {"model": str(ck.path), "image": image_id, "result": result,
                                           "temperature": temperature, "top_k": top_k}

last = st.session_state.get("complete_result")
if last and last["model"] == str(ck.path) and last["image"] == image_id:
    r = last["result"]
    n = r.images.shape[1]
    right.image(figures.image_grid(r.images[0], ncols=min(n, 4), scale=max(1, 140 // res)),
                caption=f"{n} completion{'s' if n > 1 else ''} · {r.keep_rows} of {res} rows kept · seed {r.seed} · "
                        f"temperature {last['temperature']:g} · top-k {last['top_k'] or 'off'} · "
                        f"sampled in {r.seconds:.2f} s")
else:
    right.info("Press **Complete** to sample completions of this image.")
