"""Goals and funnels of a site: defining them, and what an `events` row must be to count.

A goal is something a visit can do that the site counts as a conversion (see `models.Goal`); a
funnel is 2 to 8 ordered steps, each a goal or an inline page or event. Both are resolved into a
`Target`, the one shape the stats layer turns into SQL (`condition`), so a goal in the Goals card,
a funnel's step and the `goal=` filter match exactly the same events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import GOAL_KINDS, Funnel, Goal, Site
from .sites import InvalidInput
from .vocabulary import PAGEVIEW

MAX_NAME = 100
MAX_PATH = 1024  # events.path
MAX_EVENT = 100  # events.name
MAX_ITEM = 200  # events.item_id
MAX_PROPS = 10
MAX_PROP_KEY = 100
MAX_PROP_VALUE = 1024
MIN_STEPS, MAX_STEPS = 2, 8
ANY_ITEM = "*"


@dataclass(frozen=True)
class Target:
    """What an event must be to reach a goal or a funnel step (NULL `item_id` on a benefit: any
    item); `label` names it in tables and charts."""

    label: str
    kind: str
    path: str | None = None
    event_name: str | None = None
    props: tuple[tuple[str, str], ...] = ()
    item_id: str | None = None


def target(goal: Goal) -> Target:
    props = tuple(sorted((str(k), str(v)) for k, v in (goal.props or {}).items()))
    return Target(goal.name, goal.kind, goal.path, goal.event_name, props, goal.item_id)


# --- validation ---------------------------------------------------------------------------


def _text(value: str | None, what: str, limit: int) -> str:
    value = (value or "").strip()
    if not value or len(value) > limit:
        raise InvalidInput(f"{what} is 1 to {limit} characters")
    if "\x00" in value:
        raise InvalidInput(f"{what} may not contain a NUL character")
    return value


def _path(value: str | None) -> str:
    path = _text(value, "a page path", MAX_PATH)
    if not path.startswith(("/", "*")):
        raise InvalidInput(f"a page path starts with / (or *): {path!r}")
    return path


def parse_props(pairs: Iterable[str]) -> dict[str, str]:
    """`["plan=pro", "step=2"]` -> {"plan": "pro", "step": "2"}: the equalities of an event goal."""
    props: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"a property is KEY=VALUE: {pair!r}")
        props[_text(key, "a property name", MAX_PROP_KEY)] = value.strip()[:MAX_PROP_VALUE]
    return _props(props)


def _props(props: Mapping[str, Any] | None) -> dict[str, str]:
    found = {
        _text(str(k), "a property name", MAX_PROP_KEY): str(v)[:MAX_PROP_VALUE]
        for k, v in (props or {}).items()
    }
    if len(found) > MAX_PROPS:
        raise InvalidInput(f"an event goal has at most {MAX_PROPS} property equalities")
    return found


def _unique_commit(what: str) -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput(f"{what} already exists") from None


# --- goals --------------------------------------------------------------------------------


def goals_of(site_id: int) -> list[Goal]:
    return list(
        db.session.execute(
            select(Goal).where(Goal.site_id == site_id).order_by(Goal.name)
        ).scalars()
    )


def goal_named(site_id: int, name: str) -> Goal | None:
    return db.session.execute(
        select(Goal).where(Goal.site_id == site_id, Goal.name == name)
    ).scalar_one_or_none()


def create_goal(
    site: Site,
    name: str,
    kind: str,
    *,
    path: str | None = None,
    event_name: str | None = None,
    props: Mapping[str, Any] | None = None,
    item_id: str | None = None,
) -> Goal:
    """Validate and commit a goal. A benefit goal's `item_id` of None or `*` means any item."""
    name = _text(name, "a goal name", MAX_NAME)
    if kind not in GOAL_KINDS:
        raise InvalidInput(f"a goal is one of {', '.join(GOAL_KINDS)}, not {kind!r}")
    goal = Goal(site_id=site.id, name=name, kind=kind)
    if kind == "page":
        goal.path = _path(path)
    else:
        goal.event_name = _text(event_name, "an event name", MAX_EVENT)
    if kind == "event":
        goal.props = _props(props) or None
    if kind == "benefit":
        item = (item_id or "").strip()
        goal.item_id = None if item in ("", ANY_ITEM) else _text(item, "a benefit id", MAX_ITEM)
    if goal_named(site.id, name) is not None:
        raise InvalidInput(f"goal {name!r} already exists")
    db.session.add(goal)
    _unique_commit(f"goal {name!r}")
    return goal


def delete_goal(site: Site, name: str) -> None:
    """Delete a goal; refused while a funnel of the site uses it as a step."""
    goal = goal_named(site.id, name.strip())
    if goal is None:
        raise InvalidInput(f"no goal named {name.strip()!r}")
    users = [f.name for f in funnels_of(site.id) if {"goal": goal.name} in f.steps]
    if users:
        raise InvalidInput(f"goal {goal.name!r} is a step of funnel(s) {', '.join(users)}")
    db.session.delete(goal)
    db.session.commit()


def describe(goal: Goal) -> str:
    """A goal's definition in words, for lists."""
    if goal.kind == "page":
        return f"page view of {goal.path}"
    if goal.kind == "event":
        props = ", ".join(f"{k}={v}" for k, v in sorted((goal.props or {}).items()))
        return f"event {goal.event_name}" + (f" with {props}" if props else "")
    return f"{goal.event_name} on {goal.item_id or 'any benefit'}"


# --- funnels ------------------------------------------------------------------------------


def parse_step(text: str, site_id: int) -> dict[str, str]:
    """One step as typed: `path:/x` (a page, `*` wildcards allowed), `event:name`, or the name of
    one of the site's goals."""
    text = (text or "").strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in ("path", "event"):
        if kind == "path":
            return {"path": _path(rest)}
        return {"event": _text(rest, "an event name", MAX_EVENT)}
    if goal_named(site_id, text) is None:
        raise InvalidInput(f"a step is path:/x, event:NAME or a goal's name; no goal {text!r}")
    return {"goal": text}


def resolve_steps(steps: Iterable[Mapping[str, str]], site_id: int) -> list[Target]:
    """Stored or parsed steps as targets; a missing goal is an error that names it."""
    found = []
    for step in steps:
        if "goal" in step:
            goal = goal_named(site_id, step["goal"])
            if goal is None:
                raise InvalidInput(f"no goal named {step['goal']!r}")
            found.append(target(goal))
        elif "path" in step:
            found.append(Target(step["path"], "page", path=step["path"]))
        elif "event" in step:
            found.append(Target(step["event"], "event", event_name=step["event"]))
        else:
            raise InvalidInput(f"not a step: {dict(step)!r}")
    return found


def check_step_count(steps: list[Any]) -> None:
    if not MIN_STEPS <= len(steps) <= MAX_STEPS:
        raise InvalidInput(f"a funnel has {MIN_STEPS} to {MAX_STEPS} steps, not {len(steps)}")


def funnels_of(site_id: int) -> list[Funnel]:
    return list(
        db.session.execute(
            select(Funnel).where(Funnel.site_id == site_id).order_by(Funnel.name)
        ).scalars()
    )


def funnel_named(site_id: int, name: str) -> Funnel | None:
    return db.session.execute(
        select(Funnel).where(Funnel.site_id == site_id, Funnel.name == name)
    ).scalar_one_or_none()


def create_funnel(site: Site, name: str, steps: Iterable[str]) -> Funnel:
    """Validate and commit a funnel from its steps as typed (see `parse_step`)."""
    name = _text(name, "a funnel name", MAX_NAME)
    texts = [s for s in steps if s.strip()]
    check_step_count(texts)
    parsed = [parse_step(s, site.id) for s in texts]
    if funnel_named(site.id, name) is not None:
        raise InvalidInput(f"funnel {name!r} already exists")
    funnel = Funnel(site_id=site.id, name=name, steps=parsed)
    db.session.add(funnel)
    _unique_commit(f"funnel {name!r}")
    return funnel


def delete_funnel(site: Site, name: str) -> None:
    funnel = funnel_named(site.id, name.strip())
    if funnel is None:
        raise InvalidInput(f"no funnel named {name.strip()!r}")
    db.session.delete(funnel)
    db.session.commit()


def step_text(step: Mapping[str, str]) -> str:
    """A stored step as it is typed: the inverse of `parse_step`."""
    if "path" in step:
        return f"path:{step['path']}"
    if "event" in step:
        return f"event:{step['event']}"
    return step.get("goal", "")


# --- SQL ----------------------------------------------------------------------------------


def condition(found: Target, ev: FromClause) -> ColumnElement:
    """The WHERE condition an `events`-shaped row meets when it reaches `found`."""
    from .stats.dialect import path_matches
    from .stats.segment import prop_value

    if found.kind == "page":
        return and_(ev.c.name == PAGEVIEW, path_matches(ev.c.path, found.path or ""))
    clauses = [ev.c.name == found.event_name]
    clauses += [prop_value(ev, key) == value for key, value in found.props]
    if found.kind == "benefit":
        item = ev.c.item_id
        clauses.append(item.isnot(None) if found.item_id is None else item == found.item_id)
    return and_(*clauses)
