"""`parse_clean` skips `scrub`'s walk when a body cannot need it: it must give the very value
`scrub(parse_json(body))` gives, or the same error, for any body at all."""

from __future__ import annotations

import codecs
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.ingest.payload import parse_clean, parse_json, scrub

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30")) * 10  # pure functions: cheap cases
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True)


def reference(body: bytes | str) -> tuple[str, Any]:
    try:
        return "value", scrub(parse_json(body))
    except ValueError as exc:
        return "error", str(exc)


def fast(body: bytes | str) -> tuple[str, Any]:
    try:
        return "value", parse_clean(body)
    except ValueError as exc:
        return "error", str(exc)


def same(body: bytes | str) -> None:
    expected, found = reference(body), fast(body)
    assert found == expected
    # == cannot tell 1 from 1.0 or True: compare the types as JSON writes them too
    if expected[0] == "value":
        assert json.dumps(found[1]) == json.dumps(expected[1])


KNOWN: list[bytes | str] = [
    b'{"name": "pageview", "age": 12.5, "eid": "1e4f9a"}',
    b'{"a": "nul \\u0000 here"}',  # escaped NUL: the walk replaces it
    b'{"a": "\\ud800"}',  # a lone surrogate, escaped
    b'{"a": "\xed\xa0\x80"}',  # a lone surrogate as raw bytes
    b'{"\\u0000": 1}',  # in a key
    b'{"a": 1e999, "b": -1e999, "c": [1E400]}',  # too large for a float
    b'{"a": ' + b"9" * 400 + b".0}",
    b'{"a": 123456789012345678901234567890}',  # a large int stays an int
    codecs.BOM_UTF8 + b'{"a": 1}',
    '{"a": "é"}'.encode("utf-16"),
    '{"a": "é"}'.encode(),
    b'{"a": "raw \x00 nul"}',
    b'{"a": NaN}',
    b"[" * 5000 + b"]" * 5000,
    b"\xff\xfe\xfd",
    b"",
    '{"a": "\\ud83d\\ude00"}',  # a str, with a valid pair of escapes
    '{"a": "\udc80"}',  # a str holding a lone surrogate itself
    '{"a": 1e999}',
]


@pytest.mark.parametrize("body", KNOWN)
def test_known_bodies(body: bytes | str) -> None:
    same(body)


def loads(body: bytes | str) -> tuple[str, Any]:
    """What `parse_json` gave when it called `json.loads` itself (its decoder is made once now)."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return "value", json.loads(body, parse_constant=no_constants)
    except RecursionError:
        return "error", "JSON nested too deeply"
    except UnicodeDecodeError:
        return "error", "body is not UTF-8 text"
    except ValueError as exc:
        return "error", str(exc)


@pytest.mark.parametrize(
    "body",
    [*KNOWN, "\ufeff{}", b'{"a": -Infinity}', '{"a": "é"}'.encode("utf-32"), b"[1, 2"],
)
def test_parse_json_reads_text_as_json_loads_does(body: bytes | str) -> None:
    """The encoding from the first bytes (UTF-8, 16, 32; a UTF-8 BOM skipped), a str that starts
    with a BOM refused, and every message the same."""
    try:
        found: tuple[str, Any] = "value", parse_json(body)
    except ValueError as exc:
        found = "error", str(exc)
    assert found == loads(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@SETTINGS
@given(json_values, st.booleans())
def test_any_json_value(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)  # infinities as Infinity: refused by both
    same(text)
    same(text.encode("utf-8", "surrogatepass"))


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes(body: bytes) -> None:
    same(body)


LONG_NUMBERS: list[bytes] = [
    b'{"a": 9223372036854775807}',  # the largest 64-bit int: orjson keeps it
    b'{"a": 9223372036854775808, "b": -9223372036854775809}',  # past it: orjson makes floats
    b'{"a": 18446744073709551616}',
    b'{"a": [' + b"7" * 40 + b"]}",
    b'{"a": 0.1234567890123456789012}',  # many digits after the point: a float either way
]


@pytest.mark.parametrize("body", LONG_NUMBERS)
def test_long_numbers_read_as_json_loads_reads_them(body: bytes) -> None:
    """orjson, which reads most bodies, would turn an integer past 64 bits into a float."""
    found = parse_json(body)
    assert found == loads(body)[1]
    assert json.dumps(found) == json.dumps(loads(body)[1])
    same(body)


def same_as_loads(body: bytes | str) -> None:
    try:
        found: tuple[str, Any] = "value", parse_json(body)
    except ValueError as exc:
        found = "error", str(exc)
    expected = loads(body)
    assert found == expected
    if expected[0] == "value":
        assert json.dumps(found[1]) == json.dumps(expected[1])


@SETTINGS
@given(json_values, st.booleans())
def test_parse_json_reads_any_value_as_json_loads_does(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    same_as_loads(text.encode("utf-8", "surrogatepass"))
    same_as_loads(text)


@SETTINGS
@given(st.binary(max_size=200))
def test_parse_json_reads_any_bytes_as_json_loads_does(body: bytes) -> None:
    same_as_loads(body)
