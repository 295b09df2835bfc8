"""The paper's comparison of the two objectives: linear-probe curves of models that differ only in
their objective (a bundled ar model and its bert twin), with the pixel baselines."""
from __future__ import annotations

from ..probe import ProbeTable

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")


def objective_probe_chart(tables: dict[str, ProbeTable], title: str = "Linear probes: ar against bert"):
    """Test accuracy per layer (± standard error) of each model's trained rows, {legend name: table
    of `probe.probe_model` or `probe.probe_report`}, all on the same layers, and the raw-pixel
    baseline of the first table as a dashed line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    first = next(iter(tables.values()))
    for (name, table), color in zip(tables.items(), _COLORS):
        rows = sorted(table.at_step().of("trained"), key=lambda r: r.depth)
        best = table.best()
        fig.add_trace(go.Scatter(x=[r.layer for r in rows], y=[100 * r.test_acc for r in rows], mode="lines+markers",
                                 name=f"{name} (best on validation: {best.layer}, {100 * best.test_acc:.1f}%)",
                                 line=dict(color=color, width=2.5),
                                 error_y=dict(type="data", array=[100 * r.test_stderr for r in rows], thickness=1)))
    pixels = first.of("pixels")
    layers = first.layers()
    if pixels:
        acc = 100 * pixels[0].test_acc
        fig.add_trace(go.Scatter(x=[layers[0], layers[-1]], y=[acc, acc], mode="lines", name=f"raw pixels: {acc:.1f}%",
                                 line=dict(color="#7f7f7f", dash="dash", width=2)))
    n_test = next((r.n_test for r in first if r.n_test is not None), "?")
    fig.update_layout(title=dict(text=f"{title}<br><sup>test accuracy ± standard error (n_test = {n_test}); "
                                      f"C chosen on validation</sup>", x=0.02),
                      xaxis=dict(title="layer", type="category", categoryorder="array", categoryarray=layers),
                      yaxis_title="linear probe accuracy (%)", width=800, height=460, template="plotly_white",
                      legend=dict(orientation="h", y=-0.2))
    return fig
