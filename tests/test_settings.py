"""Settings: sites (origins, script tag, share links), categories, users; admins only."""

from __future__ import annotations

import pytest

from analytics.extensions import db
from analytics.ingest.sites import find_site
from analytics.models import Category, Site, User
from tests.accounts import PASSWORD, logged_in, login
from tests.conftest import count


@pytest.fixture
def admin(client):
    return logged_in(client, "admin")


def test_settings_page_shows_sites_with_their_script_tag(admin, site):
    page = admin.get("/settings").get_data(as_text=True)
    assert site.name in page
    tag = f'&lt;script defer src="http://localhost/tracker.js" data-site="{site.public_id}"'
    assert tag.replace('"', "&#34;") in page


def test_create_a_site_with_origins(admin):
    response = admin.post(
        "/settings/sites",
        data={"name": "Blog", "origins": "https://Blog.example/path\nhttps://www.blog.example"},
    )
    assert response.status_code == 302
    site = db.session.execute(db.select(Site).where(Site.name == "Blog")).scalar_one()
    assert site.origins == ["https://blog.example", "https://www.blog.example"]
    assert "created" in admin.get("/settings").get_data(as_text=True)


@pytest.mark.parametrize(
    "data", [{"name": ""}, {"name": "x" * 201}, {"name": "Ok", "origins": "ftp://nope"}]
)
def test_bad_site_input_is_explained_and_nothing_is_created(admin, data):
    admin.post("/settings/sites", data=data)
    assert count(Site) == 0
    page = admin.get("/settings").get_data(as_text=True)
    assert 'class="flash error"' in page


def test_changing_origins_reaches_the_ingest_cache_at_once(admin, app, site):
    assert find_site(app, site.public_id).origins == ()  # now cached
    admin.post(f"/settings/sites/{site.id}/origins", data={"origins": "https://a.example"})
    db.session.refresh(site)
    assert site.origins == ["https://a.example"]
    assert find_site(app, site.public_id).origins == ("https://a.example",)
    accepted = admin.post(
        "/api/events",
        json={"site": site.public_id, "name": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert accepted.status_code >= 400


def test_share_link_create_replace_and_revoke(admin, site):
    admin.post(f"/settings/sites/{site.id}/share", data={"action": "create"})
    db.session.refresh(site)
    first = site.share_token
    assert first and len(first) >= 32
    page = admin.get("/settings").get_data(as_text=True)
    assert f"/overview?site={site.public_id}&amp;share={first}" in page
    admin.post(f"/settings/sites/{site.id}/share", data={"action": "create"})
    db.session.refresh(site)
    assert site.share_token not in (None, first)
    admin.post(f"/settings/sites/{site.id}/share", data={"action": "revoke"})
    db.session.refresh(site)
    assert site.share_token is None


def test_unknown_site_is_404(admin):
    assert admin.post("/settings/sites/999/origins", data={"origins": ""}).status_code == 404


def test_categories_add_and_remove(admin):
    admin.post("/settings/categories", data={"name": " news "})
    admin.post("/settings/categories", data={"name": "news"})  # duplicate: refused
    names = db.session.execute(db.select(Category.name)).scalars().all()
    assert names == ["news"]
    assert "already exists" in admin.get("/settings").get_data(as_text=True)
    category = db.session.execute(db.select(Category)).scalar_one()
    admin.post(f"/settings/categories/{category.id}/delete")
    assert count(Category) == 0


def test_users_create_with_role_login_and_delete(admin, client, app):
    admin.post(
        "/settings/users",
        data={"email": "Reader@example.org", "password": PASSWORD, "role": "viewer"},
    )
    reader = db.session.execute(
        db.select(User).where(User.email == "reader@example.org")
    ).scalar_one()
    assert reader.role == "viewer"
    other = app.test_client()
    login(other, "reader@example.org")
    assert other.get("/settings").status_code == 403
    admin.post(f"/settings/users/{reader.id}/delete")
    assert count(User) == 1
    assert other.get("/events").status_code == 302  # its session ended with the account


def test_an_admin_cannot_delete_themselves(admin):
    me = db.session.execute(db.select(User)).scalar_one()
    admin.post(f"/settings/users/{me.id}/delete")
    assert count(User) == 1
    assert "cannot delete your own account" in admin.get("/settings").get_data(as_text=True)


@pytest.mark.parametrize(
    "data",
    [
        {"email": "bad", "password": PASSWORD, "role": "viewer"},
        {"email": "a@example.org", "password": "short", "role": "viewer"},
        {"email": "a@example.org", "password": PASSWORD, "role": "root"},
    ],
)
def test_bad_user_input_creates_nobody(admin, data):
    admin.post("/settings/users", data=data)
    assert count(User) == 1


def test_viewer_cannot_post_settings(client, site):
    logged_in(client, "viewer")
    for url, data in [
        ("/settings/sites", {"name": "x"}),
        (f"/settings/sites/{site.id}/share", {"action": "create"}),
        ("/settings/categories", {"name": "x"}),
        ("/settings/users", {"email": "x@example.org", "password": PASSWORD, "role": "admin"}),
    ]:
        assert client.post(url, data=data).status_code == 403
    assert count(Category) == 0 and count(User) == 1
    db.session.refresh(site)
    assert site.share_token is None
