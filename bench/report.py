"""Figures as Markdown tables, and targets marked `met` or `missed`."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with `pct` % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


OUT_OF_REACH = " (out of reach: its floor misses it too)"


def mark(met: bool) -> str:
    return "met" if met else "**missed**"


@dataclass
class Table:
    """One suite's result: a titled Markdown table, notes under it, and the targets it missed."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def target(self, what: str, met: bool, out_of_reach: bool = False) -> str:
        """Record a target's outcome; return the cell that shows it. `out_of_reach`: missed,
        and the floor measured beside it (the least any implementation must do) misses it too."""
        beyond = OUT_OF_REACH if out_of_reach and not met else ""
        if not met:
            self.missed.append(what + beyond)
        return mark(met) + beyond

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join("---" for _ in self.header) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += self.notes
        return "\n".join(lines) + "\n"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def count(value: float) -> str:
    return f"{value:,.0f}"
