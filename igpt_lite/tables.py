"""Results as text and HTML: the one formatter behind every result's text() and _repr_html_."""
from __future__ import annotations

import html


def cell(value) -> str:
    """A value as a table shows it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def key_value_text(values: dict, hide=()) -> str:
    """One `key: value` line per entry not in `hide`."""
    return "\n".join(f"{key}: {cell(value)}" for key, value in values.items() if key not in hide)


def _present(records: list[dict], columns) -> list[str]:
    return [c for c in columns if records and c in records[0]]


def aligned_text(records: list[dict], columns) -> str:
    """One right-aligned line per record, with a header, of the `columns` the records have."""
    cols = _present(records, columns)
    cells = [cols] + [[cell(r[c]) for c in cols] for r in records]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def html_table(records: list[dict], columns) -> str:
    """The same table for a notebook."""
    cols = _present(records, columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r[c]))}</td>" for c in cols) + "</tr>" for r in records)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
