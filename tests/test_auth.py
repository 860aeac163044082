"""Access: first-run set-up, login/logout, roles, share links, CSRF, security headers."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from flask import Flask, url_for
from werkzeug.routing import IntegerConverter

from analytics import create_app
from analytics.extensions import db
from analytics.models import User
from analytics.sites import InvalidInput, create_site, disable_sharing, enable_sharing
from tests.accounts import PASSWORD, logged_in, make_user
from tests.conftest import count


def protected_routes() -> tuple[list[tuple[str, str]], set[str]]:
    """(path, access) of every GET route behind an access decorator, with sample arguments,
    and the paths that have such arguments."""
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    routes = []
    with_args = set()
    for rule in app.url_map.iter_rules():
        access = getattr(app.view_functions[rule.endpoint], "access", None)
        if access and "GET" in (rule.methods or ()):
            args = {
                name: 1 if isinstance(rule._converters[name], IntegerConverter) else "x"
                for name in rule.arguments
            }
            with app.test_request_context():
                routes.append((url_for(rule.endpoint, **args), access))
                if rule.arguments:
                    with_args.add(routes[-1][0])
    return sorted(routes), with_args


ROUTES, WITH_ARGS = protected_routes()
PATHS = [path for path, _ in ROUTES]


def test_the_protected_routes_include_the_shell():
    for path in ("/events", "/errors", "/settings", "/export/events.csv", "/export/errors.csv"):
        assert path in PATHS


@pytest.mark.parametrize("path", PATHS)
def test_every_dashboard_route_sends_to_setup_while_there_is_no_user(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.location.endswith("/setup")


@pytest.mark.parametrize("path", PATHS)
def test_every_dashboard_route_requires_a_login(client, site, path):
    make_user()
    response = client.get(path)
    if path.endswith(".csv"):
        assert response.status_code == 401
    else:
        assert response.status_code == 302
        assert "/login?next=" in response.location


@pytest.mark.parametrize("path", ["/tracker.js", "/healthz"])
def test_public_paths_need_no_login(client, path):
    make_user()
    assert client.get(path).status_code == 200


def test_setup_creates_the_first_admin_only_once(client):
    assert client.get("/").location.endswith("/setup")
    page = client.get("/setup")
    assert page.status_code == 200 and b"first admin" in page.data
    response = client.post(
        "/setup",
        data={"email": "Boss@Example.org", "password": PASSWORD, "confirm": PASSWORD},
    )
    assert response.status_code == 302 and response.location.endswith("/settings")
    assert client.get("/settings").status_code == 200  # logged in as the new admin
    user = db.session.execute(db.select(User)).scalar_one()
    assert (user.email, user.role) == ("boss@example.org", "admin")
    assert user.password_hash.startswith("scrypt:")
    assert client.get("/setup").status_code == 404
    again = client.post("/setup", data={"email": "x@example.org", "password": PASSWORD})
    assert again.status_code == 404
    assert count(User) == 1


@pytest.mark.parametrize(
    ("email", "password", "confirm"),
    [
        ("nobody", PASSWORD, PASSWORD),
        ("a@example.org", "short", "short"),
        ("a@b.org", PASSWORD, "x"),
    ],
)
def test_setup_refuses_bad_input(client, email, password, confirm):
    response = client.post(
        "/setup", data={"email": email, "password": password, "confirm": confirm}
    )
    assert response.status_code == 400
    assert count(User) == 0


def test_login_and_logout(client, site):
    make_user()
    assert client.get("/").location.endswith("/login")
    wrong = client.post("/login", data={"email": "admin@example.org", "password": "nope-nope"})
    assert wrong.status_code == 401 and b"Wrong email or password" in wrong.data
    assert client.get("/events").status_code == 302
    ok = client.post("/login", data={"email": " ADMIN@example.org ", "password": PASSWORD})
    assert ok.status_code == 302 and ok.location.endswith("/overview")
    assert client.get("/events").status_code == 200
    assert client.get("/").location.endswith("/overview")
    assert db.session.execute(db.select(User.last_login_at)).scalar_one() is not None
    out = client.post("/logout")
    assert out.status_code == 302 and out.location.endswith("/login")
    assert client.get("/events").status_code == 302


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/events?period=7d", "/events?period=7d"),
        ("https://evil.example/x", "/overview"),
        ("//evil.example/x", "/overview"),
        ("/\\evil.example", "/overview"),
        ("javascript:alert(1)", "/overview"),
    ],
)
def test_login_follows_next_only_to_local_paths(client, target, expected):
    make_user()
    response = client.post(
        "/login", data={"email": "admin@example.org", "password": PASSWORD, "next": target}
    )
    assert response.status_code == 302
    assert response.location == expected


def test_login_redirect_keeps_the_requested_view(client, site):
    make_user()
    first = client.get(f"/events?site={site.public_id}&period=7d")
    back = first.location.split("next=", 1)[1]
    response = client.post(
        "/login",
        data={"email": "admin@example.org", "password": PASSWORD, "next": unquote(back)},
    )
    assert response.location == f"/events?site={site.public_id}&period=7d"


def test_viewer_reads_but_cannot_open_settings(client, site):
    logged_in(client, "viewer")
    assert client.get("/events").status_code == 200
    assert client.get("/export/events.csv").status_code == 200
    assert client.get("/settings").status_code == 403
    assert client.post("/settings/sites", data={"name": "Mine"}).status_code == 403
    page = client.get("/events").get_data(as_text=True)
    assert 'href="/settings?' not in page and 'href="/settings"' not in page
    assert 'href="/settings/tokens' in page  # their own API tokens, nothing else of Settings


def test_admin_sees_settings_in_the_nav(client, site):
    logged_in(client, "admin")
    page = client.get("/events").get_data(as_text=True)
    assert 'href="/settings?' in page


def test_deleted_user_is_logged_out(client, site):
    logged_in(client, "viewer")
    db.session.execute(db.delete(User))
    db.session.commit()
    assert client.get("/events").status_code == 302


@pytest.fixture
def shared(site):
    make_user()
    token = enable_sharing(site)
    return site, token


@pytest.mark.parametrize(("path", "access"), ROUTES)
def test_share_link_opens_only_read_only_dashboards(client, shared, path, access):
    site, token = shared
    sep = "&" if "?" in path else "?"
    response = client.get(f"{path}{sep}site={site.public_id}&share={token}")
    if access == "dashboard":
        # Let in; a sample argument ("x") of a parametrized route may then be unknown to it.
        assert response.status_code in ((200, 404) if path in WITH_ARGS else (200,))
    else:  # raw events, rejected payloads, raw exports and settings stay behind the login
        assert response.status_code in (302, 401)


def test_share_link_needs_the_right_token_for_the_right_site(client, shared, make_site):
    site, token = shared
    other = make_site("Other")
    assert client.get(f"/events?site={site.public_id}&share={token}").status_code == 302
    for query in (
        f"site={site.public_id}&share={token[:-1]}x",
        f"site={other.public_id}&share={token}",
        f"share={token}",
    ):
        assert client.get(f"/export/events.csv?{query}").status_code == 401


def test_a_revoked_share_link_stops_working(client, shared):
    site, token = shared
    shared_dashboards = [path for path, access in ROUTES if access == "dashboard"]
    assert shared_dashboards, "the dashboard pages must be share-able"
    url = f"{shared_dashboards[0]}?site={site.public_id}&share={token}"
    assert client.get(url).status_code == 200
    disable_sharing(site)
    assert client.get(url).status_code in (302, 401)


@pytest.fixture
def csrf_app(database_url) -> Flask:
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_forms_refuse_a_post_without_csrf_token(csrf_app):
    client = csrf_app.test_client()
    refused = client.post("/setup", data={"email": "a@example.org", "password": PASSWORD})
    assert refused.status_code == 400
    assert count(User) == 0
    page = client.get("/setup").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    ok = client.post(
        "/setup",
        data={
            "email": "a@example.org",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": token,
        },
    )
    assert ok.status_code == 302
    # Logged in now: a settings form without the token is refused too.
    assert client.post("/settings/categories", data={"name": "news"}).status_code == 400
    # Ingest endpoints take cross-site POSTs: no token needed there.
    site = create_site("Ingest")
    accepted = client.post("/api/events", json={"site": site.public_id, "name": "signup"})
    assert accepted.status_code == 202
    record = {"benefit_id": "rsa", "hash_id": "h", "benefit_index": 1, "page_total": 2}
    assert client.post("/benefits", json=record).status_code == 200
    assert client.post("/collector", json={"session_id": "s"}).status_code == 200
    assert client.post("/track", json={}).status_code == 422  # validated, not CSRF-refused


def test_security_headers_on_html_pages(client):
    response = client.get("/setup")
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "<script>" not in response.get_data(as_text=True)


def test_session_cookie_is_httponly_and_lax(client):
    make_user()
    response = client.post("/login", data={"email": "admin@example.org", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_share_visitor_sees_one_site_and_only_the_read_only_pages(client, shared, make_site):
    site, token = shared
    make_site("Secret other site")
    response = client.get(f"/overview?site={site.public_id}&share={token}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Secret other site" not in page  # the site select holds the shared site only
    assert f'href="/actions?site={site.public_id}&amp;period=30d&amp;share={token}"' in page
    for hidden in ('href="/events', 'href="/errors', 'href="/settings', "Log out"):
        assert hidden not in page
    assert client.post(f"/overview?site={site.public_id}&share={token}").status_code in (403, 405)


def test_only_one_first_admin_even_when_set_ups_race(app, monkeypatch):
    """Two set-up forms submitted at once: the later one is refused and leaves no user behind."""
    from analytics import users

    users.create_user("winner@example.org", PASSWORD, "admin")  # the other racer committed first
    monkeypatch.setattr(users, "user_count", lambda: 0)  # ...after our emptiness check had run
    with pytest.raises(InvalidInput, match="already exists"):
        users.create_first_admin("loser@example.org", PASSWORD)
    emails = db.session.execute(db.select(User.email)).scalars().all()
    assert emails == ["winner@example.org"]


def test_first_admin_is_refused_once_a_user_exists(app):
    from analytics.users import create_first_admin

    assert create_first_admin("first@example.org", PASSWORD).role == "admin"
    with pytest.raises(InvalidInput, match="already exists"):
        create_first_admin("second@example.org", PASSWORD)
