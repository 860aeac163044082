"""Segments: the filters that narrow every dashboard view, read from and written to the URL.

One query parameter per dimension, combined with AND; several values in one parameter are
comma-separated and mean OR; a leading `!` negates the whole parameter:

    ?referrer=www.google.com,duckduckgo.com&country=!FR&prop.plan=pro

A comma or a backslash inside a value is written with a backslash before it (`a\\,b` is the one
value "a,b"), and so is a `!` that begins a value without negating it (`\\!important`).

Visit-level dimensions keep or drop whole visits (a visit is judged by its entry page view for
`entry`, `referrer` and `utm_*`, by its first event for `browser`, `os`, `device`, `country`,
and by whether any of its events in the period reached the goal for `goal`);
event-level ones keep or drop single events. A negated filter keeps what does not match,
including what has no value at all. This module only parses and formats; the SQL is in
`analytics/stats/segment.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

VISIT_DIMENSIONS = (
    "entry",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "browser",
    "os",
    "device",
    "country",
)
EVENT_DIMENSIONS = ("path", "name", "item", "source", "category")
# Visit-level too: keeps the visits that converted on the named goals (analytics/goals.py). Kept
# apart from VISIT_DIMENSIONS, which are columns of an event a table can be broken down by.
GOAL = "goal"
PROP_PREFIX = "prop."
DIRECT = "(direct)"  # the referrer of a visit that came with none, as the Referrers card says
MAX_VALUES = 20  # values in one filter
MAX_VALUE_LENGTH = 1024  # the longest stored column (path) a value can match
MAX_PROP_FILTERS = 5
MAX_KEY_LENGTH = 100


@dataclass(frozen=True)
class Condition:
    """One filter: `dimension` (or `prop.KEY`) in `values`, or not in them when `negated`."""

    dimension: str
    values: tuple[str, ...]
    negated: bool = False

    @property
    def visit_level(self) -> bool:
        return self.dimension in VISIT_DIMENSIONS or self.dimension == GOAL

    @property
    def prop_key(self) -> str | None:
        """The property name of a `prop.KEY` filter, else None."""
        return self.dimension[len(PROP_PREFIX) :] if self.is_prop else None

    @property
    def is_prop(self) -> bool:
        return self.dimension.startswith(PROP_PREFIX)

    def query_value(self) -> str:
        """The parameter's value that reads back as this condition."""
        text = ",".join(escape(v) for v in self.values)
        return ("!" if self.negated else "") + text


@dataclass(frozen=True)
class Segment:
    """Every filter of a view (AND); empty when the view is unfiltered."""

    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    @property
    def visit_conditions(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditions if c.visit_level)

    @property
    def event_conditions(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditions if not c.visit_level)

    def query_args(self) -> dict[str, str]:
        return {c.dimension: c.query_value() for c in self.conditions}

    def without(self, dimension: str) -> Segment:
        return Segment(tuple(c for c in self.conditions if c.dimension != dimension))

    def adding(self, dimension: str, value: str) -> Segment:
        """This segment with `dimension` = `value` (replacing a filter on the same dimension)."""
        added = (*self.without(dimension).conditions, Condition(dimension, (value,)))
        return Segment(tuple(sorted(added, key=_order)))


def escape(value: str) -> str:
    """One value as written in a parameter: backslash, comma and a leading `!` escaped."""
    text = value.replace("\\", "\\\\").replace(",", "\\,")
    return "\\" + text if text.startswith("!") else text


def split_values(text: str) -> tuple[bool, tuple[str, ...]]:
    """`!a,b\\,c` -> (True, ("a", "b,c")): the negation, then the unescaped values.

    Empty values are dropped; a trailing lone backslash is kept as a backslash.
    """
    negated = text.startswith("!")
    if negated:
        text = text[1:]
    values: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    values.append("".join(current))
    kept = tuple(dict.fromkeys(v.strip()[:MAX_VALUE_LENGTH] for v in values if v.strip()))
    return negated, kept[:MAX_VALUES]


def _dimensions(args: Mapping[str, str]) -> Iterable[str]:
    props = 0
    for name in args:
        if name in VISIT_DIMENSIONS or name in EVENT_DIMENSIONS or name == GOAL:
            yield name
        elif name.startswith(PROP_PREFIX) and 0 < len(name) - len(PROP_PREFIX) <= MAX_KEY_LENGTH:
            props += 1
            if props <= MAX_PROP_FILTERS:
                yield name


def parse_segment(args: Mapping[str, str]) -> Segment:
    """Read the filters out of a query string; unknown parameters and empty filters are ignored.

    Never raises: a URL typed by hand gives the closest valid segment.
    """
    conditions = []
    for dimension in _dimensions(args):
        negated, values = split_values(args.get(dimension) or "")
        if values:
            if dimension == "country":
                values = tuple(v.upper() for v in values)
            conditions.append(Condition(dimension, values, negated))
    return Segment(tuple(sorted(conditions, key=_order)))


_ORDER = {name: at for at, name in enumerate((*VISIT_DIMENSIONS, GOAL, *EVENT_DIMENSIONS))}


def _order(condition: Condition) -> tuple[int, str]:
    """One order whatever the URL's: equal segments compare equal and give equal links."""
    return _ORDER.get(condition.dimension, len(_ORDER)), condition.dimension
