"""Turning request bytes into storable JSON values: strict parsing, time parsing, cleaning.

Shared by every ingest endpoint, so that no body, however odd, reaches the database in a form it
refuses (PostgreSQL rejects NUL in text and JSON; no driver encodes a lone surrogate).
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import math
import re
from typing import Any

import orjson
from pydantic import ValidationError

MAX_STORED_DEPTH = 32  # deeper payloads are kept as raw text in event_errors


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Made once: `json.loads` and `json.dumps` with any option build a new decoder or encoder at
# every call (about 1 us each, on every ingest post).
_DECODER = json.JSONDecoder(parse_constant=_no_constants)
_MEASURE = json.JSONEncoder(default=str)

# orjson reads an integer past 64 bits as a float, where `json` keeps it exact: a body with a
# run of 19 digits (from 10**18, below 2**63) is left to `json`.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")


def _orjson_loads(body: bytes | str) -> tuple[bool, Any]:
    """(True, value) when orjson reads `body` as `json` would; (False, None) when it is left to
    `json`, which then gives the value, or the error and its message.

    orjson is a C parser, about six times faster on an ingest body (3.1 against 0.5 us). Where it
    could read a body differently, it refuses it instead: NaN and Infinity, a number too large
    for a float, lone surrogates, invalid UTF-8, a BOM (in bytes or a str), UTF-16 or 32,
    nesting past 1,024 levels. Long integers are the one difference it would not refuse, hence
    `_LONG_DIGITS`. Bodies outside these agree with `json.loads` (tests/test_payload.py checks
    it on arbitrary ones, bytes and str).
    """
    long_digits = _LONG_DIGITS if isinstance(body, bytes) else _LONG_DIGITS_TEXT
    if long_digits.search(body) is not None:
        return False, None
    try:
        return True, orjson.loads(body)
    except orjson.JSONDecodeError:
        return False, None


def parse_json(body: bytes | str) -> Any:
    """Parse strict JSON (no NaN/Infinity); raise ValueError with a readable message otherwise.

    As `json.loads` reads its text: bytes in the encoding their first bytes show (UTF-8, 16 or
    32, a UTF-8 BOM skipped), and a str that starts with a BOM refused."""
    if isinstance(body, (bytes, str)):
        read, value = _orjson_loads(body)
        if read:
            return value
    try:
        if isinstance(body, (bytes, bytearray)):
            body = body.decode(json.detect_encoding(body), "surrogatepass")
        elif body.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
        return _DECODER.decode(body)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ValueError("body is not UTF-8 text") from exc


# Event times outside these years are refused by every source: nothing real happened before the
# web, and a year under 1000 is not even written with four digits by strftime (SQLite then finds
# no day in it, and the rollup queue no day to queue).
FIRST_YEAR, LAST_YEAR = 1970, 9998


def in_range(moment: dt.datetime) -> dt.datetime:
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError(f"year {moment.year} is outside {FIRST_YEAR}-{LAST_YEAR}")
    return moment


def parse_iso(value: str) -> dt.datetime:
    """ISO 8601 with a T or a space (zone-less is UTC) -> naive UTC; ValueError otherwise, or
    outside the years events may have."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
            raise ValueError("date out of range") from exc
    return in_range(moment)


def from_epoch(seconds: float) -> dt.datetime:
    """Epoch seconds -> naive UTC; ValueError (not OverflowError) when out of range."""
    try:
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError("epoch time out of range") from exc
    return in_range(moment)


def json_size(value: Any) -> int:
    """Characters of `value` written as JSON (what JSON cannot hold, as its str())."""
    return len(_MEASURE.encode(value))


def depth(value: Any, limit: int = MAX_STORED_DEPTH) -> int:
    """Nesting depth of a JSON value, counting no further than limit + 1."""
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v, limit - 1) for v in value), default=0)
    return 0


def clean_text(text: str) -> str:
    """Replace what no database stores: NUL characters and lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _finite(text: str) -> float | str:
    """A JSON number as `scrub` leaves it: a float, or the text of one too large for a float."""
    value = float(text)
    return value if math.isfinite(value) else str(value)


def parse_clean(body: bytes | str) -> Any:
    """`scrub(parse_json(body))`, without the walk over every value when the text cannot hold
    what `scrub` replaces: it took a quarter of a 50-event batch's CPU in the process.

    NUL and lone surrogates reach a parsed value only through a `\\u` escape (strict JSON refuses
    a raw control character in a string) or, in bytes, through a raw surrogate's UTF-8 form,
    which a strict decode refuses; a number too large for a float is caught as it is parsed.
    Anything else (a BOM, UTF-16, a non-ASCII str) takes the walk.
    """
    if isinstance(body, bytes):
        if b"\\u" in body or b"\x00" in body or body.startswith(codecs.BOM_UTF8):
            return scrub(parse_json(body))
        read, value = _orjson_loads(body)
        if read:
            return value
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return scrub(parse_json(body))
    elif "\\u" in body or not body.isascii():
        return scrub(parse_json(body))
    else:
        read, value = _orjson_loads(body)
        if read:
            return value
        text = body
    try:
        return json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def scrub(value: Any) -> Any:
    """Make a parsed JSON value storable on both databases (NUL, lone surrogates, infinities)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def field_errors(exc: ValidationError, whole: str = "(event)") -> list[tuple[str, str]]:
    """Pydantic errors as (field path, message) pairs, short and readable."""
    out = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"]) or whole
        out.append((loc, err["msg"].removeprefix("Value error, ")))
    return out
