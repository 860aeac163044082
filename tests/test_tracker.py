"""The tracker as served: minified from the readable source, within budget, gzipped, cacheable.

That the minified script still works is proven in a real browser (test_tracker_browser.py), which
loads exactly these bytes.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys

import pytest

from analytics.tracker import BUDGET, SOURCE, _short_number, minify, tracker_build


def test_the_served_tracker_is_within_the_size_budget() -> None:
    build = tracker_build()
    assert len(build.gzipped) <= BUDGET
    assert gzip.decompress(build.gzipped) == build.minified
    assert len(build.minified) < build.source_size / 2


def test_the_bench_prints_the_served_size_and_passes() -> None:
    bench = os.path.join(os.path.dirname(SOURCE), "..", "..", "bench", "tracker_size.py")
    done = subprocess.run(
        [sys.executable, bench], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(tracker_build().gzipped)} bytes gzipped (budget {BUDGET})" in done.stdout


def test_minified_keeps_what_the_page_and_server_see() -> None:
    text = tracker_build().minified.decode()
    # Comments gone; strings, property names and the public API intact.
    assert "/*" not in text and "Analytics tracker" not in text
    for kept in ('"/api/events"', '"data-site"', "list_size", "analytics", "sendBeacon"):
        assert kept in text
    # Local names are shortened: the readable ones do not survive.
    assert "trackItem" not in text and "attributeProps" not in text


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("var a = 1; var b = 2; f(a, b);", "var a=1,b=2;f(a,b)"),
        ("x(true, false);", "x(!0,!1)"),
        ("x(0.5, 1000, 5000, 25, 100, 0);", "x(.5,1e3,5e3,25,100,0)"),
        ("if (a) { b(); }", "if(a)b()"),
        # The else belongs to the outer if: its braces must stay.
        ("if (a) { if (b) c(); } else d();", "if(a){if(b)c()}else d()"),
        ("(function (longName) { return longName + 1; })(2);", "(function(a){return a+1})(2)"),
    ],
)
def test_minify_rewrites_keep_the_meaning(source: str, expected: str) -> None:
    assert minify(source) == expected


@pytest.mark.parametrize(
    ("number", "short"),
    [("0.49", ".49"), ("1000", "1e3"), ("100", "100"), ("0", "0"), ("2048", "2048")],
)
def test_short_number(number: str, short: str) -> None:
    assert _short_number(number) == short


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_minified_tracker_is_valid_javascript() -> None:
    done = subprocess.run(
        ["node", "--check", "-"], input=tracker_build().minified, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr.decode()


def test_a_changed_source_is_built_again(tmp_path) -> None:
    copy = tmp_path / "tracker.js"
    copy.write_text("var answer = 42; window.answer = answer;")
    first = tracker_build(copy)
    copy.write_text("var answer = 43; window.answer = answer;")
    os.utime(copy, ns=(1, 2))  # a different mtime even on a coarse clock
    second = tracker_build(copy)
    assert first.minified == b"var answer=42;window.answer=answer"
    assert second.minified == b"var answer=43;window.answer=answer"
    assert first.etag != second.etag


def test_served_minified_by_default_and_gzipped_when_accepted(client) -> None:
    build = tracker_build()
    plain = client.get("/tracker.js")
    assert plain.data == build.minified and "Content-Encoding" not in plain.headers
    packed = client.get("/tracker.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.data == build.gzipped
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert plain.headers["ETag"] != packed.headers["ETag"]
    for res in (plain, packed):
        assert res.mimetype == "application/javascript"
        assert res.headers["Access-Control-Allow-Origin"] == "*"
        assert "max-age=3600" in res.headers["Cache-Control"]


def test_a_cached_tracker_is_revalidated_with_a_304(client) -> None:
    first = client.get("/tracker.js", headers={"Accept-Encoding": "gzip"})
    again = client.get(
        "/tracker.js", headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304 and again.data == b""
    refused = client.get("/tracker.js", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers
