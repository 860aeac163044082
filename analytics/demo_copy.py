"""Demo traffic loaded into PostgreSQL with `COPY ... FROM STDIN`, for millions of events.

The events are those of `demo_data.generate` (same visits, same shape), built straight into COPY
text lines instead of `event_row` dicts. A second process generates while this one copies, so
generation (Python, one core) and the server's COPY (another core) overlap. Rows go in large COPY
statements (`STATEMENT_ROWS`, one transaction each): statement-level triggers on `events` then
fire once per statement, not once per row.

Only for fresh demo rows: there is no ON CONFLICT here, and every row gets a new id (a
time-ordered UUID of its own time), so loading a seed twice stores it twice, as the write path
would.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import random
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from .demo_data import generate

STATEMENT_ROWS = 1_000_000  # rows per COPY statement (and transaction)
CHUNK_ROWS = 5_000  # rows per block handed from the generating process to the copying one

COLUMNS = (
    "site_id", "occurred_at", "id", "received_at", "source", "name", "category", "session_id",
    "visitor_id", "path", "referrer", "utm_source", "utm_medium", "utm_campaign", "browser", "os",
    "device", "country", "item_id", "item_position", "list_size", "schema_version", "props",
)  # fmt: skip
COPY_SQL = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN"
_TEXT_FIELDS = COLUMNS[6:21]  # category .. list_size, read from the visit's fields
_NULL = "\\N"
_EPOCH = dt.datetime(1970, 1, 1)
_MS = dt.timedelta(milliseconds=1)
_ids = random.Random()  # not the demo's seed: ids must be new on every load
_props_text: dict[str, str] = {}


def _json(props: dict[str, Any]) -> str:
    """Props as COPY text: JSON, with backslashes doubled (COPY's escape character)."""
    key = repr(props)  # the demo reuses a few dozen props; dumping each again costs more
    text = _props_text.get(key)
    if text is None:
        text = json.dumps(props, separators=(",", ":"), ensure_ascii=False)
        text = text.replace("\\", "\\\\")
        if len(_props_text) < 10_000:
            _props_text[key] = text
    return text


def copy_line(site_id: int, at: dt.datetime, name: str, fields: dict[str, Any]) -> str:
    """One `events` row as a line of COPY text (columns `COLUMNS`); demo values need no escaping."""
    when = at.isoformat(" ")
    ms = (at - _EPOCH) // _MS
    rand = _ids.getrandbits(74)
    # The layout of models.new_event_id (version 7), from the event's own time.
    uid = ms << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62 | rand & ((1 << 62) - 1)
    get = fields.get
    values = [_NULL if (v := get(k)) is None else str(v) for k in _TEXT_FIELDS]
    props = get("props")
    return "\t".join(
        (
            str(site_id), when, f"{uid:032x}", when, fields["source"], name, *values,
            str(get("schema_version", 1)), _NULL if props is None else _json(props),
        )
    )  # fmt: skip


def blocks(
    site_id: int,
    days: int,
    events: int,
    *,
    now: dt.datetime | None = None,
    seed: int | None = None,
    chunk: int = CHUNK_ROWS,
) -> Iterator[bytes]:
    """The demo events as COPY text, `chunk` lines per block."""
    lines: list[str] = []
    for line in generate(site_id, days, events, now=now, seed=seed, make=copy_line):
        lines.append(line)
        if len(lines) == chunk:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def _produce(sender: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The generating process: send each block, then an empty one to say the end."""
    _ids.seed()  # a forked child starts from its parent's state: its ids would repeat
    try:
        for block in blocks(*args, **kwargs):
            sender.send_bytes(block)
        sender.send_bytes(b"")
    finally:
        sender.close()


def _in_background(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[bytes]:
    """`blocks(*args, **kwargs)`, generated in a child process while the caller copies."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(
        target=_produce, args=(sender, args, kwargs), daemon=True
    )
    child.start()
    sender.close()
    try:
        while block := receiver.recv_bytes():  # EOFError if the child died
            yield block
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
        child.join()


def copy_blocks(
    url: str,
    source: Iterator[bytes],
    *,
    statement_rows: int = STATEMENT_ROWS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """COPY blocks of lines into `events`, in statements of about `statement_rows`; return rows."""
    stored = 0
    with psycopg.connect(url) as conn:
        pending = next(source, None)
        while pending is not None:
            in_statement = 0
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                while pending is not None and in_statement < statement_rows:
                    copy.write(pending)
                    rows = pending.count(b"\n")
                    in_statement += rows
                    if progress is not None:
                        progress(rows)
                    pending = next(source, None)
            stored += in_statement
    return stored


def load(
    url: str,
    site_id: int,
    days: int,
    events: int,
    *,
    seed: int | None = None,
    now: dt.datetime | None = None,
    progress: Callable[[int], None] | None = None,
    background: bool = True,
) -> int:
    """Generate and COPY `events` demo events into a site; return how many were stored.

    `url` is a libpq URL (`postgresql://...`). With `background`, a second process generates.
    """
    args, kwargs = (site_id, days, events), {"now": now, "seed": seed}
    source = _in_background(args, kwargs) if background else blocks(*args, **kwargs)
    try:
        return copy_blocks(url, source, progress=progress)
    finally:
        source.close()  # stops the child on an error or Ctrl-C
