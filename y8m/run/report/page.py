"""The report's HTML: one static page (inline CSS, inline script, images as data URIs) that opens
from disk with no server and no network."""

from __future__ import annotations

import html
import math

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
p.note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
div.scroll { max-height: 32em; overflow-y: auto; display: inline-block; }
img { display: block; margin: 0.5em 0; max-width: 100%; }
"""

# Click a header to sort by it (again to reverse); numbers sort as numbers, empty cells last.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.dataset.order !== "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
      th.dataset.order = ascending ? "asc" : "desc";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        var text = cell.hasAttribute("data-value") ? cell.getAttribute("data-value")
                                                   : cell.textContent;
        if (text === "") { return null; }
        var number = Number(text);
        return isNaN(number) ? text.toLowerCase() : number;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var order = typeof x === "number" && typeof y === "number" ? x - y
                  : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _kind(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        return "text"
    return "int" if pd.api.types.is_integer_dtype(column) else "float"


def _cell(value, kind: str, digits: int) -> tuple[str, str | None]:
    """(shown text, sort value) of one value; the sort value is None for text."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "", ""
    if kind == "text":
        return str(value), None
    if kind == "int":
        return f"{int(value):,}", str(int(value))
    return f"{float(value):.{digits}f}", repr(float(value))


def table(frame: pd.DataFrame, *, table_id: str = "", sortable: bool = False, digits: int = 4):
    """A DataFrame as an HTML table: numbers right-aligned (integer columns, including nullable
    Int64, without decimals), each number's raw value kept in `data-value` for sorting."""
    kinds = [_kind(frame[c]) for c in frame.columns]
    classes = ' class="sortable"' if sortable else ""
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    text = ' class="text"'
    head = "".join(
        f"<th{text if kind == 'text' else ''}>{html.escape(str(c))}</th>"
        for c, kind in zip(frame.columns, kinds)
    )
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for value, kind in zip(values, kinds):
            shown, sort_value = _cell(value, kind, digits)
            attributes = ' class="text"' if kind == "text" else f' data-value="{sort_value}"'
            cells.append(f"<td{attributes}>{html.escape(shown)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "\n".join(rows)
    return f"<table{ident}{classes}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def section(title: str, *parts: str, note: str = "", anchor: str = "") -> str:
    ident = f' id="{html.escape(anchor)}"' if anchor else ""
    text = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return (
        f"<section{ident}><h2>{html.escape(title)}</h2>{text}\n" + "\n".join(parts) + "</section>"
    )


def scrolling(inner: str) -> str:
    return f'<div class="scroll">{inner}</div>'


def document(title: str, subtitle: str, sections: list[str], files: list[str]) -> str:
    """The whole page: title, the sections, and links to the CSVs beside it."""
    links = ", ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in files)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        f'<h1>{html.escape(title)}</h1><p class="note">{html.escape(subtitle)}</p>\n'
        + "\n".join(sections)
        + f'\n<p class="note">The same tables as CSV: {links}.</p>'
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )
