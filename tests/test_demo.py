"""The demo pages: there only with DEMO on, each wearing the tracker tag of the demo site."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from markupsafe import escape

from analytics import create_app
from analytics.extensions import db
from analytics.models import Site
from analytics.views.demo import BENEFITS, GUIDE_NAME, OUTBOUND_URL

from .conftest import count

PAGES = [
    "/demo/",
    "/demo/results",
    f"/demo/benefits/{BENEFITS[4].id}",
    "/demo/article",
    "/demo/form",
    "/demo/app/",
    "/demo/app/plans",
]
TRACKER_TAG = '<script defer src="/tracker.js" data-site="demo"></script>'


@pytest.fixture
def app_config(database_url: str) -> dict[str, Any]:
    return {"DEMO": True}


def demo_sites() -> list[tuple[str, str]]:
    with db.engine.connect() as conn:
        return conn.execute(
            sa.select(Site.public_id, Site.name).where(Site.public_id == "demo")
        ).all()


@pytest.mark.parametrize("path", [*PAGES, f"/demo/files/{GUIDE_NAME}"])
def test_demo_is_not_found_when_demo_is_off(database_url: str, path: str) -> None:
    off = create_app(
        {"TESTING": True, "SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": database_url, "DEMO": False}
    )
    with off.app_context():
        assert off.test_client().get(path).status_code == 404
        assert count(Site) == 0, "no demo site is created either"
        db.engine.dispose()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_carries_the_one_line_tracker_tag(client, path: str) -> None:
    res = client.get(path)
    assert res.status_code == 200
    assert res.mimetype == "text/html"
    assert res.data.decode().count(TRACKER_TAG) == 1
    assert f'href="{OUTBOUND_URL}"' in res.data.decode()
    assert f'href="/demo/files/{GUIDE_NAME}"' in res.data.decode()


def test_the_demo_site_is_created_once(client) -> None:
    for path in PAGES[:3]:
        client.get(path)
    assert demo_sites() == [("demo", "Demo site")]
    assert count(Site) == 1


def test_an_existing_demo_site_is_used_as_it_is(client, make_site) -> None:
    make_site(name="Renamed by its owner", public_id="demo")
    assert client.get("/demo/").status_code == 200
    assert demo_sites() == [("demo", "Renamed by its owner")]


def test_concurrent_first_visits_make_one_demo_site(app: Flask) -> None:
    statuses: list[int] = []
    start = threading.Barrier(6)

    def visit() -> None:
        with app.app_context():
            start.wait()
            statuses.append(app.test_client().get("/demo/results").status_code)
            db.session.remove()

    threads = [threading.Thread(target=visit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert statuses == [200] * 6
    assert demo_sites() == [("demo", "Demo site")]


def test_results_are_one_tagged_list_of_ten_in_order(client) -> None:
    html = client.get("/demo/results").data.decode()
    assert html.count('data-track-list="results"') == 1
    assert re.findall(r'data-track-item="([^"]+)"', html) == [b.id for b in BENEFITS]
    assert len(BENEFITS) == 10


def test_each_benefit_has_a_detail_page_and_unknown_ones_do_not(client) -> None:
    for position, benefit in enumerate(BENEFITS, start=1):
        html = client.get(f"/demo/benefits/{benefit.id}").data.decode()
        assert str(escape(benefit.title)) in html and f"result {position} of the list" in html
        assert f'data-track-benefit="{benefit.id}"' in html
    assert client.get("/demo/benefits/no-such-benefit").status_code == 404


def test_the_article_is_long_enough_to_scroll(client) -> None:
    html = client.get("/demo/article").data.decode()
    assert html.count("<section") == len(BENEFITS)
    assert len(re.sub(r"<[^>]+>", "", html)) > 6000


def test_the_form_carries_a_csrf_token(database_url: str) -> None:
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": database_url, "DEMO": True}
    )
    with app.app_context():
        client = app.test_client()
        html = client.get("/demo/form").data.decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert token, "the form must carry a token when CSRF is on"
        assert client.post("/demo/form", data={"name": "x"}).status_code == 400
        sent = client.post("/demo/form", data={"name": "x", "csrf_token": token[1]})
        assert sent.status_code == 200 and "Thank you" in sent.data.decode()
        db.engine.dispose()


def test_the_form_posts_back_and_keeps_nothing(client) -> None:
    assert 'form id="contact"' in client.get("/demo/form").data.decode()
    res = client.post("/demo/form", data={"name": "Zebulon", "email": "z@example.net"})
    assert res.status_code == 200
    assert "Thank you" in res.data.decode()
    assert "Zebulon" not in res.data.decode() and "z@example.net" not in res.data.decode()


def test_the_guide_downloads_as_a_pdf(client) -> None:
    res = client.get(f"/demo/files/{GUIDE_NAME}")
    assert res.status_code == 200 and res.mimetype == "application/pdf"
    assert res.data.startswith(b"%PDF-")
    assert "attachment" in res.headers["Content-Disposition"]
    assert client.get("/demo/files/other.pdf").status_code == 404


def test_the_single_page_app_loads_its_script(client) -> None:
    html = client.get("/demo/app/about").data.decode()
    assert 'src="/static/demo/spa.js"' in html and 'data-base="/demo/app/"' in html
    assert "pushState" in client.get("/static/demo/spa.js").data.decode()
