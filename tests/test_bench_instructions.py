"""The instructions driver posts each of our ingest endpoints the ingest suite's own body, with
every placeholder filled: a placeholder left in would count a request the suite never sends
(a 422, or one session for every request)."""

from __future__ import annotations

import json

import pytest

from bench import instructions
from bench.ingest import MARKS


@pytest.mark.parametrize("name", list(instructions.OURS))
def test_each_post_gets_a_filled_body_of_its_own(monkeypatch, name):
    monkeypatch.setenv("BENCH_SITE_ID", "1")
    monkeypatch.setenv("BENCH_PUBLIC_ID", "site-abc")
    case = instructions._case(name)
    assert case.path == instructions.OURS[name] and case.per == 1

    first, second = (instructions.body_of(case, "0a1b2c3d", n) for n in (7, 8))
    for body in (first, second):
        text = body.decode()
        assert not any(mark in text for mark in MARKS), text
        json.loads(text)
    assert first != second  # a visit (and a collector timestamp) per request
    if name == "ours":
        assert json.loads(first)["site"] == "site-abc"
