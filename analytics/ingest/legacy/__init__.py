"""The three older contracts we speak so their clients keep working with only a new base URL.

One module per contract (`benefits`, `collector`, `track`), each turning a request body into event
rows for the single write path, plus `site` (which site legacy events belong to). This module holds
what they share: the reply value, strict JSON parsing, and making any payload storable.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..writer import error_row

MAX_STORED_DEPTH = 32  # deeper payloads are kept as raw text in event_errors


@dataclass
class Reply:
    """What a legacy endpoint answers: status, JSON body (None is the JSON `null`), headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes | str) -> Any:
    """Parse strict JSON (no NaN/Infinity); raise ValueError with a readable message otherwise."""
    try:
        return json.loads(body, parse_constant=_no_constants)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ValueError("body is not UTF-8 text") from exc


def parse_iso(value: str) -> dt.datetime:
    """ISO 8601 with a T or a space (zone-less is UTC) -> naive UTC; ValueError otherwise."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
            raise ValueError("date out of range") from exc
    return moment


def depth(value: Any, limit: int = MAX_STORED_DEPTH) -> int:
    """Nesting depth of a JSON value, counting no further than limit + 1."""
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v, limit - 1) for v in value), default=0)
    return 0


def _clean_text(text: str) -> str:
    # PostgreSQL refuses NUL in text and JSON, and no driver can encode a lone surrogate.
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def scrub(value: Any) -> Any:
    """Make a parsed JSON value storable on both databases (NUL, lone surrogates, infinities)."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def rejection(
    endpoint: str,
    reason: str,
    *,
    body: bytes | str | None = None,
    data: Any = None,
    site_id: int | None = None,
    body_size: int | None = None,
) -> dict[str, Any]:
    """An `event_errors` row: the parsed payload when it is storable, else the raw body."""
    size = body_size
    if size is None and body is not None:
        size = len(body if isinstance(body, bytes) else body.encode("utf-8", "replace"))
    reason = _clean_text(reason)
    if data is not None and depth(data) <= MAX_STORED_DEPTH:
        return error_row(
            endpoint, reason, payload=scrub(data), body_size=size or 0, site_id=site_id
        )
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if raw is None and data is not None:
        raw = str(data)[:8192]
    return error_row(
        endpoint,
        reason,
        raw=_clean_text(raw) if raw is not None else None,
        body_size=size or 0,
        site_id=site_id,
    )


def describe(exc: ValidationError) -> list[tuple[str, str]]:
    """Pydantic errors as (field path, message) pairs."""
    out = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        out.append((loc, err["msg"].removeprefix("Value error, ")))
    return out


def summary(exc: ValidationError) -> str:
    """One line naming every bad field: 'benefit_index: Field required; hash_id: ...'."""
    return "; ".join(f"{loc}: {msg}" for loc, msg in describe(exc))
