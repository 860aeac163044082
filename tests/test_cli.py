"""`flask --app wsgi ...` commands print one clear line, and a clear error on bad input."""

from __future__ import annotations

import sqlalchemy as sa

from analytics.extensions import db
from analytics.models import Category, Site, User


def test_sites_create_prints_public_id(runner):
    result = runner.invoke(args=["sites", "create", "Shop", "--origin", "https://Shop.example/x"])
    assert result.exit_code == 0, result.output
    public_id = result.output.strip()
    site = db.session.execute(sa.select(Site).where(Site.public_id == public_id)).scalar_one()
    assert site.name == "Shop" and site.origins == ["https://shop.example"]


def test_sites_create_refuses_a_bad_origin(runner):
    result = runner.invoke(args=["sites", "create", "Shop", "--origin", "shop.example"])
    assert result.exit_code != 0
    assert "not an origin" in result.output


def test_users_create_hashes_the_password(runner):
    result = runner.invoke(
        args=["users", "create", "Ann@Example.org", "--password", "s3cret-pass", "--role", "viewer"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "created viewer ann@example.org"
    user = db.session.execute(sa.select(User)).scalar_one()
    assert user.password_hash.startswith("scrypt:") and "s3cret-pass" not in user.password_hash


def test_users_create_prompts_for_the_password(runner):
    result = runner.invoke(
        args=["users", "create", "bob@example.org"], input="longpassword\nlongpassword\n"
    )
    assert result.exit_code == 0, result.output
    assert "created admin bob@example.org" in result.output


def test_users_create_rejects_bad_input(runner):
    assert (
        "not an email"
        in runner.invoke(args=["users", "create", "nope", "--password", "fine-pass-21"]).output
    )
    assert (
        "at least 10"
        in runner.invoke(args=["users", "create", "a@b.co", "--password", "short"]).output
    )
    runner.invoke(args=["users", "create", "a@b.co", "--password", "fine-pass-21"])
    assert (
        "already exists"
        in runner.invoke(args=["users", "create", "a@b.co", "--password", "fine-pass-21"]).output
    )


def test_categories_add(runner):
    result = runner.invoke(args=["categories", "add", "page interaction"])
    assert result.output.strip() == "added category page interaction"
    assert db.session.execute(sa.select(Category.name)).scalar_one() == "page interaction"
    again = runner.invoke(args=["categories", "add", "page interaction"])
    assert again.exit_code != 0 and "already exists" in again.output
