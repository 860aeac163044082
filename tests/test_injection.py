"""Hostile values in every filter parameter and every form field are harmless: SQL
metacharacters, very long values, NUL, invalid UTF-8, markup. Nothing answers 5xx, nothing is
dropped or altered in the database, and nothing comes back unescaped."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.models import Category, Event, Site, User

from .accounts import PASSWORD, logged_in
from .test_segments import seed_traffic

HOSTILE = [
    "' OR '1'='1",
    "'; DROP TABLE events; --",
    '" OR ""="',
    "%' UNION SELECT email, password_hash FROM users --",
    "%_\\%",
    "a" * 20_000,
    "x\x00y",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "!,!,,\\,",
    "prop.\u202e",
]
RAW_INVALID_UTF8 = b"%FF%FE%C3%28"  # bytes that are not UTF-8, percent-encoded in a URL
FILTERS = (
    "path", "entry", "referrer", "utm_source", "utm_medium", "utm_campaign", "browser", "os",
    "device", "country", "name", "item", "source", "category", "prop.plan", "prop.' OR 1=1",
    "goal",
)  # fmt: skip
BASICS = ("site", "period", "start", "end", "session", "endpoint", "before", "event", "share")
PAGES = (
    "/overview", "/overview/goals", "/live", "/actions", "/actions/pageview", "/lists", "/events",
    "/errors", "/live.json", "/export/events.csv", "/export/errors.csv", "/csv/top_pages.csv",
    "/funnels", "/csv/goals.csv",
)  # fmt: skip


def state() -> tuple[int, int, int, int]:
    """What must not move: rows in the tables an injection would go for."""
    with db.engine.connect() as conn:
        return tuple(
            conn.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
            for model in (Event, Site, User, Category)
        )


def check(response, value: str) -> None:
    assert response.status_code < 500, (response.status_code, response.request.url[:200])
    body = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body, "markup came back unescaped"


@pytest.fixture
def seeded(site, make_site) -> Site:
    seed_traffic(site, make_site(name="Other"))
    return site


def test_every_filter_parameter_takes_hostile_values(client, seeded):
    """Each segment filter (negated too) on the Overview, which runs them all through SQL."""
    logged_in(client)
    before = state()
    base = {"site": seeded.public_id, "start": "2026-03-02", "end": "2026-03-08"}
    for value in HOSTILE:
        for name in FILTERS:
            check(client.get("/overview", query_string={**base, name: value}), value)
        for name in ("path", "referrer", "prop.plan"):
            check(client.get("/overview", query_string={**base, name: "!" + value}), value)
    assert state() == before


def test_every_page_takes_hostile_values_in_every_parameter(client, seeded):
    """Every page and CSV, with every parameter it reads set to the hostile value at once (and
    the site alone, which is read first)."""
    logged_in(client)
    before = state()
    base = {"site": seeded.public_id, "start": "2026-03-02", "end": "2026-03-08"}
    for value in HOSTILE:
        everything = {name: value for name in BASICS if name != "site"}
        everything |= {"path": value, "country": value, "prop.plan": value}
        for path in PAGES:
            check(client.get(path, query_string={**base, **everything}), value)
            check(client.get(path, query_string={**base, "site": value}), value)
    assert state() == before


def test_invalid_utf8_in_the_query_string(client, seeded):
    logged_in(client)
    for path in PAGES:
        for name in ("site", "path", "referrer", "session", "prop.plan", "period"):
            res = client.get(f"{path}?site={seeded.public_id}&{name}=".encode() + RAW_INVALID_UTF8)
            assert res.status_code < 500, (path, name, res.status_code)


FORMS = [
    ("/settings/sites", ("name", "origins")),
    ("/settings/sites/{site}/origins", ("origins",)),
    ("/settings/sites/{site}/retention", ("retention_months",)),
    ("/settings/sites/{site}/share", ("action",)),
    ("/settings/categories", ("name",)),
    ("/settings/users", ("email", "password", "role")),
    ("/settings/users/{user}/role", ("role",)),
    ("/settings/password", ("current", "new", "confirm")),
]


# The forms store what they take: one value of each kind (SQL, long, NUL, markup, separators).
FORM_VALUES = [HOSTILE[1], HOSTILE[3], HOSTILE[5], HOSTILE[6], HOSTILE[7], HOSTILE[9]]


@pytest.mark.parametrize("value", FORM_VALUES, ids=range(len(FORM_VALUES)))
def test_every_form_field_takes_a_hostile_value(app, client, site, value):
    logged_in(client)
    other = User(email="other@example.org", password_hash="x", role="viewer")
    db.session.add(other)
    db.session.commit()
    before = state()
    for path, fields in FORMS:
        url = path.format(site=site.id, user=other.id)
        for field in fields:
            form = dict.fromkeys(fields, "ok-value-123")
            form[field] = value
            res = client.post(url, data=form, follow_redirects=True)
            check(res, value)
    # Login and first-run set-up, logged out.
    anonymous = app.test_client()
    for field in ("email", "password", "next"):
        form = {"email": "admin@example.org", "password": PASSWORD, field: value}
        res = anonymous.post("/login", data=form)
        check(res, value)
        anonymous.post("/logout")
    res = anonymous.post("/setup", data={"email": value, "password": value, "confirm": value})
    check(res, value)
    # Bytes that are not UTF-8, as a form body.
    for path, fields in FORMS:
        body = "&".join(f"{field}=%FF%FE%C3%28" for field in fields)
        res = client.post(
            path.format(site=site.id, user=other.id),
            data=body,
            content_type="application/x-www-form-urlencoded",
        )
        assert res.status_code < 500
    sites, users = state()[1], state()[2]
    assert sites >= before[1] and users >= before[2], "nothing was dropped"
    assert state()[0] == before[0]
    names = db.session.execute(sa.select(Site.name)).scalars().all()
    assert all("\x00" not in name for name in names)
