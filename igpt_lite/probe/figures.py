"""Figures of probes: accuracy versus depth (with baselines and, on a second axis, the logit lens),
over training, against bits/dim, against a reference curve, and UMAP scatters of a layer."""
from __future__ import annotations

import numpy as np

from .lens import LensCurve
from .table import ProbeRow, ProbeTable

_BASELINE_STYLE = {"pixels": ("raw pixels", "#7f7f7f", "dash"), "palette": ("palette pixels", "#bcbd22", "dot")}


def _probe_hover(r: ProbeRow, prefix: str = "") -> str:
    edge = " (at the grid's edge)" if r.C_at_edge else ""
    return (f"{prefix}{r.layer}: test {100 * r.test_acc:.1f} ± {100 * r.test_stderr:.1f}%, "
            f"val {100 * r.val_acc:.1f}%, train {100 * r.train_acc:.1f}%, C={r.C:.3g}{edge}")


def _probe_curve(fig, rows: list[ProbeRow], name: str, color: str, dash: str = "solid", width: float = 2.5, **kw):
    import plotly.graph_objects as go

    rows = sorted(rows, key=lambda r: r.depth)
    fig.add_trace(go.Scatter(x=[r.layer for r in rows], y=[100 * r.test_acc for r in rows], name=name,
                             mode="lines+markers", line=dict(color=color, dash=dash, width=width),
                             error_y=dict(type="data", array=[100 * r.test_stderr for r in rows], thickness=1),
                             hovertext=[_probe_hover(r, f"{name}, ") for r in rows], hoverinfo="text", **kw))


def _probe_baselines(fig, table: ProbeTable):
    """The random-weight curve and the pixel baselines (horizontal lines across the layers, in the
    legend, ± their standard error shaded)."""
    import plotly.graph_objects as go

    random = table.of("random")
    if random:
        seed = "?" if random[0].seed is None else random[0].seed
        _probe_curve(fig, random, f"random weights (seed {seed})", "#d62728", dash="dash", width=1.5, legendrank=900)
    layers = table.layers()
    for r in table:
        if r.kind in _BASELINE_STYLE and layers:
            label, color, dash = _BASELINE_STYLE[r.kind]
            acc, se = 100 * r.test_acc, 100 * r.test_stderr
            fig.add_hrect(y0=acc - se, y1=acc + se, fillcolor=color, opacity=0.12, line_width=0)
            fig.add_trace(go.Scatter(x=[layers[0], layers[-1]], y=[acc, acc], mode="lines", legendrank=901,
                                     name=f"{label}: {acc:.1f} ± {se:.1f}%",
                                     line=dict(color=color, dash=dash, width=2),
                                     hovertext=_probe_hover(r), hoverinfo="text"))


def _n_test(table: ProbeTable):
    return next((r.n_test for r in table if r.n_test is not None), "?")


def _probe_layout(fig, table: ProbeTable, title: str, notes: list[str]):
    edge = sum(bool(r.C_at_edge) for r in table)
    if edge:
        notes = notes + [f"{edge} probe(s) chose a C at the edge of the grid: widen it"]
    if len(table):  # a figure of the logit lens alone has no probe rows
        notes = [f"test accuracy ± standard error (n_test = {_n_test(table)}); C chosen on validation"] + notes
    fig.update_layout(title=dict(text=f"{title}<br><sup>{'<br>'.join(notes)}</sup>", x=0.02, xanchor="left"),
                      xaxis=dict(title="layer", type="category", categoryorder="array",
                                 categoryarray=table.layers() or None),
                      yaxis=dict(title="linear probe accuracy (%)"), width=800, height=480 + 18 * len(notes),
                      margin=dict(t=70 + 18 * len(notes)), template="plotly_white",
                      legend=dict(orientation="h", y=-0.18))
    return fig


def _lens_curves(fig, lens: LensCurve):
    """The logit lens (and the tuned lens, where fitted) in bits/dim on the right-hand axis."""
    import plotly.graph_objects as go

    curves = [("logit lens", "bits_per_dim", "solid")] + ([("tuned lens", "tuned_bits_per_dim", "dot")] if lens.tuned
                                                           else [])
    for name, col, dash in curves:
        fig.add_trace(go.Scatter(
            x=lens.layers(), y=[getattr(r, col) for r in lens.rows], name=f"{name}, bits/dim (right axis)",
            yaxis="y2", mode="lines+markers", marker=dict(symbol="square"), legendrank=3,
            line=dict(color="#ff7f0e", dash=dash, width=2.5),
            hovertext=[f"{name}, {r.layer}: {getattr(r, col):.4f} bits/dim" for r in lens.rows], hoverinfo="text"))
    fig.update_layout(yaxis2=dict(title="logit lens: bits/dim (lower: better)", overlaying="y", side="right",
                                  showgrid=False, rangemode="tozero", tickmode="auto", tickformat=".2f"))


def probe_depth_chart(table: ProbeTable, title: str = "Linear probe accuracy versus depth", lens: LensCurve | None = None):
    """Test accuracy per layer (error bars: its standard error) of the trained model, the same
    architecture with random weights, and raw / palette pixels as horizontal lines, from the rows
    of `probe.probe_model` (kind, layer, depth, test_acc, test_stderr, val_acc, train_acc, C).
    Tables over several checkpoints (a `step` column) show the latest step. Rows with the kNN
    read-out (`knn_test_acc`, `knn_test_stderr`) add the trained model's kNN curve beside it.
    `lens` (`probe.logit_lens`): the logit lens's bits/dim per layer on a second y axis, the paper's
    second phase (next-pixel prediction) on the same depth axis as the first (features)."""
    import plotly.graph_objects as go

    trained = table.at_step().of("trained")
    fig = go.Figure()
    _probe_baselines(fig, table)
    suffix = f" (step {table.steps[-1]})" if table.steps else ""
    if trained:
        _probe_curve(fig, trained, "trained" + suffix, "#1f77b4", legendrank=1)
    knn = sorted((r for r in trained if r.knn_test_acc is not None), key=lambda r: r.depth)
    if knn:
        fig.add_trace(go.Scatter(
            x=[r.layer for r in knn], y=[100 * r.knn_test_acc for r in knn], mode="lines+markers",
            name=f"trained, kNN (k = {'?' if knn[0].knn_k is None else knn[0].knn_k}){suffix}", legendrank=2,
            line=dict(color="#17becf", dash="dashdot", width=2.5), marker=dict(symbol="diamond"),
            error_y=dict(type="data", array=[100 * r.knn_test_stderr for r in knn], thickness=1),
            hovertext=[f"kNN, {r.layer}: test {100 * r.knn_test_acc:.1f} ± {100 * r.knn_test_stderr:.1f}%, "
                       f"val {100 * r.knn_val_acc:.1f}%" for r in knn], hoverinfo="text"))
    notes = []
    if lens is not None:
        _lens_curves(fig, lens)
        notes.append(f"logit lens: bits/dim on {lens.n_images} {lens.dataset} test images" +
                     (f", tuned maps fitted on {lens.n_train} train images" if lens.tuned else ""))
    fig = _probe_layout(fig, table, title, notes)
    if knn:
        fig.update_layout(yaxis_title="probe accuracy (%): logistic regression and kNN")
    return fig


def probe_checkpoints_chart(table: ProbeTable, title: str = "Linear probe accuracy over training"):
    """One depth curve per checkpoint (rows of `probe.probe_checkpoints`: trained rows with a `step`
    column), light to dark with training, over the same baselines as `probe_depth_chart`."""
    import plotly.colors
    import plotly.graph_objects as go

    steps = table.steps
    colors = plotly.colors.sample_colorscale("Blues", [0.35 + 0.65 * i / max(len(steps) - 1, 1)
                                                       for i in range(len(steps))])
    fig = go.Figure()
    _probe_baselines(fig, table)
    for step, color in zip(steps, colors):
        _probe_curve(fig, table.at_step(step).of("trained"), f"step {step}", color, legendrank=1)
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


def probe_reference_chart(table: ProbeTable, reference: dict, title: str = "Probe accuracy versus relative depth"):
    """Our trained model's probe curve (rows of `probe.probe_model`) next to a published one
    (`reference`: name, source, protocol, n_layers, accuracy {hidden-state index: accuracy in [0, 1]}), both
    against relative depth (0 = embeddings, 1 = the final norm's output), since the models differ
    in depth; on different tasks, so compare shapes, not heights."""
    import plotly.graph_objects as go

    trained = sorted(table.at_step().of("trained"), key=lambda r: r.depth)
    last = max(r.depth for r in trained)
    ref = sorted(reference["accuracy"].items())
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[i / reference["n_layers"] for i, _ in ref], y=[100 * a for _, a in ref],
                             mode="lines+markers", name=reference["name"], line=dict(color="#9467bd", width=2.5),
                             hovertext=[f"hidden state {i}: {100 * a:.1f}%" for i, a in ref], hoverinfo="text"))
    fig.add_trace(go.Scatter(x=[r.depth / last for r in trained], y=[100 * r.test_acc for r in trained],
                             mode="lines+markers", name="ours (test accuracy)", line=dict(color="#1f77b4", width=2.5),
                             error_y=dict(type="data", array=[100 * r.test_stderr for r in trained], thickness=1),
                             hovertext=[_probe_hover(r) for r in trained], hoverinfo="text"))
    notes = f"reference: {reference['source']}<br>({reference.get('protocol', '')})"
    fig.update_layout(title=dict(text=f"{title}<br><sup>{notes}</sup>", x=0.02), margin=dict(t=110),
                      xaxis=dict(title="relative depth (0 = embeddings, 1 = final norm)", range=[-0.03, 1.03]),
                      yaxis_title="linear probe accuracy (%)", width=800, height=460, template="plotly_white",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def layer_view(table: ProbeTable, layer: str, embedding: np.ndarray, labels, class_names=None):
    """One layer's 2-D projection of the features (e.g. `probe.umap_embedding`) coloured by class,
    titled with that layer's probe accuracy (linear, and kNN where the table has it) and the
    random-weight copy's at the same layer: what the notebooks' layer slider shows."""
    rows = {r.kind: r for r in table if r.layer == layer and r.kind in ("trained", "random") and r.step is None}
    if "trained" not in rows:
        raise ValueError(f"layer {layer!r} is not in the table: it has {', '.join(table.layers())}")
    r = rows["trained"]
    parts = [f"linear probe {100 * r.test_acc:.1f} ± {100 * r.test_stderr:.1f}%"]
    if r.knn_test_acc is not None:
        parts.append(f"kNN {100 * r.knn_test_acc:.1f}%")
    if "random" in rows:
        parts.append(f"random weights {100 * rows['random'].test_acc:.1f}%")
    return umap_scatter(embedding, labels, class_names, title=f"{layer}: {', '.join(parts)}")


def _best_by_step(table: ProbeTable, by: str) -> list[ProbeRow]:
    """Per step of a `probe_checkpoints` table, the trained layer best on validation by `by`
    (`ProbeTable.best`); steps without val_bpd, or without that column, are left out."""
    out = []
    for step in table.steps:
        try:
            best = table.best(by=by, step=step)
        except ValueError:  # no row of this step has the column
            continue
        if best.val_bpd is not None:
            out.append(best)
    return out


def probe_bits_chart(table: ProbeTable, title: str = "Probe accuracy against validation bits/dim over training"):
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
        pts = _best_by_step(table, val)
        if not pts:
            continue
        se = acc.replace("_acc", "_stderr")
        fig.add_trace(go.Scatter(
            x=[p.val_bpd for p in pts], y=[100 * getattr(p, acc) for p in pts], name=f"{name} (best layer on val)",
            mode="lines+markers+text", text=[str(p.step) for p in pts], textposition="top center",
            textfont=dict(size=9, color=color), line=dict(color=color, dash=dash, width=2.5),
            error_y=dict(type="data", array=[100 * getattr(p, se) for p in pts], thickness=1),
            hovertext=[f"step {p.step}: {p.val_bpd:.4f} bits/dim, {p.layer} {100 * getattr(p, acc):.1f} ± "
                       f"{100 * getattr(p, se):.1f}%" for p in pts], hoverinfo="text"))
    baselines = [("random weights", "random", "#d62728", "dash", "top right"),
                 ("raw pixels", "pixels", "#7f7f7f", "dot", "bottom right")]  # labels apart: the lines may be close
    for label, kind, color, dash, where in baselines:
        if table.of(kind):
            best = table.best(kind)
            fig.add_hline(y=100 * best.test_acc, line=dict(color=color, dash=dash, width=1.5),
                          annotation_text=f"{label} ({best.layer}): {100 * best.test_acc:.1f}%",
                          annotation_position=where, annotation_font_size=10)
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>test accuracy ± standard error (n_test = {_n_test(table)}) of the layer chosen on "
                        f"validation; labels: training step</sup>", x=0.02, xanchor="left"),
        xaxis=dict(title="validation bits/dim (lower is better; training goes left to right)", autorange="reversed"),
        yaxis=dict(title="probe accuracy (%)"), width=800, height=500, margin=dict(t=80), template="plotly_white",
        legend=dict(orientation="h", y=-0.2))
    return fig
