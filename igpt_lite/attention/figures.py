"""Figures of attention: every layer and head from one pixel, rollout, distance per head, the
pixel picker, and the teaching figures of which pixels a position may see."""
from __future__ import annotations

import numpy as np

from ..figures import dimmed_rgb


AR_NOTE = "autoregressive: a pixel sees only the pixels before it"


def _title(title: str, objective: str | None, *notes: str) -> tuple[dict, int]:
    """A title with small note lines under it, hung from the top, and the top margin it needs
    (one short note a line: narrow figures clip long lines)."""
    lines = [AR_NOTE + " (greyed: unseen)"] if objective == "ar" else []
    lines += ["query pixel in cyan", *notes]
    text = f"{title}<br><sup>{'<br>'.join(lines)}</sup>"
    title = dict(text=text, x=0.02, xanchor="left", y=1, yref="container", yanchor="top", pad=dict(t=14))
    return title, 50 + 22 * len(lines)


def _bool_panels(masks: dict) -> dict:
    """{name: 2-D bool array}, all of one shape, or a ValueError saying what came instead."""
    masks = {name: np.asarray(m, dtype=bool) for name, m in masks.items()}
    shapes = {m.shape for m in masks.values()}
    if not masks or len(shapes) > 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"masks must be one or more H×W bool arrays of one shape, got shapes "
                         f"{ {name: m.shape for name, m in masks.items()} }")
    return masks


# transparent where attention is zero, so the image shows through; opaque yellow at the maximum
_ATTENTION_SCALE = [[0.0, "rgba(255,40,0,0)"], [0.15, "rgba(255,40,0,0.35)"], [0.5, "rgba(255,120,0,0.75)"],
                    [1.0, "rgba(255,255,0,1)"]]


_QUERY_COLOR = "#00e5ff"


def _attention_panel(fig, z, row, col, pixel, image, visible, zmax, marker_px, colorbar=None):
    """One map over the image: the image, the weights, the unseen pixels greyed, the query marked.
    (Traces go in with one add_traces and the axes are set on the layout directly: plotly's
    per-subplot update_xaxes/add_trace calls made a 4×5 grid take ~1 s to build.)"""
    import plotly.graph_objects as go

    # float32: plotly sends numpy arrays as typed binary, so a 6×5 grid of float64 maps was ~0.5 MB
    # for the browser to take in on every click; single precision is far more than a colour needs
    z = np.asarray(z, dtype=np.float32)
    h, w = z.shape
    traces = [go.Image(z=dimmed_rgb(image), hoverinfo="skip")] if image is not None else []
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


def attention_grid(att, layers=None, panel_px: int = 120, heads=None):
    """Layers (rows) × heads (columns) of attention maps from one query pixel, over the image, and
    a last "mean" column; `att` is an attention.AttentionMaps (its `image` is drawn under the maps,
    the pixels its query cannot see are greyed). `layers`: the rows to draw (default all), e.g.
    [3] with a larger panel_px for one layer enlarged; `heads`: the columns (default all; the mean
    column is always over every head).
    Each panel is scaled to its own maximum (titles give it), so weak heads still show where they
    look; but never to less than 3× the uniform weight, so a head that spreads its attention evenly
    looks faint instead of uniformly bright."""
    from plotly.subplots import make_subplots

    maps = np.asarray(att.maps, dtype=float)
    layer_ids = list(range(len(maps))) if layers is None else [int(l) for l in layers]
    bad = [l for l in layer_ids if not 0 <= l < len(maps)]
    if bad:
        raise ValueError(f"layer {bad[0]} does not exist: the model has layers 0..{len(maps) - 1}")
    head_ids = list(range(maps.shape[1])) if heads is None else [int(k) for k in heads]
    bad = [k for k in head_ids if not 0 <= k < maps.shape[1]]
    if bad:
        raise ValueError(f"head {bad[0]} does not exist: the model has heads 0..{maps.shape[1] - 1}")
    pixel, image, visible, start = att.pixel, att.image, att.visible, att.start
    n_layer, h, w = len(layer_ids), maps.shape[2], maps.shape[3]
    panels = [[maps[l, k] for k in head_ids] + [np.asarray(att.head_mean[l], dtype=float)] for l in layer_ids]
    starts = [[None if start is None else start[l][k] for k in head_ids]
              + [None if att.head_mean_start is None else att.head_mean_start[l]] for l in layer_ids]
    names = [f"H{k}" for k in head_ids] + ["mean"]
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


def spread(items: list, at_most: int) -> list:
    """At most `at_most` of `items`, evenly spread, first and last included: the layers and heads a
    grid shows by default on a deep model (e.g. 6 of 24 layers: 0, 5, 9, 14, 18, 23)."""
    if len(items) <= at_most:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, at_most).round().astype(int)]


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
