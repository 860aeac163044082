"""The ingest POSTs served straight from WSGI (`views/direct.py`): same answers, none of Flask's
request machinery, and failures mapped to the same JSON as the Flask error handlers."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask import Flask
from flask.globals import _cv_app
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Request

from analytics.extensions import db
from analytics.ingest.request import BodyTooLarge, forwarded_for, read_body
from analytics.ingest.writer import StoreFailed
from analytics.views.answer import Answer
from analytics.views.direct import DirectIngest


def direct(app: Flask) -> DirectIngest:
    assert isinstance(app.wsgi_app, DirectIngest)  # outermost, even with ProxyFix
    return app.wsgi_app


def test_every_ingest_post_and_only_those_are_served_directly(app):
    """The table matches the Flask routes: a new ingest POST can't be left out, nor a GET in."""
    posts = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and rule.endpoint.split(".")[0] in ("collect", "compat")
    }
    assert set(direct(app).routes) == posts
    assert len(posts) == 7  # /api/events, and three legacy paths with and without a slash


def test_direct_posts_skip_flask_hooks_and_sessions(app, client, site):
    """Flask's before-request hooks run for pages, not for the ingest posts, which set no cookie."""
    seen: list[str] = []
    app.before_request(lambda: seen.append("hook"))
    res = client.post(
        "/api/events",
        data=json.dumps({"site": site.public_id, "name": "pageview", "path": "/"}),
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"},
    )
    assert res.status_code == 202, res.json
    assert res.json == {"accepted": 1}
    assert "Set-Cookie" not in res.headers and "Vary" not in res.headers
    assert seen == []
    client.get("/healthz")
    assert seen == ["hook"]
    # Other methods on the same paths stay with Flask: the legacy collector's 405.
    res = client.get("/collector")
    assert res.status_code == 405 and res.headers["Allow"] == "POST"


def test_each_thread_keeps_one_context_and_no_session_past_a_post(app, client, monkeypatch):
    """The handlers run in the thread's own application context, set per post rather than
    pushed and popped; what its teardown did that matters, giving back a session's connection,
    is still done after every post, and the context before the post is current again after."""
    seen: list[tuple[object, bool]] = []

    def uses_the_session(environ):
        db.session.execute(text("SELECT 1"))  # opens the context's session
        seen.append((_cv_app.get(), db.session.registry.has()))
        return Answer.json(202, {"accepted": 0})

    handler = direct(app)
    before = _cv_app.get(None)
    monkeypatch.setitem(handler.routes, "/track", uses_the_session)
    for _ in range(2):
        assert client.post("/track", data="{}").status_code == 202
        assert _cv_app.get(None) is before
    ctx = handler._context()
    assert seen == [(ctx, True), (ctx, True)]  # one per thread, made once
    token = _cv_app.set(ctx)
    try:
        assert not db.session.registry.has(), "removed after each post"
    finally:
        _cv_app.reset(token)


@pytest.mark.parametrize(
    "failure, status, message",
    [
        (StoreFailed("the group failed"), 503, "nothing was stored"),
        (RuntimeError("a bug"), 500, "internal error"),
    ],
)
def test_a_failing_handler_answers_json_not_a_traceback(
    app, client, monkeypatch, caplog, failure, status, message
):
    def broken(request):
        raise failure

    # Whatever logging set-up an earlier test in this process left (a disabled or silenced
    # app logger), the record must reach caplog: one CI run missed it on all four cases.
    monkeypatch.setattr(app.logger, "disabled", False)
    monkeypatch.setattr(app.logger, "propagate", True)
    caplog.set_level(logging.ERROR, logger=app.logger.name)
    monkeypatch.setitem(direct(app).routes, "/track", broken)
    res = client.post("/track", data="{}", content_type="application/json")
    assert res.status_code == status
    assert message in res.json["error"]
    assert res.headers.get("Retry-After") == ("5" if status == 503 else None)
    assert any("/track" in r.getMessage() for r in caplog.records)


addresses = st.sampled_from(
    ["203.0.113.7", "10.0.0.1", "2001:db8::1", "", " ", "unknown", '"x, y"']
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(addresses, max_size=5), st.integers(min_value=1, max_value=4), st.booleans())
def test_the_direct_path_takes_the_address_proxyfix_takes(hops, proxies, with_header):
    """`forwarded_for` (the direct path) and ProxyFix (every other path) agree on any header."""
    environ = {"REMOTE_ADDR": "192.0.2.1"}
    if with_header:
        environ["HTTP_X_FORWARDED_FOR"] = ", ".join(hops)
    seen: dict[str, str] = {}
    ProxyFix(lambda env, start: seen.update(addr=env["REMOTE_ADDR"]), x_for=proxies)(
        dict(environ), None
    )
    assert forwarded_for(environ, proxies) == seen["addr"]


@pytest.mark.parametrize(
    "headers, body, terminated",
    [
        ({"CONTENT_LENGTH": "5"}, b"hello", False),
        ({"CONTENT_LENGTH": "3"}, b"hello", False),  # no further than the declared length
        ({}, b"hello", False),  # no length and a server that does not end the stream: nothing
        ({}, b"hello", True),  # gunicorn ends it (and takes chunked bodies)
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, b"hello", True),
        ({"CONTENT_LENGTH": "x"}, b"hello", False),  # an invalid length counts as 0
        ({"CONTENT_LENGTH": "-4"}, b"hello", False),
    ],
)
def test_bodies_are_read_as_a_werkzeug_request_reads_them(headers, body, terminated):
    def environ() -> dict:
        env = {"wsgi.input": io.BytesIO(body), **headers}
        if terminated:
            env["wsgi.input_terminated"] = True
        return env

    assert read_body(environ(), 100) == Request(environ()).get_data()


def test_a_body_over_the_limit_is_refused_by_its_length_or_by_what_arrives():
    with pytest.raises(BodyTooLarge) as declared:
        read_body({"wsgi.input": io.BytesIO(b"x" * 50), "CONTENT_LENGTH": "50"}, 10)
    assert declared.value.size == 50
    stream = {"wsgi.input": io.BytesIO(b"x" * 50), "wsgi.input_terminated": True}
    with pytest.raises(BodyTooLarge) as streamed:
        read_body(stream, 10)
    assert streamed.value.size == 11  # what was read: no further than the limit and one byte
