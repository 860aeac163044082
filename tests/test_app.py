"""Factory, configuration, health, the tracker script and the API description."""

from __future__ import annotations

import gc
import os
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from analytics import create_app
from analytics.config import from_environment, normalise_database_url, pool_size
from analytics.extensions import db


def test_refuses_to_start_without_secret_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_url_spellings(url, expected):
    assert normalise_database_url(url) == expected


def test_each_request_thread_has_a_pooled_connection(monkeypatch):
    """A pool smaller than the threads closed a connection after each request past it, and the
    next one paid for a new server process (measured: pool churn at 8 threads a worker)."""
    assert pool_size({}) == 6
    assert pool_size({"GUNICORN_THREADS": "16"}) == 18
    assert pool_size({"GUNICORN_THREADS": "16", "DATABASE_POOL_SIZE": "3"}) == 3
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.invalid/analytics")
    monkeypatch.setenv("GUNICORN_THREADS", "8")
    monkeypatch.setenv("SECRET_KEY", "test")
    app = create_app()
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_size"] == 10
    with app.app_context():
        assert db.engine.pool.size() == 10


def test_gunicorn_tells_the_app_its_thread_count(monkeypatch):
    """`--threads` on gunicorn's command line reaches the app's pool size (gunicorn.conf.py)."""
    monkeypatch.setenv("GUNICORN_THREADS", "4")  # restored after the test
    conf = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
    conf["post_fork"](None, SimpleNamespace(cfg=SimpleNamespace(threads=12)))
    assert os.environ["GUNICORN_THREADS"] == "12"


def test_gunicorn_freezes_what_the_loaded_worker_holds():
    """A loaded worker's objects leave the collector's sight, and young objects are collected
    less often (gunicorn.conf.py): full collections were the tail of `GET /statistics`."""
    conf = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        conf["post_worker_init"](None)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 20_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class _Socket:
    """What gunicorn's response writes, one entry per `sendall`."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _gunicorn_response(method: str = "POST") -> tuple[object, _Socket]:
    from gunicorn.config import Config
    from gunicorn.http.wsgi import Response

    runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
    request = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False)
    sock = _Socket()
    return Response(request, sock, Config()), sock


def test_gunicorn_sends_headers_and_a_whole_body_in_one_write():
    """An answer with its length known goes out in one system call and one TCP segment
    (gunicorn.conf.py); gunicorn itself writes the headers, then the body."""
    response, sock = _gunicorn_response()
    body = b'{"accepted":1}'
    response.start_response("202 ACCEPTED", [("Content-Length", str(len(body)))])
    response.write(body)
    response.close()
    assert len(sock.writes) == 1
    head, _, sent = sock.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202 ACCEPTED\r\n") and b"Content-Length: 14" in head
    assert sent == body and response.sent == len(body)


@pytest.mark.parametrize(
    ("method", "headers", "chunks"),
    [
        ("POST", [("Content-Length", "6")], [b"abc", b"def"]),  # a body in pieces
        ("POST", [], [b"streamed"]),  # no length: chunked
        ("HEAD", [("Content-Length", "3")], [b"abc"]),  # no body at all
    ],
)
def test_gunicorn_writes_any_other_body_as_before(method, headers, chunks):
    response, sock = _gunicorn_response(method)
    response.start_response("200 OK", headers)
    for chunk in chunks:
        response.write(chunk)
    response.close()
    assert sock.writes[0].endswith(b"\r\n\r\n"), "the headers alone first"
    body = b"".join(sock.writes[1:])
    if method == "HEAD":
        assert body == b""
    elif headers:
        assert body == b"abcdef"
    else:
        assert body == b"8\r\nstreamed\r\n0\r\n\r\n"


def test_healthz_ok(client):
    res = client.get("/healthz")
    assert res.status_code == 200 and res.json["database"] == "ok"


def test_healthz_503_when_database_is_unreachable(tmp_path):
    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    )
    res = app.test_client().get("/healthz")
    assert res.status_code == 503 and res.json["status"] == "unavailable"


def test_ingest_answers_503_when_database_is_down():
    app = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    )
    res = app.test_client().post("/api/events", data='{"site": "abc", "name": "pv"}')
    assert res.status_code == 503
    assert res.headers["Retry-After"] and "nothing was stored" in res.json["error"]


def test_tracker_js_is_served_cacheable_to_any_origin(client):
    res = client.get("/tracker.js")
    assert res.status_code == 200
    assert res.mimetype == "application/javascript"
    assert res.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age=3600" in res.headers["Cache-Control"]
    assert res.headers.get("ETag")
    assert b"/api/events" in res.data


def test_openapi_is_generated_from_the_validating_schema(client):
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    event = spec["components"]["schemas"]["EventIn"]
    assert event["properties"]["name"]["maxLength"] == 100
    assert set(event["required"]) == {"site", "name"}
    assert "post" in spec["paths"]["/api/events"]


def test_api_docs_page_lists_fields(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert b"POST /api/events" in page.data and b"list_size" in page.data
    assert b"cdn" not in page.data.lower()


@pytest.mark.parametrize("path", ["/tracker.js", "/healthz", "/api/openapi.json"])
def test_public_answers_do_not_vary_by_cookie(client, path):
    """Shared caches may serve one copy to everyone: nothing here depends on a login."""
    response = client.get(path)
    assert "cookie" not in response.headers.get("Vary", "").lower()


def test_dashboard_pages_vary_by_cookie(client):
    assert "Cookie" in client.get("/login").headers.get("Vary", "")


def test_group_commit_is_on_unless_turned_off(monkeypatch, tmp_path):
    """Group commit is the default (it measured faster); INGEST_GROUP_COMMIT=0 turns it off."""
    monkeypatch.delenv("INGEST_GROUP_COMMIT", raising=False)
    assert from_environment(str(tmp_path))["INGEST_GROUP_COMMIT"] is True
    monkeypatch.setenv("INGEST_GROUP_COMMIT", "0")
    assert from_environment(str(tmp_path))["INGEST_GROUP_COMMIT"] is False
