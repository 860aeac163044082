"""Sessions and accounts: a new session at login, sessions that end when their user's password
or role changes (on every node: the check is in the database), password rules, an admin's own
password, and the audit log of Settings."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.models import AuditEntry, User
from analytics.passwords import problem

from .accounts import PASSWORD, logged_in, login, make_user


@pytest.mark.parametrize(
    "password",
    ["short", "password123", "Password123!", "qwertyuiop", "aaaaaaaaaaaa", "abababababab",
     "annie-smith-2026"],  # fmt: skip
)
def test_weak_passwords_are_refused(password):
    assert problem(password, "annie-smith@example.org") is not None


@pytest.mark.parametrize("password", [PASSWORD, "s3cret-pass", "tram blue lantern 7"])
def test_good_passwords_pass(password):
    assert problem(password, "ann@example.org") is None


def test_the_session_is_new_after_login(client):
    """Session fixation: what was in the session before the login does not survive it."""
    make_user()
    client.get("/login")
    with client.session_transaction() as before:
        before["planted"] = "by an attacker"
    login(client)
    with client.session_transaction() as after:
        assert "planted" not in after
        assert after["_user_id"].endswith(":0"), "the session names the user and their epoch"


def test_a_password_change_ends_the_users_other_sessions(app, client):
    logged_in(client)
    other = app.test_client()
    login(other)
    assert other.get("/settings").status_code == 200
    res = client.post(
        "/settings/password",
        data={"current": PASSWORD, "new": "tram blue lantern 7", "confirm": "tram blue lantern 7"},
    )
    assert res.status_code == 302
    assert client.get("/settings").status_code == 200, "this session goes on"
    assert other.get("/settings").status_code == 302, "the other one has ended"
    user = db.session.execute(sa.select(User)).scalar_one()
    assert user.session_epoch == 1
    fresh = app.test_client()
    assert fresh.post(
        "/login", data={"email": user.email, "password": "tram blue lantern 7"}
    ).status_code == 302


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong-password", "tram blue lantern 7", "tram blue lantern 7", "current password"),
        (PASSWORD, "tram blue lantern 7", "tram blue lantern 8", "differ"),
        (PASSWORD, "password2024", "password2024", "guessing tools"),
        (PASSWORD, PASSWORD, PASSWORD, "is the current one"),
    ],
)
def test_a_bad_password_change_is_refused(client, current, new, confirm, message):
    logged_in(client)
    res = client.post(
        "/settings/password",
        data={"current": current, "new": new, "confirm": confirm},
        follow_redirects=True,
    )
    assert message in res.get_data(as_text=True)
    assert db.session.execute(sa.select(User.session_epoch)).scalar_one() == 0


def test_a_demoted_admin_loses_settings_at_once(app, client):
    logged_in(client)
    make_user("second@example.org", "admin")
    theirs = app.test_client()
    login(theirs, "second@example.org")
    assert theirs.get("/settings").status_code == 200
    second = db.session.execute(sa.select(User).where(User.email == "second@example.org"))
    second_id = second.scalar_one().id
    demoted = client.post(f"/settings/users/{second_id}/role", data={"role": "viewer"})
    assert demoted.status_code == 302
    assert theirs.get("/settings").status_code == 302, "their session ended"
    login(theirs, "second@example.org")
    assert theirs.get("/settings").status_code == 403, "back as a viewer"
    own = db.session.execute(sa.select(User.id).where(User.email == "admin@example.org"))
    client.post(f"/settings/users/{own.scalar_one()}/role", data={"role": "viewer"})
    assert client.get("/settings").status_code == 200, "nobody demotes themselves"


def test_a_deleted_user_is_logged_out(app, client):
    logged_in(client)
    make_user("gone@example.org", "viewer")
    theirs = app.test_client()
    login(theirs, "gone@example.org")
    assert theirs.get("/overview").status_code in (200, 302)
    gone = db.session.execute(sa.select(User.id).where(User.email == "gone@example.org"))
    client.post(f"/settings/users/{gone.scalar_one()}/delete")
    assert theirs.get("/events").status_code == 302


def test_every_settings_change_is_in_the_audit_log(client, make_site):
    logged_in(client)
    site = make_site()
    changes = [
        ("/settings/sites", {"name": "Blog", "origins": "https://blog.example"}, "site.create"),
        (f"/settings/sites/{site.id}/origins", {"origins": "https://a.example"}, "site.origins"),
        (f"/settings/sites/{site.id}/retention", {"retention_months": "6"}, "site.retention"),
        (f"/settings/sites/{site.id}/share", {"action": "create"}, "share.create"),
        (f"/settings/sites/{site.id}/share", {"action": "revoke"}, "share.revoke"),
        ("/settings/categories", {"name": "forms"}, "category.add"),
        ("/settings/users", {"email": "v@example.org", "password": "s3cret-pass",
                             "role": "viewer"}, "user.create"),  # fmt: skip
        ("/settings/password", {"current": PASSWORD, "new": "tram blue lantern 7",
                                "confirm": "tram blue lantern 7"}, "user.password"),  # fmt: skip
    ]
    for path, form, _ in changes:
        assert client.post(path, data=form).status_code == 302, path
    entries = db.session.execute(sa.select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
    assert [e.action for e in entries] == [action for _, _, action in changes]
    assert {e.actor for e in entries} == {"admin@example.org"}
    assert "https://a.example" in entries[1].detail
    page = client.get("/settings").get_data(as_text=True)
    assert "site.retention" in page and "admin@example.org" in page
    # A refused change is not logged.
    client.post(f"/settings/sites/{site.id}/retention", data={"retention_months": "0"})
    assert db.session.execute(sa.select(sa.func.count(AuditEntry.id))).scalar() == len(changes)
