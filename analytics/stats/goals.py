"""Goal conversions: how many visits reached each of the site's goals, and how often.

One scan of the period's events answers every goal at once: the WHERE keeps the events that reach
any goal (so the (site_id, name, occurred_at) index narrows the scan when the goals name their
events), and one pair of conditional aggregates per goal counts its visits and events.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import case, func, or_, select

from ..extensions import db
from ..goals import condition, goals_of, target
from .base import EVENTS, Scope, counts, percent, scoped, visit

COLUMNS = ["goal", "visits", "conversion_rate", "events"]


def goal_conversions(filters: Scope) -> pd.DataFrame:
    """Per goal of the site: `visits` that reached it at least once (unique conversions),
    `conversion_rate`, those visits in % of all the period's visits under the same filters (the
    Overview's Visits), and `events`, every event that reached it. Most converted first."""
    goals = [target(g) for g in goals_of(filters.site.id)]
    if not goals:
        return pd.DataFrame(columns=COLUMNS)
    ev = EVENTS
    reached = [condition(g, ev) for g in goals]
    measures = []
    for n, cond in enumerate(reached):
        measures.append(func.count(case((cond, visit(ev))).distinct()).label(f"visits_{n}"))
        measures.append(func.sum(case((cond, 1), else_=0)).label(f"events_{n}"))
    stmt = scoped(select(*measures).where(or_(*reached)), filters, ev)

    row = db.session.execute(stmt).one()
    all_visits = int(counts("summary", filters)["visits"].sum())
    rows = [
        (g.label, int(row[2 * n] or 0), int(row[2 * n + 1] or 0)) for n, g in enumerate(goals)
    ]
    df = pd.DataFrame(rows, columns=["goal", "visits", "events"])
    df["conversion_rate"] = percent(df["visits"], all_visits)
    df = df.sort_values(["visits", "goal"], ascending=[False, True], ignore_index=True)
    return df[COLUMNS]
