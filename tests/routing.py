"""Would this statement route to one Citus shard? A checker for tests (see tests/test_routing.py).

On Citus, `events` and the rollup tables would be distributed by `site_id`; `sites`, `users`,
`categories` and the rest would be reference tables (a copy on every node). A statement goes to
one shard when every distributed table it reads or writes is pinned to one site:

- a SELECT, UPDATE or DELETE has, in each of its scopes (the statement, every CTE and subquery),
  for each distributed table: `site_id = <value>`, `site_id IN (<values>)`,
  `site_id = ANY(<value>)` or `(site_id, ...) IN ((<value>, ...), ...)` among the conditions that
  are ANDed in its WHERE (or in the ON of an inner join), or an equality of its `site_id` with the
  `site_id` of a table so pinned (in this scope or an enclosing one);
- two distributed tables in one scope are joined on `site_id` (Citus joins co-located shards);
- an INSERT into a distributed table names `site_id` among its columns, so that each row carries
  its shard key (a SELECT feeding it is a scope like any other).

A statement marked `/* all sites: <why> */` is exempt: maintenance that is multi-site by design.
The check is deliberately strict and syntactic: a condition under OR, or a site pinned only
through a reference table (`e.site_id = s.id AND s.id = 3`), does not count.

`recorder` collects the statements to check: what SQLAlchemy sends (its `before_cursor_execute`
event) and what the ingest writer runs on a raw psycopg cursor, inside `watched` (or, with
`requests=True`, while a Flask app serves a request, its streamed body included).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa
import sqlglot
from flask import Flask
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

DISTRIBUTED = frozenset(
    {"events", "rollup_facts", "rollup_presence", "rollup_span_events", "rollup_queue",
     "rollup_visit_days"}
)
SHARD_KEY = "site_id"

ALL_SITES = re.compile(r"/\*\s*all sites:\s*(?P<why>.*?)\s*\*/", re.DOTALL)
_PARAM = re.compile(r"%\(\w+\)s|%s")
_PIN = "<pinned>"  # the union-find node every pinned site_id joins


def exemption(sql: str) -> str | None:
    """Why the statement may read every site (its `/* all sites: ... */` comment), or None."""
    found = ALL_SITES.search(sql)
    return found.group("why") if found else None


def _parse(sql: str) -> list[exp.Expression]:
    """Parse the statement as psycopg gets it: its placeholders become a literal first."""
    literal = _PARAM.sub("0", sql.replace("%%", "%"))
    return [tree for tree in sqlglot.parse(literal, read="postgres") if tree is not None]


def _conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    """The conditions ANDed at the top of a WHERE or ON."""
    if condition is None:
        return []
    while isinstance(condition, (exp.Paren, exp.Where)):
        condition = condition.this
    if isinstance(condition, exp.And):
        return _conjuncts(condition.left) + _conjuncts(condition.right)
    return [condition]


def _constant(value: exp.Expression) -> bool:
    """A value known before the statement runs: a literal, a parameter, a cast or array of them."""
    return value.find(exp.Column, exp.Query) is None


@dataclass
class _Block:
    """One scope's tables and the conditions that may pin them."""

    label: str
    tables: dict[str, str]  # alias -> table name, for tables selected in this scope
    # (condition, aliases it may restrict; None: all of them)
    conditions: list[tuple[exp.Expression, frozenset[str] | None]] = field(default_factory=list)
    parent: _Block | None = None
    pinned: set[str] | None = None  # computed by _pin
    joined: dict[str, str] | None = None  # alias -> its group of tables joined on site_id

    @property
    def distributed(self) -> list[str]:
        return [alias for alias, name in self.tables.items() if name in DISTRIBUTED]


def _alias_of(relation: exp.Expression) -> str:
    return relation.alias_or_name


def _select_block(scope: Scope, parent: _Block | None) -> _Block:
    select = scope.expression
    tables = {
        alias: source.name
        for alias, (_node, source) in scope.selected_sources.items()
        if isinstance(source, exp.Table)
    }
    block = _Block(select.sql()[:160], tables, parent=parent)
    block.conditions += [(c, None) for c in _conjuncts(select.args.get("where"))]
    seen: list[str] = [_alias_of(select.args["from_"].this)] if select.args.get("from_") else []
    for join in select.args.get("joins") or []:
        alias = _alias_of(join.this)
        side = (join.side or "").upper()
        # An outer join's ON filters only its nullable side.
        limit = {"LEFT": frozenset({alias}), "RIGHT": frozenset(seen), "FULL": frozenset()}
        restricts = limit.get(side)
        block.conditions += [(c, restricts) for c in _conjuncts(join.args.get("on"))]
        for name in join.args.get("using") or []:
            if name.name == SHARD_KEY:
                for other in seen:
                    same = exp.EQ(
                        this=exp.column(SHARD_KEY, table=other),
                        expression=exp.column(SHARD_KEY, table=alias),
                    )
                    block.conditions.append((same, restricts))
        seen.append(alias)
    return block


def _dml_block(statement: exp.Expression) -> _Block:
    """UPDATE or DELETE: its target and FROM / USING tables, under its WHERE."""
    relations = [statement.this]
    from_ = statement.args.get("from_")
    if isinstance(from_, exp.From):
        relations.append(from_.this)
    using = statement.args.get("using")
    relations += using if isinstance(using, list) else [using] if using is not None else []
    tables = {_alias_of(r): r.name for r in relations if isinstance(r, exp.Table)}
    block = _Block(statement.sql()[:160], tables)
    block.conditions += [(c, None) for c in _conjuncts(statement.args.get("where"))]
    return block


def _key_of(value: exp.Expression, block: _Block) -> str | None:
    """The node of a `site_id` column: an alias of the block, or _PIN when it is the site_id of
    an enclosing scope's table pinned there (a correlated subquery)."""
    if not isinstance(value, exp.Column) or value.name != SHARD_KEY:
        return None
    if not value.table:
        # Unqualified: the scope's only table, or its only distributed one.
        candidates = list(block.tables) if len(block.tables) == 1 else block.distributed
        return candidates[0] if len(candidates) == 1 else None
    if value.table in block.tables:
        return value.table
    outer = block.parent
    while outer is not None:
        if value.table in outer.tables:
            return _PIN if value.table in _pin(outer) else f"outer {value.table}"
        outer = outer.parent
    return None


def _equalities(condition: exp.Expression, block: _Block) -> list[tuple[str, str]]:
    """The (node, node) pairs whose site_id a condition makes equal; _PIN is a fixed site."""
    if isinstance(condition, exp.EQ):
        left, right = condition.this, condition.expression
        a, b = _key_of(left, block), _key_of(right, block)
        if a and b:
            return [(a, b)]
        for key, value in ((a, right), (b, left)):
            if key and isinstance(value, exp.Any):
                value = value.this
            if key and _constant(value):
                return [(key, _PIN)]
        return []
    if isinstance(condition, exp.In) and not condition.args.get("query"):
        values = condition.expressions
        if not values or not all(_constant(v) for v in values):
            return []
        subject = condition.this
        if isinstance(subject, exp.Tuple):  # (site_id, day) IN ((1, ...), ...)
            keys = [_key_of(column, block) for column in subject.expressions]
            return [(key, _PIN) for key in keys if key]
        key = _key_of(subject, block)
        return [(key, _PIN)] if key else []
    return []


def _pin(block: _Block) -> set[str]:
    """The aliases of the block pinned to one site (and fill in `block.joined`)."""
    if block.pinned is not None:
        return block.pinned
    edges: list[tuple[str, str]] = []  # (a, b): b is pinned when a is
    joined: dict[str, str] = {}  # union-find over site_id = site_id between tables

    def root(node: str) -> str:
        while joined.get(node, node) != node:
            node = joined[node]
        return node

    for condition, restricts in block.conditions:
        for a, b in _equalities(condition, block):
            # An outer join's ON restricts only its nullable side.
            edges += [(x, y) for x, y in ((a, b), (b, a)) if restricts is None or y in restricts]
            if _PIN not in (a, b):
                joined[root(a)] = root(b)
    pinned = {_PIN}
    grew = True
    while grew:
        before = len(pinned)
        pinned |= {b for a, b in edges if a in pinned}
        grew = len(pinned) > before
    block.pinned = pinned & set(block.tables)
    block.joined = {alias: root(alias) for alias in block.tables}
    return block.pinned


def _block_problems(block: _Block) -> list[str]:
    pinned = _pin(block)
    joined = block.joined or {}
    distributed = block.distributed
    problems = []
    for alias in distributed:
        if alias not in pinned:
            name = block.tables[alias]
            shown = name if alias == name else f"{name} AS {alias}"
            problems.append(f"{shown} has no site_id condition in: {block.label}")
    for i, a in enumerate(distributed):
        for b in distributed[i + 1 :]:
            if joined[a] != joined[b]:
                problems.append(f"{a} and {b} are not joined on site_id in: {block.label}")
    return problems


def _insert_problems(statement: exp.Insert) -> list[str]:
    target = statement.this
    table = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table, exp.Table) or table.name not in DISTRIBUTED:
        return []
    if isinstance(target, exp.Schema):
        columns = {c.name for c in target.expressions}
        if SHARD_KEY not in columns:
            return [f"INSERT INTO {table.name} does not set site_id"]
    return []


@functools.lru_cache(maxsize=4096)
def problems(sql: str) -> tuple[str, ...]:
    """Why the statement would not route to one shard; empty when it would (or is exempt)."""
    if exemption(sql) is not None:
        return ()
    if not any(re.search(rf"\b{name}\b", sql, re.IGNORECASE) for name in DISTRIBUTED):
        return ()
    try:
        statements = _parse(sql)
    except SqlglotError as exc:
        return (f"cannot parse ({exc.__class__.__name__}): {sql[:200]}",)
    found: list[str] = []
    for statement in statements:
        if isinstance(statement, exp.Command):
            found.append(f"cannot read this statement: {sql[:200]}")
            continue
        found += _statement_problems(statement)
    return tuple(found)


def _statement_problems(statement: exp.Expression) -> list[str]:
    found: list[str] = []
    dml: _Block | None = None
    if isinstance(statement, (exp.Update, exp.Delete)):
        dml = _dml_block(statement)
        found += _block_problems(dml)
    elif isinstance(statement, exp.Insert):
        found += _insert_problems(statement)
    blocks: dict[int, _Block] = {}

    def block_of(scope: Scope | None) -> _Block | None:
        if scope is None:
            return None
        if isinstance(scope.expression, (exp.Update, exp.Delete)):
            return dml
        if not isinstance(scope.expression, exp.Select):
            return block_of(scope.parent)  # a UNION, or a bare table of UPDATE ... FROM
        if id(scope) not in blocks:
            blocks[id(scope)] = _select_block(scope, block_of(scope.parent))
        return blocks[id(scope)]

    for scope in traverse_scope(statement):
        if isinstance(scope.expression, exp.Select):
            found += _block_problems(block_of(scope))  # type: ignore[arg-type]
    return found


def unroutable(statements: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The statements that would not route to one shard, each with why."""
    return [(sql, found) for sql in sorted(statements) if (found := problems(sql))]


def report(found: list[tuple[str, tuple[str, ...]]], when: str) -> str:
    """A failure message naming each statement."""
    lines = [f"statements sent {when} would not route to one Citus shard:"]
    for sql, why in found:
        lines += [f"- {reason}" for reason in why] + [f"  statement: {sql}"]
    return "\n".join(lines)


# --- recording what is sent ------------------------------------------------------------------

_RECORDING: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "routing_recording", default=None
)


@contextlib.contextmanager
def watched(sent: set[str]) -> Iterator[None]:
    """Record into `sent` (a `recorder`'s) what this context (thread) sends inside."""
    token = _RECORDING.set(sent)
    try:
        yield
    finally:
        _RECORDING.reset(token)


class _WatchedBody:
    """A response body whose production (a streamed CSV) is watched as its request was."""

    def __init__(self, body: Iterable[bytes], sent: set[str]) -> None:
        self.body, self.chunks, self.sent = body, iter(body), sent

    def __iter__(self) -> _WatchedBody:
        return self

    def __next__(self) -> bytes:
        with watched(self.sent):
            return next(self.chunks)

    def close(self) -> None:
        with watched(self.sent):
            getattr(self.body, "close", lambda: None)()


@contextlib.contextmanager
def recorder(requests: bool = False) -> Iterator[set[str]]:
    """Collect the PostgreSQL statements sent while `watched` by the set yielded; with
    `requests`, while any Flask app serves a request (test client or a server thread)."""
    sent: set[str] = set()

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        target = _RECORDING.get()
        if target is not None and conn.dialect.name == "postgresql":
            target.add(statement)

    # The ingest writer executes on the raw psycopg connection (analytics/ingest/writer.py),
    # which no SQLAlchemy event sees. (SQLAlchemy's own statements pass here too: a set.)
    execute = psycopg.Cursor.execute

    def raw_execute(self: psycopg.Cursor, query: Any, *args: Any, **kwargs: Any) -> Any:
        target = _RECORDING.get()
        if target is not None and isinstance(query, str):
            target.add(query)
        return execute(self, query, *args, **kwargs)

    serve = Flask.__call__

    def watched_serve(self: Flask, environ: dict[str, Any], start_response: Any) -> Any:
        with watched(sent):
            return _WatchedBody(serve(self, environ, start_response), sent)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before_cursor_execute)
    psycopg.Cursor.execute = raw_execute  # type: ignore[method-assign]
    if requests:
        Flask.__call__ = watched_serve  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        Flask.__call__ = serve  # type: ignore[method-assign]
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", before_cursor_execute)
