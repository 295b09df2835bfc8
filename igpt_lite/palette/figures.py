"""Figures of palettes: swatches, the size sweep, and an image as a sequence of tokens."""
from __future__ import annotations

import numpy as np

from ..figures import dimmed_rgb


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


def palette_swatches(colors: np.ndarray, usage=None, title: str = "Palette", ncols: int | None = None,
                     cell_px: int = 46):
    """One square swatch per palette colour (uint8 k×C, C = 1 grey or 3 RGB; e.g.
    `PaletteReport.colors`), in token order, each labelled with its token id and, with `usage`
    (share of pixels per colour, e.g. `PaletteReport.usage`), how much of the images it paints."""
    import plotly.graph_objects as go

    rgb = dimmed_rgb(np.asarray(colors, dtype=np.uint8)[:, None], dim=1.0)[:, 0]  # k×3
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


def palette_sweep_chart(reports, current: int | None = None, title: str = "Palette size: round-trip error versus token entropy"):
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
