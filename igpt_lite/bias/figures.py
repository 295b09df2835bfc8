"""Figures of bias tests: effect size and adjusted p per layer, and the permutation distribution."""
from __future__ import annotations

import numpy as np


def bias_per_layer_chart(table, title: str = "iEAT per layer", alpha: float = 0.05):
    """Effect size d (top) and Holm-adjusted p-value (bottom, log scale) per layer, from rows
    (`BiasRow`s, or their dicts: layer, effect_size, p_value, p_holm). One line per model: `table`
    as {model label: rows}, e.g. {"p50": ..., "p90": ...}, or rows whose dicts carry a "model" key."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("effect size d", f"Holm-adjusted p-value (dotted: {alpha})"))
    import plotly.colors

    table = _labelled(table)
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


def _labelled(table) -> list[dict]:
    """Rows as plain dicts, each with its model's label where `table` is {label: rows}."""
    def plain(row) -> dict:
        return row.to_dict() if hasattr(row, "to_dict") else dict(row)

    if isinstance(table, dict):
        return [{**plain(r), "model": model} for model, rows in table.items() for r in rows]
    return [plain(r) for r in table]


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


def draws_chart(result, title: str | None = None, alpha: float = 0.05):
    """d on every draw of a `DrawsResult` (`likelihood_draws`): one row of dots per model (the model,
    its control, the random-weight copies) and, with a control, the paired test (the model's bits
    minus the control's), filled where that draw's p < alpha, and the model-minus-control difference
    in d draw by draw; each with the mean over draws and its 95% interval as a bar: how far one
    draw's d can land from the others. Row labels end with the draws' combined p."""
    import plotly.graph_objects as go

    fig = go.Figure()
    names = {"model": result.model, "control": f"control: {result.control}", "baseline": "random-weight copies",
             "paired": "paired: bits − control's"}
    colors = {"model": "#d62728", "control": "#1f77b4", "baseline": "#7f7f7f", "paired": "#ff7f0e"}
    for which in ("model", "control", "baseline", "paired"):
        spread = result.spread(which)
        if spread is None:
            continue
        label = f"{names[which]}<br>combined p {spread.p_combined:.2g}"
        rows = [getattr(d, which) for d in result.draws]
        fig.add_trace(go.Scatter(
            x=[r.effect_size for r in rows], y=[label] * len(rows), mode="markers", name=label,
            marker=dict(color=colors[which], size=9, opacity=0.7,
                        symbol=["circle" if r.p_value < alpha else "circle-open" for r in rows]),
            hovertext=[f"seed {d.seed}: d {r.effect_size:.2f}, p {r.p_value:.2g}" for d, r in zip(result.draws, rows)],
            hoverinfo="text"))
        fig.add_trace(_mean_bar(spread, label, "mean d"))
    diff = result.difference()
    if diff is not None:  # the matched comparison: each draw's d minus the control's on the same scenes
        label = f"{result.model} − control"
        values = [d.model.effect_size - d.control.effect_size for d in result.draws]
        fig.add_trace(go.Scatter(x=values, y=[label] * len(values), mode="markers", name=label,
                                 marker=dict(color="#9467bd", size=9, opacity=0.7, symbol="diamond"),
                                 hovertext=[f"seed {d.seed}: difference {v:.2f}" for d, v in zip(result.draws, values)],
                                 hoverinfo="text"))
        fig.add_trace(_mean_bar(diff, label, "mean difference"))
    fig.add_vline(x=0, line=dict(color="grey", width=1))
    s = result.spread()
    fig.update_layout(
        title=title or f"d on {s.n} draws of the test scenes (filled: p < {alpha}; bar: mean and 95% interval)",
        xaxis_title="effect size d", width=760, height=170 + 60 * len(fig.data) // 2, template="plotly_white",
        showlegend=False, margin=dict(l=160))
    return fig


def _mean_bar(spread, label: str, what: str):
    """A `Spread`'s mean as a tick on row `label`, its 95% interval as a bar around it."""
    import plotly.graph_objects as go

    return go.Scatter(x=[spread.mean], y=[label], mode="markers", showlegend=False, hoverinfo="text",
                      hovertext=f"{what} {spread.mean:.2f} (95% interval {spread.low:.2f} to {spread.high:.2f})",
                      marker=dict(color="black", symbol="line-ns", size=22, line=dict(width=3)),
                      error_x=dict(type="data", symmetric=False, array=[spread.high - spread.mean],
                                   arrayminus=[spread.mean - spread.low], color="black", thickness=2, width=8))
