"""List analytics: how items (benefits) are shown, opened and acted on, by item and position.

Both sources count: the benefits recorder's records (`show`, `showDetails`, then 15 actions, with
`item_position` = benefit_index and `list_size` = page_total) and the tracker's list events
(`impression`, `item_click`). The names come from `analytics.vocabulary`.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import case, func, select

from ..models import Event
from ..vocabulary import DETAIL_NAMES, SHOW_NAMES
from .base import Scope, frame, percent, scoped

LIST_NAMES = (*SHOW_NAMES, *DETAIL_NAMES)
SHOWN = case((Event.name.in_(SHOW_NAMES), 1), else_=0)
OPENED = case((Event.name.in_(DETAIL_NAMES), 1), else_=0)
BEHAVIOUR_COLUMNS = ["item_id", "shows", "details", "details_pct", "actions", "actions_pct"]


def list_items(filters: Scope) -> list[str]:
    """Ids of the items shown or acted on in the period, for a picker."""
    stmt = scoped(select(Event.item_id).where(Event.item_id.isnot(None)), filters)
    return list(frame(stmt.group_by(Event.item_id).order_by(Event.item_id))["item_id"])


def item_behaviour(filters: Scope, sort: str = "shows", descending: bool = True) -> pd.DataFrame:
    """One row per item: shows, detail views (% of shows), actions (% of detail views), then one
    column per action name with its count.

    An action is any other event on the item (a form opened, a link followed, ...).
    """
    stmt = scoped(
        select(Event.item_id, Event.name, func.count().label("events")).where(
            Event.item_id.isnot(None)
        ),
        filters,
    ).group_by(Event.item_id, Event.name)
    long = frame(stmt, ["item_id", "name", "events"])
    if long.empty:
        return pd.DataFrame(columns=BEHAVIOUR_COLUMNS)
    wide = long.pivot_table(
        index="item_id", columns="name", values="events", aggfunc="sum", fill_value=0
    )
    action_names = sorted(
        (n for n in wide.columns if n not in LIST_NAMES),
        key=lambda n: (-int(wide[n].sum()), n),
    )
    out = pd.DataFrame(index=wide.index)
    out["shows"] = wide.reindex(columns=list(SHOW_NAMES), fill_value=0).sum(axis=1)
    out["details"] = wide.reindex(columns=list(DETAIL_NAMES), fill_value=0).sum(axis=1)
    out["details_pct"] = percent(out["details"], out["shows"])
    out["actions"] = wide[action_names].sum(axis=1) if action_names else 0
    out["actions_pct"] = percent(out["actions"], out["details"])
    for name in action_names:
        out[name] = wide[name]
    out = out.reset_index().rename_axis(columns=None)
    counts = [c for c in out.columns if c not in ("item_id", "details_pct", "actions_pct")]
    out[counts] = out[counts].astype("int64")
    if sort not in out.columns:
        sort = "shows"
    return out.sort_values(
        [sort, "item_id"], ascending=[not descending, True], ignore_index=True, na_position="last"
    )


def _by_position(filters: Scope, item: str | None, *keys) -> pd.DataFrame:
    stmt = scoped(
        select(
            *keys,
            func.sum(SHOWN).label("shows"),
            func.sum(OPENED).label("details"),
        ).where(
            Event.name.in_(LIST_NAMES),
            Event.item_position.isnot(None),
            Event.list_size.isnot(None),
        ),
        filters,
    )
    if item:
        stmt = stmt.where(Event.item_id == item)
    df = frame(stmt.group_by(*keys).order_by(*keys))
    df[["shows", "details"]] = df[["shows", "details"]].astype("int64")
    return df


def position_heatmap(filters: Scope, item: str | None = None) -> pd.DataFrame:
    """Detail-view rate by (position, list size): details / shows, with both counts.

    `rate` is empty where the cell has no shows (details without a show cannot make a rate).
    """
    df = _by_position(
        filters,
        item,
        Event.item_position.label("position"),
        Event.list_size.label("list_size"),
    )
    df["rate"] = (df["details"] / df["shows"].where(df["shows"] != 0)).round(4)
    return df


def ctr_by_position(filters: Scope, item: str | None = None) -> pd.DataFrame:
    """Click-through rate (detail views / shows, in %) by position in the list, all list sizes."""
    df = _by_position(filters, item, Event.item_position.label("position"))
    df["ctr_pct"] = percent(df["details"], df["shows"])
    return df
