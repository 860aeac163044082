"""Tables and query results out as CSV: RFC 4180 (CRLF), UTF-8, a safe file name.

Cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) get a
leading apostrophe; plain numbers, negative ones included, are left as numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pandas as pd
from flask import Response, stream_with_context

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
CHUNK_ROWS = 1000  # rows per chunk written to the socket
MIMETYPE = "text/csv"


def safe_filename(name: str, default: str = "export.csv") -> str:
    """Letters, digits, '-', '_' and '.' only; anything else becomes '-'. Never empty."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:120]
    return cleaned or default


def cell(value: Any) -> Any:
    """One value as a CSV cell: None/NaN empty, times ISO 8601, JSON for structures, guarded."""
    if value.__class__ is str:  # the common case first: this runs for every cell of every row
        return guard(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) else value
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if value is pd.NaT or value is pd.NA:
        return ""
    return guard(str(value))


def guard(text: str) -> str:
    """Defuse a would-be spreadsheet formula; leave plain numbers alone."""
    if text.startswith(FORMULA_STARTS) and not NUMBER.match(text):
        return "'" + text
    return text


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV text in chunks of CHUNK_ROWS rows, so memory stays constant however many rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    pending = 0
    for row in rows:
        writer.writerow([cell(v) for v in row])
        pending += 1
        if pending >= CHUNK_ROWS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue()


def _headers(filename: str) -> dict[str, str]:
    return {
        "Content-Disposition": f'attachment; filename="{safe_filename(filename)}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def stream_csv(header: list[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    """A streamed CSV download: rows are read from `rows` while the response is being sent."""
    return stream_chunks((chunk.encode("utf-8") for chunk in csv_chunks(header, rows)), filename)


def stream_chunks(chunks: Iterable[bytes], filename: str) -> Response:
    """A streamed CSV download of ready-made UTF-8 chunks (CSV that the database wrote)."""
    return Response(
        stream_with_context(chunks),
        mimetype=MIMETYPE,
        content_type=f"{MIMETYPE}; charset=utf-8",
        headers=_headers(filename),
    )


def csv_response(df: pd.DataFrame, filename: str) -> Response:
    """A DataFrame (exactly the table on screen) as a CSV download, without its index."""
    rows = df.itertuples(index=False, name=None)
    body = "".join(csv_chunks([str(c) for c in df.columns], rows)).encode("utf-8")
    return Response(
        body,
        mimetype=MIMETYPE,
        content_type=f"{MIMETYPE}; charset=utf-8",
        headers=_headers(filename),
    )
