"""API tokens: created once and stored hashed, checked, revoked, listed; from the CLI and from
Settings, on both databases. What the API does with a token is in test_api_stats.py."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import sqlalchemy as sa

from analytics.extensions import db
from analytics.models import ApiToken, AuditEntry, utcnow
from analytics.sites import InvalidInput
from analytics.tokens import (
    PREFIX,
    authenticate,
    create_token,
    every_token,
    revoke_token,
    tokens_of,
)
from analytics.users import delete_user

from .accounts import logged_in, login, make_user
from .conftest import every_cell


def test_a_token_is_returned_once_and_only_its_hash_is_stored(app):
    user = make_user()
    row, token = create_token(user.id, "  Weekly   report ")
    assert token.startswith(PREFIX) and len(token) >= 40
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:10] and row.name == "Weekly report"
    assert not any(token in value or token[10:] in value for _, _, value in every_cell())
    assert create_token(user.id)[1] != token  # random each time


def test_a_name_too_long_or_an_unknown_user_is_refused(app):
    user = make_user()
    with pytest.raises(InvalidInput):
        create_token(user.id, "x" * 101)
    with pytest.raises(InvalidInput):
        create_token(user.id + 1)
    assert create_token(user.id, "   ")[0].name == "API token"


def test_authenticate_accepts_the_token_and_nothing_else(app):
    user = make_user(role="viewer", email="v@example.org")
    row, token = create_token(user.id)
    owner = authenticate(token)
    assert owner is not None
    assert (owner.user_id, owner.email, owner.role, owner.token_id) == (
        user.id, "v@example.org", "viewer", row.id,
    )  # fmt: skip
    for wrong in ("", token[:-1], token + "x", token.upper(), PREFIX, "an_" + "A" * 43,
                  row.token_hash, "x" * 10_000, token[3:]):  # fmt: skip
        assert authenticate(wrong) is None, wrong


def test_a_revoked_token_or_one_of_a_deleted_user_stops_working(app):
    admin, viewer = make_user(), make_user("v@example.org", "viewer")
    row, token = create_token(viewer.id)
    kept, other = create_token(admin.id)
    revoke_token(row.id, viewer.id, acting_is_admin=False)
    assert authenticate(token) is None
    first = db.session.get(ApiToken, row.id).revoked_at
    revoke_token(row.id, admin.id, acting_is_admin=True)  # again: the first time stays
    assert db.session.get(ApiToken, row.id).revoked_at == first

    third = make_user("t@example.org", "viewer")
    _, gone = create_token(third.id)
    assert authenticate(gone) is not None
    delete_user(third.id, admin.id)
    assert authenticate(gone) is None
    assert authenticate(other) is not None


def test_only_the_owner_or_an_admin_revokes(app):
    admin, viewer = make_user(), make_user("v@example.org", "viewer")
    mine, _ = create_token(admin.id)
    with pytest.raises(InvalidInput):
        revoke_token(mine.id, viewer.id, acting_is_admin=False)
    with pytest.raises(InvalidInput):
        revoke_token(mine.id + 100, admin.id, acting_is_admin=True)
    theirs, _ = create_token(viewer.id)
    revoke_token(theirs.id, admin.id, acting_is_admin=True)
    assert db.session.get(ApiToken, theirs.id).revoked_at is not None
    assert db.session.get(ApiToken, mine.id).revoked_at is None


def test_last_use_is_written_at_most_once_a_minute(app):
    user = make_user()
    row, token = create_token(user.id)
    now = utcnow().replace(microsecond=0)

    def last_used():
        db.session.expire_all()
        return db.session.get(ApiToken, row.id).last_used_at

    authenticate(token, now)
    assert last_used() == now
    authenticate(token, now + dt.timedelta(seconds=59))
    assert last_used() == now
    authenticate(token, now + dt.timedelta(seconds=61))
    assert last_used() == now + dt.timedelta(seconds=61)


def test_lists_per_user_and_for_admins(app):
    admin, viewer = make_user(), make_user("v@example.org", "viewer")
    a, _ = create_token(admin.id, "a")
    b, _ = create_token(viewer.id, "b")
    assert [t.id for t in tokens_of(viewer.id)] == [b.id]
    assert {(t.id, email) for t, email in every_token()} == {
        (a.id, "admin@example.org"), (b.id, "v@example.org"),
    }  # fmt: skip


# --- the CLI ----------------------------------------------------------------------------


def test_cli_creates_lists_and_revokes(runner):
    make_user("ann@example.org", "viewer")
    created = runner.invoke(args=["tokens", "create", "Ann@Example.org", "--name", "cron"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith(PREFIX) and "\n" not in token
    assert "copy it now" in created.stderr
    assert authenticate(token).email == "ann@example.org"

    listed = runner.invoke(args=["tokens", "list", "ann@example.org"])
    assert listed.exit_code == 0, listed.output
    assert token[:10] in listed.output and "cron" in listed.output and "active" in listed.output
    assert token not in listed.output and token[10:] not in listed.output

    token_id = db.session.execute(sa.select(ApiToken.id)).scalar_one()
    revoked = runner.invoke(args=["tokens", "revoke", str(token_id)])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked token {token_id}" in revoked.output
    assert authenticate(token) is None
    assert "revoked" in runner.invoke(args=["tokens", "list", "ann@example.org"]).output


@pytest.mark.parametrize(
    "args, message",
    [
        (["tokens", "create", "nobody@example.org"], "no user"),
        (["tokens", "list", "nobody@example.org"], "no user"),
        (["tokens", "revoke", "999"], "no such token"),
        (["tokens", "revoke", "abc"], "not a valid integer"),
    ],
)
def test_cli_refuses_bad_input_clearly(runner, args, message):
    make_user()
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output


# --- Settings ----------------------------------------------------------------------------


def audit_actions() -> list[str]:
    return list(db.session.execute(sa.select(AuditEntry.action).order_by(AuditEntry.id)).scalars())


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_settings_shows_a_new_token_once_then_only_its_prefix(client, site, role):
    logged_in(client, role)
    res = client.post("/settings/tokens", data={"name": "Dashboard <b>wall</b>"})
    assert res.status_code == 200 and res.headers["Cache-Control"] == "no-store"
    html = res.get_data(as_text=True)
    token = html.split('aria-label="New API token"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert token.startswith(PREFIX) and authenticate(token) is not None
    assert "will not be shown again" in html
    assert "<b>wall</b>" not in html and "&lt;b&gt;wall&lt;/b&gt;" in html

    listing = client.get("/settings/tokens").get_data(as_text=True)
    assert token[:10] in listing and token not in listing and token[10:] not in listing
    assert "will not be shown again" not in listing
    assert audit_actions() == ["token.create"]


def test_settings_revokes_a_token(client, site):
    logged_in(client, "viewer")
    client.post("/settings/tokens", data={"name": "x"})
    row = db.session.execute(sa.select(ApiToken)).scalar_one()
    res = client.post(f"/settings/tokens/{row.id}/revoke")
    assert res.status_code == 302 and res.headers["Location"].endswith("/settings/tokens")
    db.session.expire_all()
    assert db.session.get(ApiToken, row.id).revoked_at is not None
    html = client.get("/settings/tokens").get_data(as_text=True)
    assert "revoked" in html and "Revoke</button>" not in html
    assert audit_actions() == ["token.create", "token.revoke"]


def test_a_viewer_cannot_revoke_or_see_others_tokens_and_an_admin_can(client, site):
    admin = make_user()
    admins_token, _ = create_token(admin.id, "admin's")
    logged_in(client, "viewer")
    html = client.get("/settings/tokens").get_data(as_text=True)
    assert admins_token.prefix not in html and "admin's" not in html
    client.post(f"/settings/tokens/{admins_token.id}/revoke")
    db.session.expire_all()
    assert db.session.get(ApiToken, admins_token.id).revoked_at is None
    client.post("/settings/tokens", data={"name": "viewer's"})
    viewers = db.session.execute(
        sa.select(ApiToken).where(ApiToken.name == "viewer's")
    ).scalar_one()

    client.post("/logout")
    login(client, "admin@example.org")
    html = client.get("/settings/tokens").get_data(as_text=True)
    assert "viewer@example.org" in html and viewers.prefix in html
    assert client.post(f"/settings/tokens/{viewers.id}/revoke").status_code == 302
    db.session.expire_all()
    assert db.session.get(ApiToken, viewers.id).revoked_at is not None
    assert 'id="api-tokens"' in client.get("/settings").get_data(as_text=True)


def test_token_pages_need_a_login(client, site):
    make_user()
    assert client.get("/settings/tokens").status_code == 302
    assert client.post("/settings/tokens", data={"name": "x"}).status_code == 302
    assert db.session.execute(sa.select(sa.func.count(ApiToken.id))).scalar_one() == 0


def test_a_token_name_too_long_is_refused_in_words(client, site):
    logged_in(client, "viewer")
    res = client.post("/settings/tokens", data={"name": "x" * 101}, follow_redirects=True)
    assert "at most 100 characters" in res.get_data(as_text=True)
    assert db.session.execute(sa.select(sa.func.count(ApiToken.id))).scalar_one() == 0
