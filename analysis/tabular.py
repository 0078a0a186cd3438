"""``Table``: one table of the report as rows, with its notes and a "not run" status, rendered to CSV, Markdown
and HTML. The builders that fill tables live in analysis.tables (and analysis.protocol_effects)."""
from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass, field

import numpy as np

NOT_RUN = "not run"


# ---- the table ---------------------------------------------------------------------------------------------

@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"  # "ok" or NOT_RUN
    reason: str | None = None
    pcols: tuple[str, ...] = ()  # columns formatted as p-values
    intcols: tuple[str, ...] = ()
    onedec: tuple[str, ...] = ("best %", "paper best %", "percentile")  # one decimal
    digits: dict[str, int] = field(default_factory=dict)  # other columns' decimals (default 3)

    def cell(self, col: str, v, csv_mode: bool = False) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "" if csv_mode else "—"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if csv_mode:
                return f"{v:.6g}"
            if col in self.intcols and v.is_integer():
                return str(int(v))
            if col in self.pcols:
                return f"{v:.1e}" if v < 1e-3 else f"{v:.3g}"
            if col in self.onedec:
                return f"{v:.1f}"
            return f"{v:.{self.digits.get(col, 3)}f}"
        return str(v)

    def to_markdown(self) -> str:
        out = [f"### {self.title}", ""]
        if self.status != "ok":
            out.append(f"_{self.status}_: {self.reason or ''}".rstrip())
            out.append("")
        if self.rows:
            out.append("| " + " | ".join(self.columns) + " |")
            out.append("|" + "|".join("---" for _ in self.columns) + "|")
            for row in self.rows:
                out.append("| " + " | ".join(self.cell(c, v).replace("|", "\\|") for c, v in zip(self.columns, row))
                           + " |")
            out.append("")
        for n in self.notes:
            out.append(f"- {n}")
        if self.notes:
            out.append("")
        return "\n".join(out)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if self.status != "ok" and not self.rows:
            w.writerow(["status", "reason"])
            w.writerow([self.status, self.reason or ""])
            return buf.getvalue()
        w.writerow(self.columns)
        for row in self.rows:
            w.writerow([self.cell(c, v, csv_mode=True) for c, v in zip(self.columns, row)])
        return buf.getvalue()

    def to_html(self) -> str:
        e = html.escape
        out = [f"<h3 id=\"table-{e(self.name)}\">{e(self.title)}</h3>"]
        if self.status != "ok":
            out.append(f"<p class=\"notrun\"><em>{e(self.status)}</em>: {e(self.reason or '')}</p>")
        if self.rows:
            head = "".join(f"<th>{e(c)}</th>" for c in self.columns)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
            for row in self.rows:
                out.append("<tr>" + "".join(f"<td>{e(self.cell(c, v))}</td>" for c, v in zip(self.columns, row))
                           + "</tr>")
            out.append("</tbody></table>")
        if self.notes:
            out.append("<ul class=\"notes\">" + "".join(f"<li>{e(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(out)


def _not_run(name, title, columns, reason, notes=()) -> Table:
    return Table(name, title, columns, [], list(notes), NOT_RUN, reason)
