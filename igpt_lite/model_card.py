"""What a model is, in one object: `igpt-lite info`, the app's model card and the notebooks read a
`ModelSummary` (`Checkpoint.summary()` makes one from a checkpoint)."""
from __future__ import annotations

from dataclasses import dataclass

from .history import History


@dataclass
class ModelSummary:
    name: str
    path: str | None
    source: str  # bundled, user (IGPT_LITE_MODELS), imported (Hugging Face), or path
    parameters: int
    config: dict  # GPTConfig.to_dict()
    n_colors: int
    channels: int
    palette_fingerprint: str
    dataset: str | None  # None: imported, choose one
    class_names: list[str]
    step: int | None  # training steps done
    planned_steps: int | None
    val_bpd: float | None  # validation bits/dim at the last evaluation
    baseline_bpd: float | None  # the palette's token entropy on validation: what a model that learned nothing gets
    history: History  # one EvalPoint per evaluation

    @property
    def resolution(self) -> str:
        return f"{self.config['height']}×{self.config['width']}"

    def card(self) -> list[tuple[str, str]]:
        """Label/value rows, the same wherever a model is described."""
        c = self.config
        objective = {"ar": "autoregressive (next pixel)", "bert": "BERT (masked pixels)"}[c["objective"]]
        rows = [("model", f"{self.name} ({self.source})"),
                ("size", f"{self.parameters / 1e6:.2f}M parameters: {c['n_layer']} layers × {c['n_embd']} wide, "
                         f"{c['n_head']} heads"),
                ("images", f"{self.resolution}, {'grey' if self.channels == 1 else 'RGB'}, "
                           f"{self.n_colors}-colour palette ({self.palette_fingerprint})"),
                ("objective", objective),
                ("data", self.dataset or "none recorded (imported): choose a dataset or give images")]
        if self.step is not None:
            rows.append(("training", f"{self.step:,} steps" + (f" of {self.planned_steps:,}" if self.planned_steps
                                                              and self.planned_steps != self.step else "")))
        if self.val_bpd is not None:
            base = f" (palette baseline {self.baseline_bpd:.3f})" if self.baseline_bpd is not None else ""
            rows.append(("val bits/dim", f"{self.val_bpd:.3f}{base}"))
        return rows

    def to_dict(self) -> dict:
        """The `igpt-lite info --json` object: the history as the rows checkpoints keep."""
        return {**vars(self), "history": self.history.to_records()}

    def __repr__(self) -> str:
        return f"ModelSummary({self.name!r}, {self.source}, {self.parameters / 1e6:.2f}M parameters, dataset {self.dataset})"
