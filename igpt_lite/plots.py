"""Every figure igpt-lite draws, built from plain arrays and tables. The app, the notebooks and the
CLI call these, so a figure looks the same everywhere.

Image grids are PIL images (for PNG files and st.image); charts are plotly figures.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, ncols: int | None = None, scale: int | None = None, pad: int = 1,
               pad_value: int = 128) -> Image.Image:
    """uint8 N×H×W×C (or N×H×W) images tiled row-major into one enlarged PIL image
    (by default each image is drawn about 100 pixels wide)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    scale = scale or max(1, 100 // max(h, w))
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, ncols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = img
    canvas = canvas.repeat(scale, 0).repeat(scale, 1)
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def completion_grid(originals: np.ndarray, completions: np.ndarray, keep_rows: int,
                    scale: int | None = None) -> Image.Image:
    """One row per image: the original with rows below `keep_rows` greyed out, then its completions,
    then the original.  originals N×H×W×C, completions N×S×H×W×C (uint8)."""
    originals = np.asarray(originals)
    shown = originals.copy()
    shown[:, keep_rows:] = 128
    n, s = completions.shape[:2]
    rows = np.concatenate([shown[:, None], completions, originals[:, None]], axis=1)
    return image_grid(rows.reshape(n * (s + 2), *originals.shape[1:]), ncols=s + 2, scale=scale)



CUT_COLOR = (255, 40, 40)


def cut_preview(image: np.ndarray, keep_rows: int, scale: int | None = None, dim: float = 0.35) -> Image.Image:
    """One uint8 H×W[×C] image enlarged (nearest neighbour, about 200 pixels wide by default) with the
    rows from `keep_rows` down dimmed and a red line at the cut: what a completion keeps."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    h, w = image.shape[:2]
    if not 0 <= keep_rows <= h:
        raise ValueError(f"keep_rows must lie in 0..{h}, got {keep_rows}")
    scale = scale or max(1, 200 // max(h, w))
    rgb = image.repeat(3, -1) if image.shape[-1] == 1 else image[..., :3]
    big = rgb.repeat(scale, 0).repeat(scale, 1).astype(np.float32)
    big[keep_rows * scale :] *= dim
    big = big.astype(np.uint8)
    line = min(max(keep_rows * scale - 1, 0), h * scale - 2)  # two pixels thick, inside the image
    big[line : line + 2] = CUT_COLOR
    return Image.fromarray(big)

# ---- attention (igpt_lite/attention.py computes the arrays) ----

AR_NOTE = "autoregressive: a pixel sees only the pixels before it"
# transparent where attention is zero, so the image shows through; opaque yellow at the maximum
_ATTENTION_SCALE = [[0.0, "rgba(255,40,0,0)"], [0.15, "rgba(255,40,0,0.35)"], [0.5, "rgba(255,120,0,0.75)"],
                    [1.0, "rgba(255,255,0,1)"]]
_QUERY_COLOR = "#00e5ff"


def _rgb(image: np.ndarray, dim: float = 0.6) -> np.ndarray:
    """uint8 H×W[×C] -> dimmed uint8 H×W×3, so the attention colours stand out on white strokes."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = image.repeat(3, -1)
    return (image.astype(np.float32) * dim).astype(np.uint8)


def _attention_panel(fig, z, row, col, pixel, image, visible, zmax, marker_px, colorbar=None):
    """One map over the image: the image, the weights, the unseen pixels greyed, the query marked.
    (Traces go in with one add_traces and the axes are set on the layout directly: plotly's
    per-subplot update_xaxes/add_trace calls made a 4×5 grid take ~1 s to build.)"""
    import plotly.graph_objects as go

    # float32: plotly sends numpy arrays as typed binary, so a 6×5 grid of float64 maps was ~0.5 MB
    # for the browser to take in on every click; single precision is far more than a colour needs
    z = np.asarray(z, dtype=np.float32)
    h, w = z.shape
    traces = [go.Image(z=_rgb(image), hoverinfo="skip")] if image is not None else []
    traces.append(go.Heatmap(z=z, zmin=0, zmax=zmax if zmax > 0 else 1, colorscale=_ATTENTION_SCALE,
                             showscale=colorbar is not None, colorbar=colorbar,
                             hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>"))
    if visible is not None:
        hidden = np.where(np.asarray(visible), np.nan, 1.0).astype(np.float32)
        traces.append(go.Heatmap(z=hidden, zmin=0, zmax=1, showscale=False, hoverinfo="skip",
                                 colorscale=[[0, "rgba(128,128,128,0.55)"], [1, "rgba(128,128,128,0.55)"]]))
    traces.append(go.Scatter(x=[pixel[1]], y=[pixel[0]], mode="markers", hoverinfo="skip", showlegend=False,
                             marker=dict(symbol="square-open", size=marker_px, color=_QUERY_COLOR,
                                         line=dict(width=2, color=_QUERY_COLOR))))
    fig.add_traces(traces, rows=row, cols=col)
    sub = fig.get_subplot(row, col)
    x_name = sub.xaxis.plotly_name.replace("axis", "")  # "xaxis3" -> "x3"
    axis = dict(showticklabels=False, ticks="", showgrid=False, zeroline=False)
    sub.xaxis.update(range=[-0.5, w - 0.5], **axis)
    sub.yaxis.update(range=[h - 0.5, -0.5], scaleanchor=x_name, **axis)  # square pixels, row 0 at the top


def _uniform_floor(visible, shape, has_start: bool) -> float:
    """3× the weight each key gets from attention spread evenly over all it can see: a colour scale
    never tops out below this, so even spreading looks faint rather than uniformly bright."""
    n_keys = (int(np.sum(visible)) if visible is not None else int(np.prod(shape))) + has_start
    return 3.0 / max(n_keys, 1)


def _title(title: str, objective: str | None, *notes: str) -> tuple[dict, int]:
    """A title with small note lines under it, hung from the top, and the top margin it needs
    (one short note a line: narrow figures clip long lines)."""
    lines = [AR_NOTE + " (greyed: unseen)"] if objective == "ar" else []
    lines += ["query pixel in cyan", *notes]
    text = f"{title}<br><sup>{'<br>'.join(lines)}</sup>"
    title = dict(text=text, x=0.02, xanchor="left", y=1, yref="container", yanchor="top", pad=dict(t=14))
    return title, 50 + 22 * len(lines)


def attention_grid(att, layers=None, panel_px: int = 120):
    """Layers (rows) × heads (columns) of attention maps from one query pixel, over the image, and
    a last "mean" column; `att` is an attention.AttentionMaps (its `image` is drawn under the maps,
    the pixels its query cannot see are greyed). `layers`: the rows to draw (default all), e.g.
    [3] with a larger panel_px for one layer enlarged.
    Each panel is scaled to its own maximum (titles give it), so weak heads still show where they
    look; but never to less than 3× the uniform weight, so a head that spreads its attention evenly
    looks faint instead of uniformly bright."""
    from plotly.subplots import make_subplots

    maps = np.asarray(att.maps, dtype=float)
    layer_ids = list(range(len(maps))) if layers is None else [int(l) for l in layers]
    bad = [l for l in layer_ids if not 0 <= l < len(maps)]
    if bad:
        raise ValueError(f"layer {bad[0]} does not exist: the model has layers 0..{len(maps) - 1}")
    pixel, image, visible, start = att.pixel, att.image, att.visible, att.start
    n_layer, n_head, h, w = len(layer_ids), maps.shape[1], maps.shape[2], maps.shape[3]
    panels = [[maps[l, k] for k in range(n_head)] + [np.asarray(att.head_mean[l], dtype=float)] for l in layer_ids]
    starts = [[None if start is None else start[l][k] for k in range(n_head)]
              + [None if att.head_mean_start is None else att.head_mean_start[l]] for l in layer_ids]
    names = [f"H{k}" for k in range(n_head)] + ["mean"]
    n_col = len(names)
    titles = []
    for row, l in enumerate(layer_ids):
        for k, name in enumerate(names):
            s = "" if starts[row][k] is None else f", s {float(starts[row][k]):.2g}"
            titles.append(f"L{l} {name}<br>max {panels[row][k].max():.2g}{s}")
    gap_x, gap_y = 12, 40  # pixels between panels; the vertical gap holds the two-line panel titles
    width, plot_h = max(n_col * (panel_px + gap_x) + 60, 480), n_layer * (panel_px + gap_y)
    fig = make_subplots(rows=n_layer, cols=n_col, subplot_titles=titles,
                        horizontal_spacing=gap_x / (width - 60), vertical_spacing=gap_y / plot_h)
    floor = _uniform_floor(visible, (h, w), start is not None)
    marker_px = max(6, int(0.8 * panel_px / max(h, w)))
    for l in range(n_layer):
        for k in range(n_col):
            z = panels[l][k]
            _attention_panel(fig, z, l + 1, k + 1, pixel, image, visible, float(max(z.max(), floor)), marker_px)
    fig.update_annotations(font_size=10)
    notes = ["each panel scaled to its max (at least 3× the uniform weight)"]
    if start is not None:
        notes.append("s = weight on the start token")
    which = "layer × head" if n_layer > 1 else f"layer {layer_ids[0]}, each head"
    title, top = _title(f"Attention from pixel (row {pixel[0]}, col {pixel[1]}), {which}", att.objective, *notes)
    fig.update_layout(title=title, width=width, height=plot_h + top + 30,
                      showlegend=False, margin=dict(l=30, r=30, t=top + 10, b=20), plot_bgcolor="white")
    return fig


def attention_rollout_figure(att, size_px: int = 480, cap_top: bool = True):
    """The rollout map of an attention.AttentionMaps (attention flow through all layers, residual
    included) over its image.

    The residual term keeps a large share on the query's own position (in an ar model that holds
    the pixel just before it), which would wash out everything else: with cap_top the colour scale
    stops at the second-largest weight, and the title gives the capped one. Like the grid, the
    scale never tops out below 3× the uniform weight."""
    from plotly.subplots import make_subplots

    pixel, image, visible, start = att.pixel, att.image, att.visible, att.rollout_start
    z = np.asarray(att.rollout, dtype=float)
    h, w = z.shape
    ranked = np.sort(z.ravel())
    zmax, notes = ranked[-1], []
    if cap_top and len(ranked) > 1 and ranked[-2] > 0:
        zmax = ranked[-2]
        top_r, top_c = np.unravel_index(int(np.argmax(z)), z.shape)
        notes.append(f"colours capped at the 2nd-largest weight; ({top_r}, {top_c}) holds {ranked[-1]:.2g}")
    zmax = max(zmax, _uniform_floor(visible, z.shape, start is not None))
    fig = make_subplots(rows=1, cols=1)
    _attention_panel(fig, z, 1, 1, pixel, image, visible, zmax, max(8, int(0.8 * size_px / max(h, w))),
                     colorbar=dict(title="weight", thickness=12))
    extra = "" if start is None else f"; start token {start:.2g}"
    title, top = _title(f"Attention rollout to pixel (row {pixel[0]}, col {pixel[1]}){extra}", att.objective, *notes)
    fig.update_layout(title=title, width=size_px + 140, height=size_px + top + 30, margin=dict(l=20, r=20, t=top, b=20),
                      plot_bgcolor="white")
    return fig


def attention_distance_chart(values: np.ndarray, ylabel: str = "mean attention distance (pixels)",
                             title: str = "Mean attention distance per head"):
    """One point per head at each layer (L × heads values) and a line through the layer means.
    Also fits per-head entropy: pass ylabel/title."""
    import plotly.graph_objects as go

    v = np.asarray(values, dtype=float)
    n_layer, n_head = v.shape
    layers = np.arange(n_layer)
    fig = go.Figure()
    for k in range(n_head):  # small sideways offsets keep heads with equal values apart
        offset = (k - (n_head - 1) / 2) * min(0.08, 0.6 / n_head)
        fig.add_trace(go.Scatter(x=layers + offset, y=v[:, k], mode="markers", name=f"head {k}",
                                 marker=dict(size=9, opacity=0.85),
                                 customdata=layers, hovertemplate=f"layer %{{customdata}}, head {k}: %{{y:.3f}}"
                                                                  "<extra></extra>"))
    fig.add_trace(go.Scatter(x=layers, y=np.nanmean(v, 1), mode="lines+markers", name="layer mean",
                             line=dict(color="black", width=2), marker=dict(symbol="diamond", size=8, color="black")))
    fig.update_layout(title=title, xaxis=dict(title="layer", tickmode="array", tickvals=layers),
                      yaxis=dict(title=ylabel, rangemode="tozero"), width=760, height=440,
                      template="plotly_white", legend=dict(orientation="v"))
    return fig


def pixel_picker(image: np.ndarray, size_px: int = 320, title: str = "click a pixel"):
    """The image as a grid of square scatter markers, one per pixel (x = column, y = row, row 0 at
    the top), for choosing a pixel with a click: Streamlit returns a scatter's selected points
    (`on_select`), not a heatmap's. The figure depends on the image only, so it stays identical
    while results elsewhere change (Streamlit resets a chart's selection when its figure changes)."""
    import plotly.graph_objects as go

    rgb = np.asarray(image)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    h, w = rgb.shape[:2]
    rgb = rgb.repeat(3, -1) if rgb.shape[-1] == 1 else rgb[..., :3]
    rows, cols = np.divmod(np.arange(h * w), w)
    colors = [f"rgb({r},{g},{b})" for r, g, b in rgb.reshape(-1, 3)]
    cell = size_px / max(h, w)
    fig = go.Figure(go.Scatter(x=cols, y=rows, mode="markers", customdata=np.stack([rows, cols], 1),
                               marker=dict(symbol="square", size=cell, color=colors, line=dict(width=0)),
                               hovertemplate="row %{y}, col %{x}<extra></extra>",
                               selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1))))
    margin = dict(l=28, r=8, t=30 if title else 8, b=24)
    fig.update_xaxes(range=[-0.5, w - 0.5], showgrid=False, zeroline=False, tickmode="auto", nticks=5,
                     fixedrange=True, constrain="domain")
    fig.update_yaxes(range=[h - 0.5, -0.5], showgrid=False, zeroline=False, nticks=5, fixedrange=True,
                     scaleanchor="x", constrain="domain")
    fig.update_layout(title=dict(text=title, font_size=13) if title else None, clickmode="event+select",
                      dragmode=False, width=size_px + margin["l"] + margin["r"],
                      height=size_px * h / max(h, w) + margin["t"] + margin["b"], margin=margin,
                      plot_bgcolor="white", showlegend=False)
    return fig


def picked_pixel(selection) -> tuple[int, int] | None:
    """(row, col) of the last point clicked in a `pixel_picker` figure, from Streamlit's selection
    state (a dict with "points", each carrying x = column and y = row), or None when nothing is."""
    points = (selection or {}).get("points") or []
    if not points:
        return None
    p = points[-1]
    return int(round(p["y"])), int(round(p["x"]))

def figures_html(figures, title: str = "igpt-lite", modebar: bool = True) -> str:
    """Several plotly figures on one self-contained page (plotly.js inline once: works offline).
    modebar=False hides plotly's toolbar (for screenshots)."""
    config = {"displaylogo": False, "displayModeBar": "hover" if modebar else False}
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), config=config) for i, fig in enumerate(figures)]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body style='font-family:sans-serif'>{''.join(parts)}</body></html>")


CHROMIUM = "/usr/bin/chromium"  # Debian's package; PNGs are skipped (with a note) without it


def save_figures(figures, html_path, title: str = "igpt-lite", png: bool = True) -> list[str]:
    """Write the figures to one self-contained HTML page and, where headless Chromium exists and
    `png` is set, a PNG screenshot of a toolbar-free copy beside it (same name, .png).
    Returns the paths written."""
    import subprocess
    import sys
    from pathlib import Path

    html = Path(html_path)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(figures_html(figures, title=title))
    written = [str(html)]
    if not png or not Path(CHROMIUM).exists():
        return written
    shot = html.with_name(f".{html.stem}_shot.html")
    shot.write_text(figures_html(figures, modebar=False))
    out = html.with_suffix(".png")
    width = max(f.layout.width or 700 for f in figures) + 40
    height = sum(f.layout.height or 450 for f in figures) + 40
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           "--virtual-time-budget=5000",  # let plotly finish drawing before the shot
           f"--screenshot={out.resolve()}", f"--window-size={width},{height}", shot.resolve().as_uri()]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        if out.exists():
            written.append(str(out))
    except (subprocess.SubprocessError, OSError) as e:
        print(f"no PNG for {html.name}: {e}", file=sys.stderr)
    finally:
        shot.unlink(missing_ok=True)
    return written


# ---- bias probes (igpt_lite/bias.py computes the table) ----

def bias_per_layer_chart(table: list[dict], title: str = "iEAT per layer", alpha: float = 0.05):
    """Effect size d (top) and Holm-adjusted p-value (bottom, log scale) per layer, from the rows of
    `bias.ieat_per_layer` (layer, effect_size, p_value, p_holm). Rows with a "model" key draw one
    line per model, e.g. the figures models trained at p = 0.5 and p = 0.9."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("effect size d", f"Holm-adjusted p-value (dotted: {alpha})"))
    import plotly.colors

    models = list(dict.fromkeys(row.get("model", "") for row in table))
    palette = plotly.colors.qualitative.Plotly
    for i, model in enumerate(models):
        color = palette[i % len(palette)]  # one colour per model in both panels
        rows = [r for r in table if r.get("model", "") == model]
        layers = [str(r["layer"]) for r in rows]
        p_holm = np.array([r["p_holm"] for r in rows], dtype=float)
        hover = [f"{model + ' ' if model else ''}{r['layer']}: d={r['effect_size']:.3f}, p={r['p_value']:.3g}, "
                 f"Holm p={r['p_holm']:.3g} ({'exact' if r.get('exact') else 'sampled'}, "
                 f"{r.get('n_permutations', '?')} partitions)" for r in rows]
        fig.add_trace(go.Scatter(x=layers, y=[r["effect_size"] for r in rows], mode="lines+markers",
                                 name=model or "d", legendgroup=model, hovertext=hover, hoverinfo="text",
                                 line=dict(color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=layers, y=p_holm, mode="lines+markers", name=model or "Holm p", legendgroup=model,
                                 showlegend=False, hovertext=hover, hoverinfo="text", line=dict(color=color),
                                 # filled markers where the layer is significant after adjustment
                                 marker=dict(symbol=["circle" if p < alpha else "circle-open" for p in p_holm],
                                             size=9)), row=2, col=1)
    fig.add_hline(y=0, line=dict(color="grey", width=1), row=1, col=1)
    for d in (-0.8, 0.8):  # Cohen's "large" effect, the usual yardstick in iEAT/WEAT tables
        fig.add_hline(y=d, line=dict(color="grey", width=1, dash="dot"), row=1, col=1)
    fig.add_hline(y=alpha, line=dict(color="firebrick", width=1, dash="dot"), row=2, col=1)
    # decades only (minor log ticks clutter), from 1 down to at least 0.001 so alpha sits inside
    smallest = min([r["p_holm"] for r in table] + [1e-3])
    fig.update_yaxes(type="log", dtick=1, exponentformat="power", range=[np.floor(np.log10(smallest)) - 0.2, 0.1],
                     row=2, col=1)
    fig.update_xaxes(title="layer", row=2, col=1)
    fig.update_layout(title=title, width=760, height=560, template="plotly_white",
                      legend=dict(orientation="h", y=-0.15))
    return fig


# ---- linear probes (igpt_lite/probe.py computes the tables) ----

_BASELINE_STYLE = {"pixels": ("raw pixels", "#7f7f7f", "dash"), "palette": ("palette pixels", "#bcbd22", "dot")}


def _layer_axis(rows: list[dict]) -> list[str]:
    """Layer names in depth order (embed, blocks.0, ..., ln_f), from the rows that have a depth."""
    depth = {r["layer"]: r["depth"] for r in rows if r.get("depth") is not None}
    return sorted(depth, key=depth.get)


def _probe_hover(r: dict, prefix: str = "") -> str:
    edge = " (at the grid's edge)" if r.get("C_at_edge") else ""
    return (f"{prefix}{r['layer']}: test {100 * r['test_acc']:.1f} ± {100 * r['test_stderr']:.1f}%, "
            f"val {100 * r['val_acc']:.1f}%, train {100 * r['train_acc']:.1f}%, C={r['C']:.3g}{edge}")


def _probe_curve(fig, rows: list[dict], name: str, color: str, dash: str = "solid", width: float = 2.5, **kw):
    import plotly.graph_objects as go

    rows = sorted(rows, key=lambda r: r["depth"])
    fig.add_trace(go.Scatter(x=[r["layer"] for r in rows], y=[100 * r["test_acc"] for r in rows], name=name,
                             mode="lines+markers", line=dict(color=color, dash=dash, width=width),
                             error_y=dict(type="data", array=[100 * r["test_stderr"] for r in rows], thickness=1),
                             hovertext=[_probe_hover(r, f"{name}, ") for r in rows], hoverinfo="text", **kw))


def _probe_baselines(fig, table: list[dict]):
    """The random-weight curve and the pixel baselines (horizontal lines across the layers, in the
    legend, ± their standard error shaded)."""
    import plotly.graph_objects as go

    random = [r for r in table if r["kind"] == "random"]
    if random:
        _probe_curve(fig, random, f"random weights (seed {random[0].get('seed', '?')})", "#d62728", dash="dash",
                     width=1.5, legendrank=900)
    layers = _layer_axis(table)
    for r in table:
        if r["kind"] in _BASELINE_STYLE and layers:
            label, color, dash = _BASELINE_STYLE[r["kind"]]
            acc, se = 100 * r["test_acc"], 100 * r["test_stderr"]
            fig.add_hrect(y0=acc - se, y1=acc + se, fillcolor=color, opacity=0.12, line_width=0)
            fig.add_trace(go.Scatter(x=[layers[0], layers[-1]], y=[acc, acc], mode="lines", legendrank=901,
                                     name=f"{label}: {acc:.1f} ± {se:.1f}%",
                                     line=dict(color=color, dash=dash, width=2),
                                     hovertext=_probe_hover(r), hoverinfo="text"))


def _probe_layout(fig, table: list[dict], title: str, notes: list[str]):
    edge = sum(bool(r.get("C_at_edge")) for r in table)
    if edge:
        notes = notes + [f"{edge} probe(s) chose a C at the edge of the grid: widen it"]
    n = next((r for r in table if "n_test" in r), {})
    notes = [f"test accuracy ± standard error (n_test = {n.get('n_test', '?')}); C chosen on validation"] + notes
    fig.update_layout(title=dict(text=f"{title}<br><sup>{'<br>'.join(notes)}</sup>", x=0.02, xanchor="left"),
                      xaxis=dict(title="layer", type="category", categoryorder="array",
                                 categoryarray=_layer_axis(table)),
                      yaxis=dict(title="linear probe accuracy (%)"), width=800, height=480 + 18 * len(notes),
                      margin=dict(t=70 + 18 * len(notes)), template="plotly_white",
                      legend=dict(orientation="h", y=-0.18))
    return fig


def probe_depth_chart(table: list[dict], title: str = "Linear probe accuracy versus depth"):
    """Test accuracy per layer (error bars: its standard error) of the trained model, the same
    architecture with random weights, and raw / palette pixels as horizontal lines, from the rows
    of `probe.probe_model` (kind, layer, depth, test_acc, test_stderr, val_acc, train_acc, C).
    Tables over several checkpoints (a `step` column) show the latest step. Rows with the kNN
    read-out (`knn_test_acc`, `knn_test_stderr`) add the trained model's kNN curve beside it."""
    import plotly.graph_objects as go

    trained = [r for r in table if r["kind"] == "trained"]
    steps = [r["step"] for r in trained if r.get("step") is not None]
    if steps:
        trained = [r for r in trained if r.get("step") == max(steps)]
    fig = go.Figure()
    _probe_baselines(fig, table)
    suffix = f" (step {max(steps)})" if steps else ""
    if trained:
        _probe_curve(fig, trained, "trained" + suffix, "#1f77b4", legendrank=1)
    knn = sorted((r for r in trained if r.get("knn_test_acc") is not None), key=lambda r: r["depth"])
    if knn:
        fig.add_trace(go.Scatter(
            x=[r["layer"] for r in knn], y=[100 * r["knn_test_acc"] for r in knn], mode="lines+markers",
            name=f"trained, kNN (k = {knn[0].get('knn_k', '?')}){suffix}", legendrank=2,
            line=dict(color="#17becf", dash="dashdot", width=2.5), marker=dict(symbol="diamond"),
            error_y=dict(type="data", array=[100 * r["knn_test_stderr"] for r in knn], thickness=1),
            hovertext=[f"kNN, {r['layer']}: test {100 * r['knn_test_acc']:.1f} ± {100 * r['knn_test_stderr']:.1f}%, "
                       f"val {100 * r['knn_val_acc']:.1f}%" for r in knn], hoverinfo="text"))
    fig = _probe_layout(fig, table, title, [])
    if knn:
        fig.update_yaxes(title="probe accuracy (%): logistic regression and kNN")
    return fig


def probe_checkpoints_chart(table: list[dict], title: str = "Linear probe accuracy over training"):
    """One depth curve per checkpoint (rows of `probe.probe_checkpoints`: trained rows with a `step`
    column), light to dark with training, over the same baselines as `probe_depth_chart`."""
    import plotly.colors
    import plotly.graph_objects as go

    steps = sorted({r["step"] for r in table if r["kind"] == "trained"})
    colors = plotly.colors.sample_colorscale("Blues", [0.35 + 0.65 * i / max(len(steps) - 1, 1)
                                                       for i in range(len(steps))])
    fig = go.Figure()
    _probe_baselines(fig, table)
    for step, color in zip(steps, colors):
        _probe_curve(fig, [r for r in table if r["kind"] == "trained" and r["step"] == step], f"step {step}", color,
                     legendrank=1)
    return _probe_layout(fig, table, title, [])


def umap_scatter(embedding: np.ndarray, labels, class_names=None, title: str = "UMAP of the features"):
    """A 2-D embedding (N×2, e.g. `probe.umap_embedding`) as points coloured by label."""
    import plotly.colors
    import plotly.graph_objects as go

    xy = np.asarray(embedding, dtype=float)
    labels = np.asarray(labels)
    colors = plotly.colors.qualitative.D3 + plotly.colors.qualitative.Alphabet
    fig = go.Figure()
    for i, label in enumerate(np.unique(labels)):
        name = class_names[int(label)] if class_names is not None else str(label)
        pts = xy[labels == label]
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=name,
                                 marker=dict(size=5, opacity=0.8, color=colors[i % len(colors)]),
                                 hovertemplate=f"{name}<extra></extra>"))
    fig.update_layout(title=title, width=640, height=560, template="plotly_white",
                      xaxis=dict(showticklabels=False, title=""), yaxis=dict(showticklabels=False, title="",
                                                                            scaleanchor="x"))
    return fig


# ---- teaching figures (notebooks 04 and 05) ----

def _bool_panels(masks: dict) -> dict:
    """{name: 2-D bool array}, all of one shape, or a ValueError saying what came instead."""
    masks = {name: np.asarray(m, dtype=bool) for name, m in masks.items()}
    shapes = {m.shape for m in masks.values()}
    if not masks or len(shapes) > 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"masks must be one or more H×W bool arrays of one shape, got shapes "
                         f"{ {name: m.shape for name, m in masks.items()} }")
    return masks


def visibility_figure(masks: dict, pixel, image: np.ndarray | None = None, panel_px: int = 260):
    """What one query pixel may attend to, a panel per objective, e.g. {"ar": H×W bool, "bert": H×W
    bool} from attention.visible_pixels: the image where the query can see, greyed where it cannot,
    the query marked. Panel titles count the pixels seen."""
    from plotly.subplots import make_subplots

    masks = _bool_panels(masks)
    titles = [f"{name}: sees {int(m.sum())} of {m.size} pixels" for name, m in masks.items()]
    h, w = next(iter(masks.values())).shape
    gap = 30
    width = len(masks) * (panel_px + gap) + 40
    fig = make_subplots(rows=1, cols=len(masks), subplot_titles=titles, horizontal_spacing=gap / width)
    for i, m in enumerate(masks.values()):
        _attention_panel(fig, np.zeros(m.shape), 1, i + 1, pixel, image, m, 1.0, max(8, int(0.8 * panel_px / max(h, w))))
    title, top = _title(f"Pixels that pixel (row {pixel[0]}, col {pixel[1]}) can attend to", None,
                        "greyed: masked out of its attention")
    fig.update_layout(title=title, width=width, height=panel_px + top + 40, showlegend=False,
                      margin=dict(l=20, r=20, t=top + 10, b=20), plot_bgcolor="white")
    return fig


def permutation_chart(statistics, observed: float, title: str = "The permutation test"):
    """Histogram of a test statistic over re-partitions of X ∪ Y (e.g. all 70 splits of 4 + 4), those
    at least as large as the observed one in red, the observed value marked: the one-sided p-value is
    the red share. Ties (within 1e-9 of the spread) count as "at least"."""
    import plotly.graph_objects as go

    stats = np.asarray(statistics, dtype=float).ravel()
    if stats.size == 0 or not np.isfinite(stats).all() or not np.isfinite(observed):
        raise ValueError("permutation_chart needs one or more finite statistics and a finite observed value")
    tol = 1e-9 * max(np.ptp(stats), 1e-12)
    high = stats >= observed - tol
    lo, hi = stats.min(), stats.max()
    size = (hi - lo) / 20 if hi > lo else 1.0
    bins = dict(start=lo - size / 2, end=hi + size / 2, size=size)
    fig = go.Figure()
    for part, name, color in ((stats[~high], "smaller than observed", "#9e9e9e"),
                              (stats[high], "at least the observed", "#d62728")):
        fig.add_trace(go.Histogram(x=part, xbins=bins, name=f"{name}: {len(part)}", marker_color=color))
    fig.add_vline(x=observed, line=dict(color="black", width=2, dash="dash"),
                  annotation_text=f"observed {observed:.3g}", annotation_position="top")
    p = high.mean()
    fig.update_layout(title=dict(text=f"{title}<br><sup>one-sided p = {high.sum()} / {len(stats)} = {p:.3g}</sup>"),
                      barmode="stack", xaxis_title="test statistic", yaxis_title="partitions", width=700,
                      height=420, template="plotly_white", legend=dict(orientation="h", y=-0.2))
    return fig


# ---- teaching figures (notebooks 01-03) ----

def training_curve(history: list[dict], baseline_bpd: float | None = None, title: str = "Bits per pixel during training"):
    """Train and validation bits/dim against the step, from a training history (the rows `train`
    returns and checkpoints keep: step, train_bpd, val_bpd), with the palette-entropy baseline (what
    a model that learned only the colour frequencies gets) as a dashed line. An empty history draws
    the empty axes (a live plot's first frame)."""
    import plotly.graph_objects as go

    steps = [h["step"] for h in history]
    fig = go.Figure()
    for key, name, color in (("train_bpd", "train (running mean)", "#1f77b4"), ("val_bpd", "validation", "#ff7f0e")):
        fig.add_trace(go.Scatter(x=steps, y=[h.get(key) for h in history], mode="lines+markers", name=name,
                                 line=dict(color=color, width=2.5)))
    if baseline_bpd is not None:
        fig.add_hline(y=baseline_bpd, line=dict(color="#7f7f7f", dash="dash"),
                      annotation_text=f"palette entropy {baseline_bpd:.3f}", annotation_position="top right")
    note = f"last validation: {history[-1]['val_bpd']:.3f} bits/dim at step {steps[-1]}" if history else "waiting…"
    fig.update_layout(title=dict(text=f"{title}<br><sup>{note}</sup>"), xaxis_title="step",
                      yaxis=dict(title="bits per pixel", rangemode="tozero"), width=760, height=420,
                      template="plotly_white", legend=dict(orientation="h", y=-0.2))
    return fig


def raster_sequence_figure(tokens: np.ndarray, colors: np.ndarray, title: str = "An image as a sequence of tokens"):
    """One image's tokens (H×W ids) drawn in their palette colours (colors: uint8 k×C) with each
    pixel's id written on it and its place in the raster sequence on hover: the model reads row
    0 left to right, then row 1, and so on."""
    import plotly.graph_objects as go

    t = np.asarray(tokens)
    h, w = t.shape
    rgb = np.asarray(colors)[t]
    rgb = rgb.repeat(3, -1) if rgb.shape[-1] == 1 else rgb
    order = np.arange(h * w).reshape(h, w)
    light = rgb.astype(float).mean(-1) > 128
    fig = go.Figure(go.Image(z=rgb, customdata=np.stack([order, t], -1),
                             hovertemplate="row %{y}, col %{x}: token %{customdata[1]}, "
                                           "position %{customdata[0]} in the sequence<extra></extra>"))
    for r in range(h):
        for c in range(w):
            fig.add_annotation(x=c, y=r, text=str(t[r, c]), showarrow=False,
                               font=dict(size=9, color="black" if light[r, c] else "white"))
    fig.update_xaxes(showticklabels=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, showgrid=False)
    side = max(300, 28 * max(h, w))
    fig.update_layout(title=dict(text=f"{title}<br><sup>{h}×{w} pixels → {h * w} tokens, read row by row</sup>"),
                      width=side + 40, height=side + 90, margin=dict(l=20, r=20, t=80, b=10))
    return fig


def attention_mask_chart(masks: dict, title: str = "Which position may attend to which"):
    """Attention masks as query × key grids, a panel per objective, e.g. {"ar": T×T bool, "bert": T×T
    bool} (True = may attend), such as the non-zero entries of a model's attention pattern. Position
    0 is the first input: the start token for an ar model."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    masks = _bool_panels(masks)
    titles = [f"{name}: {int(m.sum())} of {m.size} pairs allowed" for name, m in masks.items()]
    fig = make_subplots(rows=1, cols=len(masks), subplot_titles=titles, horizontal_spacing=0.08)
    for i, m in enumerate(masks.values()):
        fig.add_trace(go.Heatmap(z=m.astype(int), zmin=0, zmax=1, showscale=False, xgap=1, ygap=1,
                                 colorscale=[[0, "#eeeeee"], [1, "#1f77b4"]],
                                 hovertemplate="query %{y}, key %{x}: %{z}<extra></extra>"), row=1, col=i + 1)
        fig.update_xaxes(title="key position", row=1, col=i + 1)
        fig.update_yaxes(title="query position" if i == 0 else None, autorange="reversed",
                         scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)
    fig.update_layout(title=dict(text=f"{title}<br><sup>blue: may attend; grey: masked; "
                                 "an ar model's position 0 is its start token</sup>"),
                      width=360 * len(masks) + 80, height=440, template="plotly_white")
    return fig


def probe_reference_chart(table: list[dict], reference: dict, title: str = "Probe accuracy versus relative depth"):
    """Our trained model's probe curve (rows of `probe.probe_model`) next to a published one
    (`reference`: name, source, protocol, n_layers, accuracy {hidden-state index: accuracy in [0, 1]}), both
    against relative depth (0 = embeddings, 1 = the final norm's output), since the models differ
    in depth; on different tasks, so compare shapes, not heights."""
    import plotly.graph_objects as go

    trained = sorted((r for r in table if r["kind"] == "trained"), key=lambda r: r["depth"])
    steps = [r["step"] for r in trained if r.get("step") is not None]
    if steps:
        trained = [r for r in trained if r.get("step") == max(steps)]
    last = max(r["depth"] for r in trained)
    ref = sorted(reference["accuracy"].items())
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[i / reference["n_layers"] for i, _ in ref], y=[100 * a for _, a in ref],
                             mode="lines+markers", name=reference["name"], line=dict(color="#9467bd", width=2.5),
                             hovertext=[f"hidden state {i}: {100 * a:.1f}%" for i, a in ref], hoverinfo="text"))
    fig.add_trace(go.Scatter(x=[r["depth"] / last for r in trained], y=[100 * r["test_acc"] for r in trained],
                             mode="lines+markers", name="ours (test accuracy)", line=dict(color="#1f77b4", width=2.5),
                             error_y=dict(type="data", array=[100 * r["test_stderr"] for r in trained], thickness=1),
                             hovertext=[_probe_hover(r) for r in trained], hoverinfo="text"))
    notes = f"reference: {reference['source']}<br>({reference.get('protocol', '')})"
    fig.update_layout(title=dict(text=f"{title}<br><sup>{notes}</sup>", x=0.02), margin=dict(t=110),
                      xaxis=dict(title="relative depth (0 = embeddings, 1 = final norm)", range=[-0.03, 1.03]),
                      yaxis_title="linear probe accuracy (%)", width=800, height=460, template="plotly_white",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def layer_view(table: list[dict], layer: str, embedding: np.ndarray, labels, class_names=None):
    """One layer's 2-D projection of the features (e.g. `probe.umap_embedding`) coloured by class,
    titled with that layer's probe accuracy (linear, and kNN where the table has it) and the
    random-weight copy's at the same layer: what the notebooks' layer slider shows."""
    rows = {r["kind"]: r for r in table if r["layer"] == layer and r["kind"] in ("trained", "random")
            and r.get("step") is None}
    if "trained" not in rows:
        raise ValueError(f"layer {layer!r} is not in the table: it has {', '.join(_layer_axis(table))}")
    r = rows["trained"]
    parts = [f"linear probe {100 * r['test_acc']:.1f} ± {100 * r['test_stderr']:.1f}%"]
    if r.get("knn_test_acc") is not None:
        parts.append(f"kNN {100 * r['knn_test_acc']:.1f}%")
    if "random" in rows:
        parts.append(f"random weights {100 * rows['random']['test_acc']:.1f}%")
    return umap_scatter(embedding, labels, class_names, title=f"{layer}: {', '.join(parts)}")


# ---- palette (igpt_lite/palette.py computes the reports) ----

def palette_swatches(colors: np.ndarray, usage=None, title: str = "Palette", ncols: int | None = None,
                     cell_px: int = 46):
    """One square swatch per palette colour (uint8 k×C, C = 1 grey or 3 RGB; e.g.
    `PaletteReport.colors`), in token order, each labelled with its token id and, with `usage`
    (share of pixels per colour, e.g. `PaletteReport.usage`), how much of the images it paints."""
    import plotly.graph_objects as go

    rgb = _rgb(np.asarray(colors, dtype=np.uint8)[:, None], dim=1.0)[:, 0]  # k×3
    k = len(rgb)
    ncols = ncols or min(k, 16)
    nrows = int(np.ceil(k / ncols))
    ids = np.arange(k)
    luma = rgb.astype(float) @ [0.299, 0.587, 0.114]
    share = [None] * k if usage is None else [float(u) for u in usage]
    label = [f"{i}" if u is None else f"{i}<br>{100 * u:.0f}%" for i, u in zip(ids, share)]
    hover = [f"token {i}: RGB ({r}, {g}, {b})" + ("" if u is None else f", {100 * u:.2f}% of pixels")
             for i, (r, g, b), u in zip(ids, rgb.tolist(), share)]
    fig = go.Figure(go.Scatter(
        x=(ids % ncols).tolist(), y=(ids // ncols).tolist(), mode="markers+text" if k <= 64 else "markers", text=label,
        textfont=dict(size=10, color=["black" if y > 140 else "white" for y in luma]),
        hovertext=hover, hoverinfo="text",
        marker=dict(symbol="square", size=cell_px - 6, color=[f"rgb({r},{g},{b})" for r, g, b in rgb.tolist()],
                    line=dict(width=1, color="#888"))))
    notes = f"{k} colours in token order" + ("" if usage is None else "; % = share of pixels")
    fig.update_layout(title=dict(text=f"{title}<br><sup>{notes}</sup>", x=0.02, xanchor="left"),
                      width=max(ncols * cell_px + 40, 360), height=nrows * cell_px + 110,
                      margin=dict(l=20, r=20, t=80, b=20), template="plotly_white", showlegend=False,
                      xaxis=dict(visible=False, range=[-0.6, ncols - 0.4]),
                      yaxis=dict(visible=False, range=[nrows - 0.4, -0.6]))
    return fig


def palette_sweep_chart(reports, current: int | None = None, title: str = "Palette size: error versus sequence cost"):
    """Round-trip error (left axis) and token entropy in bits (right axis) against the number of
    colours k, from `palette.palette_sweep` reports (n_colors, round_trip_error, token_entropy_bits).
    `current` marks a palette size, e.g. the checkpoint's own."""
    import plotly.graph_objects as go

    reports = sorted(reports, key=lambda r: r.n_colors)
    ks = [r.n_colors for r in reports]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ks, y=[r.round_trip_error for r in reports], name="round-trip error (0-255)",
                             mode="lines+markers", line=dict(color="#1f77b4", width=2.5),
                             hovertemplate="k=%{x}: mean |error| %{y:.2f} / 255<extra></extra>"))
    fig.add_trace(go.Scatter(x=ks, y=[r.token_entropy_bits for r in reports], name="token entropy (bits)",
                             mode="lines+markers", yaxis="y2", line=dict(color="#ff7f0e", width=2.5, dash="dash"),
                             hovertemplate="k=%{x}: %{y:.2f} bits per token<extra></extra>"))
    if current is not None:
        # a trace, not add_vline: on a log axis plotly places annotations at log10(x) but shapes at x
        top = max(r.round_trip_error for r in reports)
        fig.add_trace(go.Scatter(x=[current, current], y=[0, top], mode="lines", name=f"this model: {current} colours",
                                 line=dict(color="grey", width=1, dash="dot"), hoverinfo="skip"))
    fig.update_layout(title=dict(text=f"{title}<br><sup>fitted on the training split, measured on validation</sup>",
                                 x=0.02, xanchor="left"),
                      xaxis=dict(title="colours k", type="log", tickvals=ks, ticktext=[str(k) for k in ks]),
                      yaxis=dict(title="mean round-trip error (0-255)", rangemode="tozero", color="#1f77b4"),
                      yaxis2=dict(title="token entropy (bits)", overlaying="y", side="right", rangemode="tozero",
                                  color="#ff7f0e", showgrid=False),
                      width=760, height=440, margin=dict(t=80), template="plotly_white",
                      legend=dict(orientation="h", y=-0.2))
    return fig


# ---- probe accuracy against generative quality over a run (igpt_lite/probe.py: probe_checkpoints) ----

def _best_by_step(table: list[dict], acc: str, val: str) -> list[dict]:
    """Per step of a `probe_checkpoints` table (trained rows with `val_bpd`), the layer best on
    validation by `val`, as {step, val_bpd, layer, acc, stderr}; steps without val_bpd are left out."""
    out = []
    for step in sorted({r["step"] for r in table if r["kind"] == "trained" and r.get("step") is not None}):
        rows = [r for r in table if r["kind"] == "trained" and r.get("step") == step and r.get(val) is not None]
        if not rows or rows[0].get("val_bpd") is None:
            continue
        best = max(rows, key=lambda r: r[val])  # first of equals: the shallower layer
        out.append({"step": step, "val_bpd": best["val_bpd"], "layer": best["layer"], "acc": best[acc],
                    "stderr": best[f"{acc.rsplit('_', 1)[0]}_stderr"]})
    return out


def probe_bits_chart(table: list[dict], title: str = "Probe accuracy against validation bits/dim over training"):
    """The paper's link between generative and feature quality (Chen et al. 2020, fig. 3): for each
    checkpoint of a run (rows of `probe.probe_checkpoints`, with `step` and `val_bpd`), the test
    accuracy of the layer chosen on validation, logistic regression and (where the table has it)
    kNN, against the validation bits/dim training recorded at that step. The x axis runs from high
    to low bits/dim, so training goes left to right; the random-weight model's best layer and
    the pixel baselines are horizontal lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    curves = [("logistic regression", "test_acc", "val_acc", "#1f77b4", "solid"),
              ("kNN", "knn_test_acc", "knn_val_acc", "#17becf", "dashdot")]
    for name, acc, val, color, dash in curves:
        pts = _best_by_step(table, acc, val)
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[p["val_bpd"] for p in pts], y=[100 * p["acc"] for p in pts], name=f"{name} (best layer on val)",
            mode="lines+markers+text", text=[str(p["step"]) for p in pts], textposition="top center",
            textfont=dict(size=9, color=color), line=dict(color=color, dash=dash, width=2.5),
            error_y=dict(type="data", array=[100 * p["stderr"] for p in pts], thickness=1),
            hovertext=[f"step {p['step']}: {p['val_bpd']:.4f} bits/dim, {p['layer']} {100 * p['acc']:.1f} ± "
                       f"{100 * p['stderr']:.1f}%" for p in pts], hoverinfo="text"))
    baselines = [("random weights", "random", "#d62728", "dash", "top right"),
                 ("raw pixels", "pixels", "#7f7f7f", "dot", "bottom right")]  # labels apart: the lines may be close
    for label, kind, color, dash, where in baselines:
        rows = [r for r in table if r["kind"] == kind]
        if rows:
            best = max(rows, key=lambda r: r["val_acc"])
            fig.add_hline(y=100 * best["test_acc"], line=dict(color=color, dash=dash, width=1.5),
                          annotation_text=f"{label} ({best['layer']}): {100 * best['test_acc']:.1f}%",
                          annotation_position=where, annotation_font_size=10)
    n = next((r.get("n_test") for r in table if r.get("n_test")), "?")
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>test accuracy ± standard error (n_test = {n}) of the layer chosen on "
                        f"validation; labels: training step</sup>", x=0.02, xanchor="left"),
        xaxis=dict(title="validation bits/dim (lower is better; training goes left to right)", autorange="reversed"),
        yaxis=dict(title="probe accuracy (%)"), width=800, height=500, margin=dict(t=80), template="plotly_white",
        legend=dict(orientation="h", y=-0.2))
    return fig


class LiveFigure:
    """A plotly figure shown once in a notebook and redrawn in place, e.g. from train's on_eval:
    `chart = LiveFigure(fig)`, then `chart.update(new_fig)`. (Plotly's own display ignores IPython's
    display ids, so each redraw would add a new figure below the last.)"""

    def __init__(self, fig):
        from IPython.display import display

        self.handle = display(self._bundle(fig), raw=True, display_id=True)

    def update(self, fig) -> None:
        self.handle.update(self._bundle(fig), raw=True)

    @staticmethod
    def _bundle(fig) -> dict:
        # what plotly.io.show displays: the default renderers' bundle. (fig._repr_mimebundle_ names the
        # renderer, which makes plotly re-activate it: with the "notebook" renderer of HTML exports,
        # a 4.8 MB copy of plotly.js in every redraw.)
        import plotly.io as pio

        return pio.renderers._build_mime_bundle(fig.to_dict())
