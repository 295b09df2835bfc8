"""A training run's history: one `EvalPoint` per evaluation, in a `History`.

Training returns it and hands it to `on_eval`; a checkpoint keeps it in its config.json as the
rows of `to_records()` (step, train_bpd, val_bpd, lr, tokens_per_s), the format shipped
checkpoints already hold, and `History.from_records` reads them back (older rows may lack keys).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation: bits/dim on the training batches (a running mean) and on validation images."""

    step: int
    train_bpd: float | None = None
    val_bpd: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None  # training throughput since the previous evaluation

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> "EvalPoint":
        return cls(**{k: row.get(k) for k in ("step", "train_bpd", "val_bpd", "lr", "tokens_per_s")})


@dataclass
class History:
    """The evaluations of a run, oldest first: a sequence of `EvalPoint`s (len, index, slice, iterate)."""

    points: list[EvalPoint] = field(default_factory=list)

    @classmethod
    def from_records(cls, rows) -> "History":
        """From the rows a checkpoint keeps (a list of dicts; None or empty: no evaluation yet)."""
        return cls([EvalPoint.from_dict(r) for r in rows or []])

    def to_records(self) -> list[dict]:
        """The rows as checkpoints keep them and `igpt-lite train --json` prints them."""
        return [p.to_dict() for p in self.points]

    def append(self, point: EvalPoint) -> None:
        self.points.append(point)

    def copy(self) -> "History":
        return History(list(self.points))

    @property
    def last(self) -> EvalPoint | None:
        """The latest evaluation, or None before the first."""
        return self.points[-1] if self.points else None

    @property
    def last_val_bpd(self) -> float | None:
        """The latest validation bits/dim recorded (rows without one are skipped), or None."""
        return next((p.val_bpd for p in reversed(self.points) if p.val_bpd is not None), None)

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[EvalPoint]:
        return iter(self.points)

    def __getitem__(self, i):
        return History(self.points[i]) if isinstance(i, slice) else self.points[i]

    def __repr__(self) -> str:
        last = self.last
        if last is None:
            return "History(no evaluation yet)"
        val = "not evaluated" if last.val_bpd is None else f"val {last.val_bpd:.4g} bits/dim"
        return f"History({len(self)} evaluations; step {last.step}: {val})"
