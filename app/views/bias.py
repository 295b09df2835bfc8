"""Bias probes: bias.run on the chosen model, the flow `igpt-lite bias` runs. First the likelihood
association test (targets composed with attributes, scored in bits by the model; it found the
association planted in figures-p90 where iEAT did not), then iEAT on every layer, on the generated
figures test sets (scenes.make_test_sets; composed as counterfactual quads, bias.composed_draw) or on four sets the user uploads
(several files a set: data.load_image_files; or one zip with folders X/, Y/, A/, B/:
data.read_image_sets_zip; composed by bias.compose_sets).

The tests run on a button click; results are cached per model, sets and seed (st.cache_data), and the
last request is kept in st.session_state so reruns redraw it without computing again.
"""
import hashlib
import json

import numpy as np
import streamlit as st

from common import current_checkpoint, escape_markdown, load_model, model_choices, parse_upload
from igpt_lite import bias, data, estimate, figures
from igpt_lite.data import scenes
from igpt_lite.threads import cpu_threads

SOURCES = ["Generated figures scenes", "Your images (upload)"]
UPLOAD_HOW = ["Files for each set", "One zip with folders X/, Y/, A/, B/"]
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]
ROLES = {"X": "targets (e.g. men)", "Y": "targets (e.g. women)", "A": "attributes (e.g. career)",
         "B": "attributes (e.g. family)"}
N_CHOICES = [10, 25, 50, 100]
# the likelihood test on the figures scenes: counterfactual quads, 4 scenes each; fewer on a large
# model (estimate.LARGE_PARAMETERS), where every scene is a second's forward on a CPU
LIKELIHOOD = bias.DESIGN
LIKELIHOOD_LARGE = {"quads": 8}
DRAWS = 5  # the draws section's default: each draw is the likelihood test again, on new scenes
PERMUTATIONS = 100_000
ALPHA = 0.05
THUMBS = 24  # thumbnails drawn per set
COLUMNS = {"effect_size": st.column_config.NumberColumn("d", format="%.3f"),
           "p_value": st.column_config.NumberColumn("p (one-sided)", format="%.4f"),
           "p_holm": st.column_config.NumberColumn("Holm p", format="%.4f"),
           "statistic": st.column_config.NumberColumn(format="%.4f"),
           "ci_low": st.column_config.NumberColumn("d 95% low", format="%.3f"),
           "ci_high": st.column_config.NumberColumn("d 95% high", format="%.3f")}


@st.cache_data(show_spinner=False, max_entries=32)
def scene_sets(n: int, seed: int, resolution: int, channels: int) -> dict:
    """The generated X, Y, A, B at the model's size and colour mode."""
    sets = scenes.make_test_sets(n, seed=seed, resolution=resolution)
    return {k: data.to_channels(v, channels) for k, v in sets.items()}


@st.cache_data(show_spinner=False, max_entries=32)
def composed_scenes(seed: int, resolution: int, channels: int, quads: int) -> dict:
    """Counterfactual quads: one room with a man and with a woman, each beside a career and a domestic prop."""
    return bias.composed_draw(seed, quads, resolution, channels)


@st.cache_resource
def kept_reports() -> dict:
    """Reports computed in this server, shared by its sessions: (model, images' hash, seed) → BiasReport.
    (Not st.cache_data: it would replay the progress bar's updates into a later run's page.)"""
    return {}


def run_tests(path: str, sets: dict, composed: dict | None, seed: int, on_step) -> bias.BiasReport:
    arrays = [sets[k] for k in bias.SET_NAMES] + ([composed[k] for k in bias.PAIRS] if composed else [])
    key = (path, hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest(), seed)
    kept = kept_reports()
    if key not in kept:
        with cpu_threads():  # the cores other programs (and other sessions) leave free
            kept[key] = bias.run(load_model(path), sets, composed=composed, n_permutations=PERMUTATIONS, seed=seed,
                                 on_step=on_step)
        while len(kept) > 16:
            kept.pop(next(iter(kept)))
    return kept[key]


def run_draws(path: str, control: str | None, seeds: range, design: dict, on_step) -> bias.DrawsResult:
    key = ("draws", path, control, seeds.start, seeds.stop, design["quads"])
    kept = kept_reports()
    if key not in kept:
        with cpu_threads():
            kept[key] = bias.likelihood_draws(load_model(path), seeds, control=load_model(control) if control else None,
                                              n_quads=design["quads"], on_step=on_step)
        while len(kept) > 16:
            kept.pop(next(iter(kept)))
    return kept[key]


def draws_section(design: dict) -> None:
    """The likelihood test again on several fresh draws of the scenes, beside a matched control: the
    spread of d over draws, so that no single draw is read as the finding."""
    st.subheader("Over several draws of the test scenes")
    study = bias.DrawsStudy.read(ck.path)  # measured once over many draws, shipped with the model
    if study is not None:
        st.info(study.markdown() + "\n\nRead one draw's p (above) with these rates in mind. A control trained on "
                "balanced data can still lean a little (figures-p50 does: see docs/experiments/bias-draws.md), so "
                "read a model against its control: the difference in d and the paired test below.")
    others = {label: p for label, p in model_choices().items() if p != path}
    labels = ["none", *others]
    # figures-p90's twin is figures-p50: the same recipe, balanced data
    twin = next((i for i, label in enumerate(labels) if label.startswith("figures-p50 ")), 0) \
        if str(trained_on).startswith("figures") and trained_on != "figures-p50" else 0
    c1, c2 = st.columns(2)
    n_draws = int(c1.number_input("Draws (seeds from the seed above)", 2, 100, DRAWS, key="bias_draws"))
    control_label = c2.selectbox("Matched control: the same recipe trained on balanced data", labels, index=twin,
                                 key="bias_control", help="Each draw is scored by both models; the result is the "
                                 "difference in d, draw by draw, with its interval over draws.")
    control = others.get(control_label)
    seeds = range(seed, seed + n_draws)
    per_draw = 4 * design["quads"]
    forwards = n_draws * per_draw * (3 if control else 2)
    st.caption(f"Each draw: {design['quads']} new counterfactual quads ({per_draw:,} scenes), scored by {name}, "
               f"random-weight copies (a new one every quad){' and the control' if control else ''}. Expected: "
               f"{estimate.say_seconds(estimate.forward_seconds(speed(path), forwards, ck.config.block_size))} "
               f"({forwards:,} image forwards).")
    request = ("draws", path, control, seeds.start, seeds.stop)
    if st.button(f"Run over {n_draws} draws", key="bias_draws_run"):
        st.session_state["bias_draws_request"] = request
    if st.session_state.get("bias_draws_request") != request:
        return
    bar = st.progress(0.0, text="Scoring every draw's composed scenes…")
    try:
        result = run_draws(path, control, seeds, design, lambda done, total: bar.progress(
            done / total, text=f"{done:,} of {total:,} composed scenes scored"))
    except ValueError as e:
        bar.empty()
        st.error(f"{e}.")
        return
    bar.empty()
    s, diff, paired = result.spread(), result.difference(), result.spread("paired")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(f"d over {s.n} draws", f"{s.mean:.2f}", help=f"95% interval for the mean over draws: {s.low:.2f} to "
              f"{s.high:.2f}; SD across draws {s.sd:.2f}")
    m2.metric("combined p", f"{s.p_combined:.2g}", help=f"Stouffer's combination of the {s.n} draws' p-values; "
              f"p < {ALPHA} in {s.significant} of {s.n} draws alone")
    if diff is not None:
        m3.metric("d minus the control's", f"{diff.mean:.2f}", help=f"95% interval over draws {diff.low:.2f} to "
                  f"{diff.high:.2f}")
        m4.metric("paired test against the control: combined p", f"{paired.p_combined:.2g}",
                  help=f"The test on each scene's bits under {name} minus under the control: what both models find "
                  f"hard or easy in a scene cancels. p < {ALPHA} in {paired.significant} of {paired.n} draws alone")
    st.plotly_chart(bias.draws_chart(result, alpha=ALPHA), width="content", key="bias_draws_chart")
    st.caption(escape_markdown(result.text()))
    st.download_button("Download the draws (JSON)", json.dumps(result.to_dict(), indent=1, default=str),
                       file_name="bias_draws.json", mime="application/json", key="bias_draws_json")


@st.cache_data(show_spinner="Timing the model on this machine…", max_entries=32)
def speed(path: str) -> estimate.Speed:
    return estimate.measure(load_model(path).model)


def read_set_files(files: list, counts: list[int], res: int, channels: int, budget) -> dict:
    """The four sets' uploaded files (in SET_NAMES order, `counts` of each) as model inputs."""
    ends = [sum(counts[: i + 1]) for i in range(len(counts))]
    return {k: data.load_image_files(files[end - n : end], res, channels, name=f"set {k}", budget=budget)
            for k, n, end in zip(bias.SET_NAMES, counts, ends)}


def read_zip(files: list, res: int, channels: int, budget) -> data.ImageSets:
    return data.read_image_sets_zip(files[0], res, channels, budget=budget)


def uploaded_sets(res: int, channels: int) -> dict | None:
    """The user's four sets as model inputs, or None (with a message in the page saying what to do)."""
    how = st.radio("Upload as", UPLOAD_HOW, horizontal=True, key="bias_upload_how")
    ignored = []
    try:
        if how == UPLOAD_HOW[0]:
            cols = st.columns(4)
            files = {k: col.file_uploader(f"{k}: {ROLES[k]}", type=UPLOAD_TYPES, accept_multiple_files=True,
                                          key=f"bias_files_{k}") for col, k in zip(cols, bias.SET_NAMES)}
            empty = [k for k, v in files.items() if not v]
            if empty:
                st.info(f"Add images to {', '.join(empty)}: several files a set, any size and colour mode "
                        "(at least 4 in each of X and Y for a test that can reach p < 0.05; 20 or more is advisable).")
                return None
            folders = parse_upload("bias_files", [f for k in bias.SET_NAMES for f in files[k]], read_set_files,
                                   [len(files[k]) for k in bias.SET_NAMES], res, channels)
        else:
            upload = st.file_uploader("A zip holding the folders X/, Y/, A/, B/ (at its top or inside one folder)",
                                      type=["zip"], key="bias_zip")
            if upload is None:
                st.info("Upload a zip with four folders X/, Y/, A/, B/, each holding that set's images.")
                return None
            found = parse_upload("bias_zip", upload, read_zip, res, channels)
            folders, ignored = found.sets, found.ignored
    except ValueError as e:
        st.error(f"{escape_markdown(e)}.")
        return None
    if ignored:
        st.caption(f"Left out (not inside X/, Y/, A/ or B/): {escape_markdown(', '.join(ignored))}")
    for note in filter(None, (f.conversion_note(channels) for f in folders.values())):
        st.caption(escape_markdown(note))
    try:
        bias.check_target_sizes(len(folders["X"].images), len(folders["Y"].images), ALPHA)
    except ValueError as e:
        st.error(str(e))
        return None
    return {k: f.images for k, f in folders.items()}


st.title("Bias probes")
ck = current_checkpoint()
path = st.session_state["checkpoint_path"]
name, trained_on = ck.summary().name, ck.meta.get("dataset")
res, channels = ck.config.height, ck.palette.channels
large = ck.summary().parameters >= estimate.LARGE_PARAMETERS
likely = LIKELIHOOD_LARGE if large else LIKELIHOOD
st.caption(f"Is the association of X with A (and Y with B) in {name} stronger than chance? First the likelihood "
           "association test (targets composed with attributes, scored by the model in bits), then "
           "iEAT (Steed & Caliskan, 2021) on every layer's features (layer-normed, mean-pooled).")

source = st.radio("Test sets", SOURCES, horizontal=True, key=f"bias_source:{path}",  # per model: its own default
                  index=0 if str(trained_on).startswith("figures") else 1)
if source == SOURCES[0]:
    c1, c2 = st.columns(2)
    n = c1.selectbox("Images per set", N_CHOICES, index=N_CHOICES.index(10 if large else 50), key="bias_n")
    seed = int(c2.number_input("Seed (test sets and permutations)", 0, 1_000_000, 0, key="bias_seed"))
    sets = scene_sets(n, seed, res, channels)
    st.caption(f"`scenes.make_test_sets({n}, seed={seed})`: {n} images a set, drawn on random streams of their "
               "own (never a training scene): " + "; ".join(f"{k} {v}" for k, v in scenes.TEST_SETS.items()) + ".")
    if not str(trained_on).startswith("figures"):
        st.warning(f"{name} was trained on {trained_on or 'data it does not name'}, not on figures scenes: the scenes "
                   f"are drawn at {res}×{res}{' and turned grey' if channels == 1 else ''}. For the controlled "
                   "experiment choose figures-p90 (90% of its training scenes pair a man with a career prop and a "
                   "woman with a domestic one) or figures-p50 (no association) in the sidebar.")
else:
    seed = int(st.number_input("Seed (permutations)", 0, 1_000_000, 0, key="bias_seed"))
    sets = uploaded_sets(res, channels)
    if sets is None:
        st.stop()

n_x, n_y = len(sets["X"]), len(sets["Y"])
st.markdown(f"**What the numbers mean.** *d* says how much more strongly X than Y associates with A rather than B, "
            f"in standard deviations (0.8 counts as large, yet with no association at all *d* scatters by about "
            f"±{(1 / n_x + 1 / n_y) ** 0.5:.2f} with {n_x} and {n_y} targets), and *p* is one-sided: the likelihood "
            "test's counts targets and attributes both as drawn (so it speaks for new props too, not only these); "
            "iEAT's is the share of random re-splits of X ∪ Y that score at least as high, and every layer is a "
            "separate test, so read the Holm-adjusted p against 0.05. One draw of test images can still mislead: "
            "the likelihood test over several draws (below its result) shows how far d moves between draws. An association in a model's embeddings is not proof that a system "
            "built on it does harm, and its absence is not proof of fairness; the random-weight copy beside it "
            "shows how much pixel statistics alone produce.")

cols = st.columns(4)
for col, k in zip(cols, bias.SET_NAMES):
    shown = min(len(sets[k]), THUMBS)
    col.image(figures.image_grid(sets[k][:THUMBS], ncols=6, scale=max(1, 64 // res)), width="stretch",
              caption=f"{k}: {scenes.TEST_SETS[k] if source == SOURCES[0] else ROLES[k]}, {len(sets[k])} images"
                      f"{f' ({shown} shown)' if shown < len(sets[k]) else ''}")

digest = hashlib.sha256(b"".join(sets[k].tobytes() for k in bias.SET_NAMES)).hexdigest()
request = (path, digest, seed)
n_composed = 4 * likely["quads"] if source == SOURCES[0] else (n_x + n_y) * (len(sets["A"]) + len(sets["B"]))
forwards = 2 * (sum(len(v) for v in sets.values()) + (n_composed if ck.config.objective == "ar" else 0))  # and the copy
expected = estimate.forward_seconds(speed(path), forwards, ck.config.block_size)
st.caption(f"Expected: {estimate.say_seconds(expected)} on this machine ({forwards} image forwards, the "
           "random-weight copy's included); a bar shows its progress, and Stop (top right) ends it.")
if st.button("Run the tests", type="primary", key="bias_run"):
    st.session_state["bias_request"] = request
if st.session_state.get("bias_request") != request:
    st.info(f"Press the button to test every layer of {name} ({PERMUTATIONS:,} sampled partitions a layer, and the "
            "same on a random-weight copy where the library makes one). It extracts every layer's features of "
            f"{sum(len(v) for v in sets.values())} images: allow a little while on a CPU; results are kept.")
    st.stop()

if source == SOURCES[0]:
    composed = composed_scenes(seed, res, channels, likely["quads"])
    how = (f"{likely['quads']} counterfactual quads (`scenes.TestSets(seed={seed}).quads`): each one room, pose and "
           "set of colours drawn with a man and with a woman, each beside a career and a domestic prop in one slot")
else:
    composed = None  # bias.run composes the uploads: bias.compose_sets
    how = ("each target image's top half above each attribute image's bottom half (meaningful only when the "
           "targets' subject sits in their top half and the attributes' in their bottom half)")
bar = st.progress(0.0, text="Scoring every composed image in bits, then testing every layer…")
try:
    report = run_tests(path, sets, composed, seed, lambda done, total: bar.progress(
        done / total, text=f"Likelihood test: {done} of {total} composed images scored (the model's, then the "
                           "random-weight copy's); then iEAT on every layer…"))
except ValueError as e:
    bar.empty()
    st.error(f"{e}.")
    st.stop()
bar.empty()

st.subheader("Likelihood association test")
lik = report.likelihood
if lik is None:
    st.info(f"Not run: {report.likelihood_skipped}. Only iEAT applies (below).")
else:
    r, b = lik.row, lik.baseline
    verdict = "significant" if r.p_value < ALPHA else "not significant"
    m1, m2, m3 = st.columns(3)
    m1.metric("d (95% CI)", f"{r.effect_size:.2f}", help=f"bootstrap interval {r.ci_low:.2f} to {r.ci_high:.2f}")
    quads = isinstance(lik.test, bias.QuadsResult)
    test = "quads" if quads else "crossed"
    m2.metric("p (one-sided)", f"{r.p_value:.2g}", help=f"the {test} test: targets and attributes both counted as "
              f"drawn; iEAT's permutation p (attributes held fixed) is {r.p_targets:.2g}")
    m3.metric(f"random-weight {'copies (one a quad)' if quads else 'copy'}: d, p",
              f"{b.effect_size:.2f}, {b.p_value:.2g}" if b else "not run")
    score = ("s(x) = bits with the quad's B prop minus bits with its A prop, less the quad's mean over its two "
             "people" if quads else "s(x) = mean bits with a B attribute minus mean bits with an A attribute")
    st.caption(f"{name}: {verdict} at {ALPHA}; d's 95% bootstrap interval {r.ci_low:.2f} to {r.ci_high:.2f}. "
               f"Composed scenes: {how}. {score}; d and its interval as iEAT computes them; p from the {test} "
               f"test, which counts the attributes as drawn too (iEAT's permutation p, {r.p_targets:.2g}, speaks "
               "only for these props).")
    if source == SOURCES[0]:
        draws_section(likely)

st.subheader("iEAT on every layer")
result = report.ieat
best = result.smallest_holm()
verdict = "significant" if best.p_holm < ALPHA else "not significant"
st.subheader(f"{name}: smallest Holm-adjusted p at {best.layer}: d = {best.effect_size:.3f}, "
             f"p = {best.p_value:.4f}, Holm p = {best.p_holm:.4f} ({verdict} at {ALPHA})")
chart = {name: result.table} | ({"random-weight copy": result.baseline_table} if result.baseline_table else {})
st.plotly_chart(bias.bias_per_layer_chart(chart, title=f"iEAT per layer: {name}"), width="content")
st.caption(f"{name}, {len(result.table)} layers; images per set: "
           f"{', '.join(f'{k} {v}' for k, v in result.n_per_set.items())}; "
           f"{result.n_permutations:,} partitions a layer, seed {result.seed}; Holm across the layers.")
st.dataframe(result.to_records(), column_config=COLUMNS, hide_index=True, key="bias_table")
if result.baseline_table:
    st.markdown(f"**The same test on a random-weight copy** of {name} (untrained: what pixel statistics alone give)")
    st.dataframe(result.to_records(baseline=True), column_config=COLUMNS, hide_index=True, key="bias_baseline")
summary = {"model": name, "checkpoint": path, "source": source, **result.to_dict(),
           "likelihood": lik.to_dict() if lik else None}
st.download_button("Download the result (JSON)", json.dumps(summary, indent=1, default=str),
                   file_name="bias_result.json", mime="application/json")
