"""`flask --app wsgi ...` commands: sites, users, categories. Each prints one line of result."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from .categories import add_category
from .demo_data import load as load_demo
from .extensions import db
from .importer import FORMATS, import_file, site_for_import
from .models import Site
from .sites import InvalidInput, create_site, get_or_create_site
from .users import create_user

sites_cli = AppGroup("sites", help="Manage tracked sites.")
users_cli = AppGroup("users", help="Manage dashboard users.")
categories_cli = AppGroup("categories", help="Manage collector categories.")


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc))


@sites_cli.command("create")
@click.argument("name")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    help="Allowed origin, e.g. https://example.org (repeatable).",
)
@click.option("--public-id", default=None, help="Choose the public id instead of a random one.")
def sites_create(name: str, origins: tuple[str, ...], public_id: str | None) -> None:
    """Create a site and print its public id."""
    try:
        site = create_site(name, origins, public_id)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(site.public_id)


@users_cli.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="admin", show_default=True)
def users_create(email: str, password: str, role: str) -> None:
    """Create a dashboard user."""
    try:
        user = create_user(email, password, role)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(f"created {user.role} {user.email}")


@categories_cli.command("add")
@click.argument("name")
def categories_add(name: str) -> None:
    """Add a category the collector endpoint accepts."""
    try:
        category = add_category(name)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(f"added category {category.name}")


@click.command("import")
@click.option("--from", "fmt", type=click.Choice(FORMATS), required=True, help="Export format.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--site", "site", default=None, help="Target site's public id (default: legacy).")
@with_appcontext
def import_command(fmt: str, file: str, site: str | None) -> None:
    """Import an older system's export; importing the same file again stores nothing new."""
    try:
        site_id, public_id = site_for_import(current_app, fmt, site)
    except InvalidInput as exc:
        _fail(exc)
    size = os.path.getsize(file)
    with click.progressbar(length=size, label=f"{fmt} {file}", file=sys.stderr) as bar:
        result = import_file(file, fmt, site_id, site_public_id=public_id, progress=bar.update)
    click.echo(result.line())


demo_cli = AppGroup("demo", help="Demo data for trying the dashboards.")


@demo_cli.command("load")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650))
@click.option("--events", default=200_000, show_default=True, type=click.IntRange(1))
@click.option("--site", "public_id", default=None, help="A site's public id (default: 'demo').")
@click.option("--seed", default=None, type=int, help="Make the data reproducible.")
def demo_load(days: int, events: int, public_id: str | None, seed: int | None) -> None:
    """Fill a site with realistic events over the last DAYS days."""
    if public_id:
        site = db.session.execute(
            db.select(Site).where(Site.public_id == public_id)
        ).scalar_one_or_none()
        if site is None:
            _fail(InvalidInput(f"no site with public id {public_id!r}"))
    else:
        site = get_or_create_site("demo", "Demo site")
    label = f"demo events for {site.name} ({site.public_id})"
    with click.progressbar(length=events, label=label, file=sys.stderr) as bar:
        stored = load_demo(site.id, days, events, seed=seed, progress=bar.update)
    click.echo(f"stored {stored} events over {days} days in site {site.public_id}")


def register_cli(app: Flask) -> None:
    for group in (sites_cli, users_cli, categories_cli):
        app.cli.add_command(group)
    app.cli.add_command(import_command)
    app.cli.add_command(demo_cli)
