"""Feature quality versus depth: a linear probe of every layer against its baselines (probe.probe_report:
shipped beside bundled models, cached on disk for others, computed on a button) and, on the same depth
axis, the logit lens (probe.logit_lens: the same storage rules); probe quality over a run's checkpoints,
and a UMAP of one layer (probe.layer_umap). Every figure comes from probe.figures. For a large model
(the paper's sizes) the images per split default to what fits a few minutes, and each button says
how long it should take first.
"""
import streamlit as st

from common import current_checkpoint, current_dataset, escape_markdown, load_model
from igpt_lite import estimate, probe
from igpt_lite.features import parse_layers

BASELINES = {"random": "random weights", "pixels": "raw pixels", "palette": "palette pixels"}
BUDGET_S = 180  # a large model's default images per split keep the probes under about this much time
LIMITS = (20, 50, 100, 200, 500)


@st.cache_data(show_spinner=False, max_entries=64)
def stored_report(path: str, dataset: str, limit: int, over_training: bool = False) -> probe.ProbeReport:
    """The report stored for this model (shipped or cached); LookupError (not cached) when there is none."""
    return probe.probe_report(load_model(path), dataset, limit=limit, over_training=over_training, compute=False)


@st.cache_data(show_spinner=False, max_entries=32)
def layer_map(path: str, dataset: str, layer: str, n: int) -> probe.LayerMap:
    return probe.layer_umap(load_model(path), layer, dataset, n=n, cache_dir=probe.features_dir())


@st.cache_data(show_spinner=False, max_entries=64)
def stored_lens(path: str, dataset: str, limit: int) -> probe.LensCurve:
    """The logit lens stored for this model (shipped or cached); LookupError when there is none."""
    return probe.logit_lens(load_model(path), dataset, limit=limit, compute=False)


@st.cache_data(show_spinner=False, max_entries=64)
def seconds_per_image(path: str) -> float:
    model = load_model(path).model
    return estimate.forward_seconds(estimate.measure(model), 1, model.config.block_size)


def compute_lens(ck, dataset: str, limit: int):
    """logit_lens computed now, with a progress bar; None (and a message) when it cannot be."""
    bar = st.progress(0.0, text="Loading the images…")
    try:
        lens = probe.logit_lens(ck, dataset, limit=limit, on_step=lambda done, total: bar.progress(
            done / total, text=f"Logit lens: batch {done} of {total}…"))
    except (ValueError, FileNotFoundError) as e:
        bar.empty()
        st.error(f"Cannot compute the logit lens of this model: {e}")
        return None
    bar.empty()
    return lens


def compute_report(ck, dataset: str, over_training: bool = False, limit: int = probe.REPORT_LIMIT):
    """probe_report computed now, with a progress bar; None (and a message) when it cannot be."""
    bar = st.progress(0.0, text="Loading the images…")
    try:
        report = probe.probe_report(ck, dataset, limit=limit, over_training=over_training,
                                    on_step=lambda done, total: bar.progress(
                                        done / total, text=f"Features and probes: step {done} of {total}…"))
    except (ValueError, OSError, LookupError) as e:
        bar.empty()
        st.error(f"Cannot probe this model: {escape_markdown(e)}")
        return None
    bar.empty()
    return report


def source_note(report: probe.ProbeReport) -> str:
    when = f"made {report.created[:10]}" + (f" in {report.seconds:.0f} s" if report.seconds else "")
    if report.not_kept:
        return f"Computed for this model ({when}) but not kept on disk: {escape_markdown(report.not_kept)}. It is computed again next time."
    if report.source == "shipped":
        return f"From the table shipped with the model (`{report.path}`, {when} by `python scripts/probe_tables.py`)."
    return f"Computed for this model ({when}) and kept in `{report.path}`: it opens instantly next time."


def pct(row: probe.ProbeRow) -> str:
    return f"{100 * row.test_acc:.1f}%"


st.title("Feature quality versus depth")
ck = current_checkpoint()
try:
    dataset = current_dataset(ck)
except ValueError as e:
    st.error(f"{e}")
    st.stop()
path = str(ck.path)
name = ck.summary().name
per_image = seconds_per_image(path)
# trained and random-weight models, three splits each; then the probes (a few seconds a layer)
probe_seconds = (lambda n: 6 * n * per_image + 4 * (ck.config.n_layer + 2))


def stored(read, *args):
    try:
        return read(path, dataset, *args)
    except (LookupError, ValueError):
        return None


limit = probe.REPORT_LIMIT
# a large model with nothing stored at the usual size: fewer images, chosen here
if probe_seconds(limit) > BUDGET_S and stored(stored_report, limit) is None:
    fits = [n for n in LIMITS if probe_seconds(n) <= BUDGET_S] or LIMITS[:1]
    limit = st.select_slider("Images per split", LIMITS, value=fits[-1], key="depth_limit",
                             help=f"A forward pass of this model takes {estimate.say_seconds(per_image)} an image here: the "
                             f"default keeps the probes near {BUDGET_S // 60} min. Results are kept per setting.")
lens_limit = probe.LENS_LIMIT if stored(stored_lens, probe.LENS_LIMIT) else min(probe.LENS_LIMIT, limit)
st.caption(f"How well a linear classifier reads {dataset}'s classes from each layer of {name}, against three "
           f"baselines: the same network with random weights, the raw pixels, and the palette-quantised pixels "
           f"the model reads. Each layer's output is layer-normed and averaged over positions; a logistic "
           f"regression is fitted on up to {limit} training images, its regularisation and the best layer are "
           f"chosen on up to {limit} validation images, and accuracy is reported on up to {limit} test images "
           f"(± its binomial standard error).")

# ---- the depth curve ----
report = None
try:
    report = stored_report(path, dataset, limit)
except LookupError as e:
    st.info(f"{escape_markdown(e)}.")
    st.caption(f"Computing extracts every layer's features of this model and of a random-weight copy on up to "
               f"{3 * limit} images of {dataset}, then fits the probes: {estimate.say_seconds(probe_seconds(limit))} here "
               "(estimated from this model's size and this machine's speed); the result is kept on disk.")
    if st.button("Compute the probes", type="primary", key="depth_compute"):
        report = compute_report(ck, dataset, limit=limit)

if report is not None:
    s = report.summary
    cols = st.columns(2 + len(s.margins))
    cols[0].metric("Best layer", s.trained.layer, help="The layer whose probe scores best on validation.")
    cols[1].metric("Its test accuracy", f"{pct(s.trained)} ± {100 * s.trained.test_stderr:.1f}",
                   help="± its binomial standard error on the test images.")
    for col, (kind, m) in zip(cols[2:], s.margins.items()):
        base = s.baselines[kind]
        where = f" (layer {base.layer})" if kind == "random" else ""  # pixels have a single "layer"
        col.metric(f"vs {BASELINES[kind]} {pct(base)}", f"{m.points:+.1f} pts", f"{m.z:+.1f} s.e.",
                   help=f"Test accuracy of the best layer minus that of the {BASELINES[kind]}{where}, chosen on "
                   "validation too, in points; below, in standard errors of that difference, sqrt(se₁² + se₂²).")
    st.caption(("The best layer beats every baseline by more than one standard error of the difference. "
                if s.beats_all else "The best layer does not beat every baseline by more than one standard "
                "error of the difference. ") + source_note(report))

# ---- the logit lens, on the same depth axis ----
lens = None
try:
    lens = stored_lens(path, dataset, lens_limit)
except LookupError:
    lens_seconds = 2 * lens_limit * per_image
    st.caption(f"The logit lens reads each layer through the final norm and head and scores it in bits/dim on up to "
               f"{lens_limit} test images (the tuned lens first maps each layer by an affine map fitted on up to "
               f"{lens_limit} train images): {estimate.say_seconds(lens_seconds)} here; the result is kept on disk.")
    if st.button("Compute the logit lens", key="depth_lens"):
        lens = compute_lens(ck, dataset, lens_limit)
except ValueError as e:  # a bert model: no next-pixel prediction to read
    st.info(f"No logit lens for this model: {e}.")
if report is not None or lens is not None:
    table = report.table if report is not None else probe.ProbeTable([])
    st.plotly_chart(probe.probe_depth_chart(table, title=f"Linear probes and logit lens: {name} on {dataset}",
                                            lens=lens), key="depth_chart")
if lens is not None:
    st.caption(f"Orange, right axis: the logit lens, each layer's residual stream read through the final norm and the "
               f"head as if the blocks above were skipped, in bits/dim on {lens.n_images} {lens.dataset} test images "
               f"(the last block's is the model's own, {lens.rows[-1].bits_per_dim:.3f}). If next-pixel prediction "
               f"happened only in the last layers, it would stay high through the middle and drop at the end. "
               + (f"Dotted: the tuned lens (an affine map per layer fitted on {lens.n_train} train images). "
                  if lens.tuned else "")
               + ("Shipped with the model." if lens.source == "shipped" else "Kept on disk: it opens instantly next "
                  "time."))
if report is not None:
    with st.expander("Every row of the table"):
        st.dataframe([{k: getattr(r, k) for k in ("kind", "layer", "train_acc", "val_acc", "test_acc", "test_stderr",
                                                  "knn_test_acc", "C", "converged")} for r in report.table],
                     hide_index=True)

# ---- over training ----
st.subheader("Probe quality over training")
steps = probe.run_steps(ck)
if len(steps) < 2:
    st.info("This model has no training run beside it with several saved checkpoints (bundled and imported models "
            "ship without them). Train with `igpt-lite train ... --keep 0` and choose the run folder in the sidebar "
            "to see how the probe curve grows with training.")
else:
    history = None
    try:
        history = stored_report(path, dataset, limit, over_training=True)
    except LookupError:
        st.caption(f"The run {ck.path.parent} kept {len(steps)} checkpoints (steps "
                   f"{', '.join(str(probe.step_of(d)) for d in steps)}).")
        if st.button(f"Probe all {len(steps)} checkpoints", key="depth_over_training"):
            history = compute_report(ck, dataset, over_training=True, limit=limit)
    if history is not None:
        st.plotly_chart(probe.probe_checkpoints_chart(history.table, title=f"Linear probes over training: {name}"),
                        key="depth_over_training_chart")
        st.caption(source_note(history))

# ---- UMAP of one layer ----
st.subheader("UMAP of one layer")
layers = parse_layers(ck.model)
best = report.table.best().layer if report is not None else layers[-1]
# another model, or back from another page (Streamlit drops an unshown widget's state): start at the best layer
if st.session_state.get("depth_layer_of") != (path, dataset, best) or "depth_layer" not in st.session_state:
    st.session_state["depth_layer_of"] = (path, dataset, best)
    st.session_state["depth_layer"] = best
layer = st.selectbox("Layer", layers, key="depth_layer", help="The probe's best layer is chosen first.")
done = st.session_state.setdefault("depth_umaps", set())
wanted = (path, dataset, layer, probe.UMAP_POINTS)
slot = st.empty()  # the button, gone once the map is drawn
if wanted not in done and slot.button("Compute the UMAP", key="depth_umap"):
    slot.empty()
    with st.spinner(f"UMAP of {layer} on {probe.UMAP_POINTS} test images (the first in a process takes up to "
                    "a minute more on a quiet machine: umap-learn's import and compile)…"):
        try:
            layer_map(*wanted)
            done.add(wanted)
        except ValueError as e:
            st.error(f"Cannot map this layer: {e}")
if wanted in done:
    lm = layer_map(*wanted)
    st.plotly_chart(probe.umap_scatter(lm.embedding, lm.labels, lm.class_names,
                                       title=f"UMAP of {lm.layer}: {len(lm.labels)} {dataset} {lm.split} images, "
                                             f"coloured by class (seed {lm.seed})"), key="depth_umap_chart")
else:
    st.caption(f"A 2-D UMAP of the layer's features on {probe.UMAP_POINTS} test images, coloured by class: "
               "classes that a linear probe separates well tend to form their own clusters.")
