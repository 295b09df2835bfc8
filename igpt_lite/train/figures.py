"""Figures of training: bits per pixel over steps."""
from __future__ import annotations

from typing import Sequence

from ..history import EvalPoint


def training_curve(history: Sequence[EvalPoint], baseline_bpd: float | None = None,
                   title: str = "Bits per pixel during training"):
    """Train and validation bits/dim against the step, from a training history (the `History` that
    `train` returns and `ModelSummary.history` reads from a checkpoint), with the palette-entropy
    baseline (what a model that learned only the colour frequencies gets) as a dashed line. An empty
    history draws the empty axes (a live plot's first frame)."""
    import plotly.graph_objects as go

    steps = [h.step for h in history]
    fig = go.Figure()
    for key, name, color in (("train_bpd", "train (running mean)", "#1f77b4"), ("val_bpd", "validation", "#ff7f0e")):
        fig.add_trace(go.Scatter(x=steps, y=[getattr(h, key) for h in history], mode="lines+markers", name=name,
                                 line=dict(color=color, width=2.5)))
    if baseline_bpd is not None:
        fig.add_hline(y=baseline_bpd, line=dict(color="#7f7f7f", dash="dash"),
                      annotation_text=f"palette entropy {baseline_bpd:.3f}", annotation_position="top right")
    note = f"last validation: {history[-1].val_bpd:.3f} bits/dim at step {steps[-1]}" if history else "waiting…"
    fig.update_layout(title=dict(text=f"{title}<br><sup>{note}</sup>"), xaxis_title="step",
                      yaxis=dict(title="bits per pixel", rangemode="tozero"), width=760, height=420,
                      template="plotly_white", legend=dict(orientation="h", y=-0.2))
    return fig
