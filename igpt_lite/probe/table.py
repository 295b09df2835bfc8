"""The probe table: one typed row per probed layer (of the trained model, its random-weight copy,
or a pixel baseline), and the rules read from it, each once: the best layer on validation, the
headline against the baselines, the shape of the curve over depth.

On disk (probe.json) and in `igpt-lite probe --json` a table is a list of plain dicts, one per
row: `to_records` / `from_records` convert, keeping that format."""
from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..tables import aligned_text, html_table

BASELINE_KINDS = ("random", "pixels", "palette")
# columns only some tables have (the kNN read-out, the random model's seed, a run's checkpoints):
# a record leaves them out where the row has none, as probe_model always wrote them
_OPTIONAL = {"knn_val_acc", "knn_test_acc", "knn_test_stderr", "knn_k", "knn_temperature", "knn_seconds", "seed",
             "step", "checkpoint"}
# what `text()` shows of each row, in this order; the rest is in to_records()
TEXT_COLUMNS = ("kind", "layer", "train_acc", "val_acc", "test_acc", "test_stderr", "C", "C_at_edge", "knn_test_acc")
_READ_OUTS = {"linear": ("test_acc", "val_acc", "test_stderr"), "knn": ("knn_test_acc", "knn_val_acc", "knn_test_stderr")}


@dataclass
class ProbeRow:
    """One probed layer. kind: "trained", "random" (a random-weight copy, torch seed `seed`),
    "pixels" or "palette" (layer: the same name, depth None). depth: the layer's place in the
    network (embed 0, blocks.i i+1, ln_f last). The logistic-regression probe: accuracies,
    test_stderr (binomial), C chosen on validation (C_at_edge: at an end of the grid),
    val_acc_by_C, converged and n_iter (lbfgs), whitened and whitened_dim, seconds, split sizes.
    The kNN read-out: knn_*. Over training: step, checkpoint and val_bpd (the validation bits/dim
    training recorded at that step, None where it did not evaluate)."""
    kind: str
    layer: str
    depth: int | None = None
    dim: int | None = None
    train_acc: float | None = None
    val_acc: float | None = None
    test_acc: float | None = None
    test_stderr: float | None = None
    C: float | None = None
    C_at_edge: bool | None = None
    val_acc_by_C: list[float] | None = None
    converged: bool | None = None
    n_iter: int | None = None
    whitened: bool | None = None
    whitened_dim: int | None = None
    seconds: float | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    knn_val_acc: float | None = None
    knn_test_acc: float | None = None
    knn_test_stderr: float | None = None
    knn_k: int | None = None
    knn_temperature: float | None = None
    knn_seconds: float | None = None
    seed: int | None = None
    step: int | None = None
    checkpoint: str | None = None
    val_bpd: float | None = None

    @classmethod
    def from_record(cls, record) -> "ProbeRow":
        """A row from its dict form, every column of its type (a ValueError names the first that is
        not): a damaged or hand-edited probe.json is refused, not drawn."""
        if not isinstance(record, dict):
            raise ValueError(f"a row must be a JSON object of columns, got {record!r}")
        unknown = set(record) - set(_TYPES)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}")
        for key in _REQUIRED:
            if record.get(key) is None:
                raise ValueError(f"a row without {key!r}")
        for key, value in record.items():
            kind = _TYPES[key]
            ok = (value is None or (kind == "list[float]" and isinstance(value, list) and all(map(_number, value)))
                  or (kind == "float" and _number(value)) or (kind == "bool" and isinstance(value, bool))
                  or (kind == "int" and isinstance(value, numbers.Integral) and not isinstance(value, bool))
                  or (kind == "str" and isinstance(value, str)))
            if not ok:
                raise ValueError(f"column {key!r} must be {_NAMES[kind]}, got {value!r}")
        if record["kind"] not in ("trained", *BASELINE_KINDS):
            raise ValueError(f"column 'kind' must be one of trained, {', '.join(BASELINE_KINDS)}, got {record['kind']!r}")
        return cls(**record)

    def to_record(self) -> dict:
        record = {k: v for k, v in asdict(self).items() if v is not None or k not in _OPTIONAL}
        if self.step is None:  # val_bpd is a column of tables over training only
            record.pop("val_bpd")
        return record


def _number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and bool(np.isfinite(x))


_TYPES = {f.name: f.type.split(" |")[0] for f in fields(ProbeRow)}  # "float | None" -> "float"
_NAMES = {"str": "text", "int": "a whole number", "float": "a finite number", "bool": "true or false",
          "list[float]": "a list of finite numbers"}
_REQUIRED = ("kind", "layer", "val_acc", "test_acc", "test_stderr")  # what the summary and the charts read


@dataclass(frozen=True)
class Margin:
    """How far the best trained layer's test accuracy is above a baseline's: in points, the
    standard error of the difference sqrt(se_a² + se_b²) in points, and in units of it (z)."""
    points: float
    stderr: float
    z: float


_HEADLINE = ("layer", "val_acc", "test_acc", "test_stderr")


@dataclass
class ProbeSummary:
    """The headline of a probe table, chosen the honest way (each layer on validation, reported on
    test): the best trained layer, each baseline's best row, the margins, and `beats_all` (above
    every baseline by more than one standard error of the difference)."""
    trained: ProbeRow
    baselines: dict[str, ProbeRow]
    margins: dict[str, Margin]
    beats_all: bool

    def to_dict(self) -> dict:
        def headline(row):
            return {k: getattr(row, k) for k in _HEADLINE}
        return {"trained": headline(self.trained), "margins": {k: asdict(m) for k, m in self.margins.items()},
                **{kind: headline(row) for kind, row in self.baselines.items()}, "beats_all": self.beats_all}

    def text(self) -> str:
        return "best layer minus baselines: " + ", ".join(
            f"{kind} {m.points:+.1f} points ({m.z:.1f} s.e.)" for kind, m in self.margins.items())


@dataclass
class DepthShape:
    """Does the trained curve rise to a peak inside the network and fall at the end? peak: the
    layer best on validation; first, last: the ends; *_test: their test accuracies; rise and fall:
    the peak minus the first / last layer in points and in standard errors of the difference;
    inside: the peak is neither end; shape: inside and both differences above 2 s.e."""
    read_out: str
    peak: str
    peak_depth: int
    first: str
    last: str
    peak_test: float
    first_test: float
    last_test: float
    rise_points: float
    rise_z: float
    fall_points: float
    fall_z: float
    inside: bool
    shape: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ProbeTable:
    """Rows of probes (`probe_model`: the trained model's, then the random-weight copy's, then pixels
    and palette; `probe_checkpoints`: the trained rows of every step, then the baselines once)."""
    rows: list[ProbeRow]

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def from_records(cls, records) -> "ProbeTable":
        """A table from its list-of-dicts form (probe.json, --json); missing columns read None."""
        if not isinstance(records, list):
            raise ValueError(f"a table must be a list of rows, got {type(records).__name__}")
        rows = []
        for i, r in enumerate(records):
            try:
                rows.append(ProbeRow.from_record(r))
            except ValueError as e:
                raise ValueError(f"row {i}: {e}") from None
        return cls(rows)

    def to_records(self) -> list[dict]:
        return [r.to_record() for r in self.rows]

    def of(self, kind: str) -> list[ProbeRow]:
        return [r for r in self.rows if r.kind == kind]

    @property
    def steps(self) -> list[int]:
        """The training steps of a table over training (sorted); [] for one checkpoint's."""
        return sorted({r.step for r in self.of("trained") if r.step is not None})

    def at_step(self, step: int | None = None) -> "ProbeTable":
        """The table with the trained rows of one step (default: the latest) and every baseline;
        a table without steps is returned as it is."""
        steps = self.steps
        if not steps:
            return self
        step = steps[-1] if step is None else step
        return ProbeTable([r for r in self.rows if r.kind != "trained" or r.step == step])

    def layers(self) -> list[str]:
        """Layer names in depth order (embed, blocks.0, ..., ln_f), from the rows that have a depth."""
        depth = {r.layer: r.depth for r in self.rows if r.depth is not None}
        return sorted(depth, key=depth.get)

    def best(self, kind: str = "trained", by: str = "val_acc", step: int | None = None) -> ProbeRow:
        """The row of `kind` with the best `by` (a validation accuracy: choose layers on val, report
        test); first of equals: the shallower layer. Tables over training: the latest step, or `step`."""
        rows = [r for r in self.at_step(step).rows if r.kind == kind and getattr(r, by) is not None]
        if not rows:
            raise ValueError(f"no {kind!r} rows in the table" + (f" at step {step}" if step is not None else ""))
        ordered = sorted(rows, key=lambda r: (r.depth is None, r.depth or 0))  # stable: table order otherwise
        return max(ordered, key=lambda r: getattr(r, by))

    def summary(self) -> ProbeSummary:
        """The best trained layer (latest step of a table over training) against each baseline's best."""
        best = self.best("trained")
        baselines, margins = {}, {}
        for kind in BASELINE_KINDS:
            if not self.of(kind):
                continue
            base = baselines[kind] = self.best(kind)
            diff = best.test_acc - base.test_acc
            se = float(np.hypot(best.test_stderr, base.test_stderr))
            margins[kind] = Margin(points=100 * diff, stderr=100 * se, z=diff / se if se else float("inf"))
        return ProbeSummary(trained=best, baselines=baselines, margins=margins,
                            beats_all=bool(margins) and all(m.z > 1 for m in margins.values()))

    def depth_shape(self, read_out: str = "linear", step: int | None = None) -> DepthShape:
        """Does the trained model's curve rise to a peak inside the network and fall at the end, as
        the paper's does? The peak is the layer best on validation (`best`); every number compared
        is a test accuracy, and each difference is measured in standard errors of the difference
        sqrt(se_a² + se_b²) (the test split is the same for both, so this is conservative).
        read_out "linear" or "knn"; tables over training use `step` (default: the latest)."""
        acc, val, se = _READ_OUTS[read_out]
        rows = sorted(self.at_step(step).of("trained"), key=lambda r: r.depth)
        if not rows:
            raise ValueError("no trained rows" + (f" at step {step}" if step is not None else ""))
        peak = self.best("trained", by=val, step=step)
        first, last = rows[0], rows[-1]

        def diff(a, b):
            d, e = getattr(a, acc) - getattr(b, acc), float(np.hypot(getattr(a, se), getattr(b, se)))
            return 100 * d, (d / e if e else float("inf"))

        rise, rise_z = diff(peak, first)
        fall, fall_z = diff(peak, last)
        inside = peak is not first and peak is not last
        return DepthShape(read_out=read_out, peak=peak.layer, peak_depth=peak.depth, first=first.layer,
                          last=last.layer, peak_test=getattr(peak, acc), first_test=getattr(first, acc),
                          last_test=getattr(last, acc), rise_points=rise, rise_z=rise_z, fall_points=fall,
                          fall_z=fall_z, inside=inside, shape=bool(inside and rise_z > 2 and fall_z > 2))

    def with_columns(self, **values) -> "ProbeTable":
        """The same rows with some columns set (e.g. kind, seed or step on every row)."""
        return ProbeTable([replace(r, **values) for r in self.rows])

    def text(self) -> str:
        """One aligned line per row (what `igpt-lite probe` prints); every column is in to_records()."""
        return aligned_text(self.to_records(), TEXT_COLUMNS)

    def _repr_html_(self) -> str:
        return html_table(self.to_records(), TEXT_COLUMNS)

    def __repr__(self) -> str:
        kinds = ", ".join(dict.fromkeys(r.kind for r in self.rows))
        try:
            best = self.best()
            headline = f"; best on validation {best.layer}, test {100 * best.test_acc:.1f}%"
        except ValueError:  # no trained rows
            headline = ""
        return f"ProbeTable({len(self.rows)} rows: {kinds}{headline})"
