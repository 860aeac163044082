"""List analytics: how items (benefits) are shown, opened and acted on, by item and position.

Both sources count: the benefits recorder's records (`show`, `showDetails`, then 15 actions, with
`item_position` = benefit_index and `list_size` = page_total) and the tracker's list events
(`impression`, `item_click`). The names come from `analytics.vocabulary`.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import FromClause, case, func, select

from ..vocabulary import DETAIL_NAMES, SHOW_NAMES
from .base import Scope, counts, frame, metric, percent, scoped

LIST_NAMES = (*SHOW_NAMES, *DETAIL_NAMES)
BEHAVIOUR_COLUMNS = ["item_id", "shows", "details", "details_pct", "actions", "actions_pct"]


@metric("items", keys=("item_id", "name"), measures=("events",))
def _item_counts(filters: Scope, ev: FromClause) -> pd.DataFrame:
    stmt = scoped(
        select(ev.c.item_id, ev.c.name, func.count().label("events")).where(
            ev.c.item_id.isnot(None)
        ),
        filters,
        ev,
    ).group_by(ev.c.item_id, ev.c.name)
    return frame(stmt, ["item_id", "name", "events"])


def list_items(filters: Scope) -> list[str]:
    """Ids of the items shown or acted on in the period, for a picker."""
    return sorted(set(counts("items", filters)["item_id"]))


def item_behaviour(filters: Scope, sort: str = "shows", descending: bool = True) -> pd.DataFrame:
    """One row per item: shows, detail views (% of shows), actions (% of detail views), then one
    column per action name with its count.

    An action is any other event on the item (a form opened, a link followed, ...).
    """
    long = counts("items", filters)
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
    counted = [c for c in out.columns if c not in ("item_id", "details_pct", "actions_pct")]
    out[counted] = out[counted].astype("int64")
    if sort not in out.columns:
        sort = "shows"
    return out.sort_values(
        [sort, "item_id"], ascending=[not descending, True], ignore_index=True, na_position="last"
    )


def _position_counts(filters: Scope, ev: FromClause, *keys: str) -> pd.DataFrame:
    shown = case((ev.c.name.in_(SHOW_NAMES), 1), else_=0)
    opened = case((ev.c.name.in_(DETAIL_NAMES), 1), else_=0)
    columns = [ev.c[k].label(k if k != "item_position" else "position") for k in keys]
    stmt = scoped(
        select(
            *columns,
            func.sum(shown).label("shows"),
            func.sum(opened).label("details"),
        ).where(
            ev.c.name.in_(LIST_NAMES),
            ev.c.item_position.isnot(None),
            ev.c.list_size.isnot(None),
        ),
        filters,
        ev,
    )
    return frame(stmt.group_by(*columns))


# Per item (for the picker), and over all items (the default view, fewer rows to add up).
metric("positions", ("position", "list_size"), ("shows", "details"))(
    lambda f, ev: _position_counts(f, ev, "item_position", "list_size")
)
metric("item_positions", ("item_id", "position", "list_size"), ("shows", "details"))(
    lambda f, ev: _position_counts(f, ev, "item_id", "item_position", "list_size")
)


def _by_position(filters: Scope, item: str | None, *keys: str) -> pd.DataFrame:
    if item:
        df = counts("item_positions", filters)
        df = df[df["item_id"] == item]
    else:
        df = counts("positions", filters)
    df = df.assign(
        position=df["position"].astype("int64"), list_size=df["list_size"].astype("int64")
    )
    df = df.groupby(list(keys), as_index=False)[["shows", "details"]].sum()
    df = df.sort_values(list(keys), ignore_index=True)
    df[["shows", "details"]] = df[["shows", "details"]].astype("int64")
    return df


def position_heatmap(filters: Scope, item: str | None = None) -> pd.DataFrame:
    """Detail-view rate by (position, list size): details / shows, with both counts.

    `rate` is empty where the cell has no shows (details without a show cannot make a rate).
    """
    df = _by_position(filters, item, "position", "list_size")
    df["rate"] = (df["details"] / df["shows"].where(df["shows"] != 0)).round(4)
    return df


def ctr_by_position(filters: Scope, item: str | None = None) -> pd.DataFrame:
    """Click-through rate (detail views / shows, in %) by position in the list, all list sizes."""
    df = _by_position(filters, item, "position")
    df["ctr_pct"] = percent(df["details"], df["shows"])
    return df
