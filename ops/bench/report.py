"""The bench's report: figures with their targets, ratios to the peers, pass or miss (and by how much)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    op: str  # ">=" (at least) or "<" (below)
    value: float

    def text(self, unit: str) -> str:
        return f"{self.op} {fmt(self.value, unit)}"


@dataclass
class Row:
    key: str
    label: str
    value: float | None
    unit: str
    target: Target | None = None
    peers: str = ""
    note: str = ""
    result: str = field(default="", init=False)

    def evaluate(self) -> None:
        if self.target is None:
            self.result = "" if self.value is not None else "n/a"
            return
        if self.value is None:
            self.result = "MISS: not measured" + (f" ({short_text(self.note)})" if self.note else "")
            return
        goal, value, unit = self.target.value, self.value, self.unit
        if self.target.op == ">=":
            if value >= goal:
                self.result = f"pass ({value / goal:.2f}x the target)"
            elif unit == "x":
                self.result = f"MISS: {value / goal:.0%} of target; the worker needs {goal / value:.1f}x its rate"
            else:
                short = goal - value
                factor = f"needs {goal / value:.1f}x" if value > 0 else "nothing measured"
                self.result = f"MISS by {fmt(short, unit)} ({value / goal:.0%} of target; {factor})"
        else:
            if value < goal:
                self.result = f"pass ({value / goal:.0%} of the limit)"
            else:
                self.result = f"MISS by {fmt(value - goal, unit)} ({value / goal:.1f}x the limit)"


def short_text(text: str, limit: int = 90) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in {"ev/s", "req/s", "sessions/s", "records/s"}:
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "µs":
        return f"{value:,.2f} µs"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.2f} {unit}".strip()


def ratio_text(value: float | None, peers: dict[str, float | None]) -> str:
    parts = []
    for name, other in peers.items():
        if value is not None and other:
            parts.append(f"{value / other:.2f}x {name}")
    return ", ".join(parts)


def render(title: str, sections: list[tuple[str, list[Row]]], notes: list[str]) -> str:
    headers = ("figure", "value", "target", "vs peers", "result")
    for row in (r for _, rows in sections for r in rows):
        row.evaluate()
    widths = [len(h) for h in headers]
    table: list[tuple[str, list[list[str]]]] = []
    for name, rows in sections:
        cells = [
            [r.label, fmt(r.value, r.unit), r.target.text(r.unit) if r.target else "", r.peers, r.result] for r in rows
        ]
        for cell in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, cell, strict=True)]
        table.append((name, cells))
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str]) -> str:
        out = []
        for i, (w, c) in enumerate(zip(widths, cells, strict=True)):
            out.append(f" {c.rjust(w) if i == 1 else c.ljust(w)} ")
        return "|" + "|".join(out) + "|"

    lines_text = [title, sep, line(list(headers)), sep]
    for name, cells in table:
        lines_text.append(line([f"[{name}]", "", "", "", ""]))
        lines_text.extend(line(c) for c in cells)
        lines_text.append(sep)
    lines_text.extend(notes)
    return "\n".join(lines_text)


def rows_json(sections: list[tuple[str, list[Row]]]) -> list[dict[str, Any]]:
    out = []
    for section, rows in sections:
        for row in rows:
            item = asdict(row)
            item["section"] = section
            item["target"] = asdict(row.target) if row.target else None
            out.append(item)
    return out
