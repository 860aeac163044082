"""The ingest POSTs served straight from WSGI (`views/direct.py`): same answers, none of Flask's
request machinery, and failures mapped to the same JSON as the Flask error handlers."""

from __future__ import annotations

import json
import logging

import pytest
from flask import Flask

from analytics.ingest.writer import StoreFailed
from analytics.views.direct import DirectIngest


def direct(app: Flask) -> DirectIngest:
    wsgi = app.wsgi_app
    while not isinstance(wsgi, DirectIngest):
        wsgi = wsgi.app  # ProxyFix, when PROXY_COUNT is set
    return wsgi


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
