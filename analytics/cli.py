"""`flask --app wsgi ...` commands: sites, users, categories. Each prints one line of result."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from .categories import add_category
from .importer import FORMATS, import_file, site_for_import
from .sites import InvalidInput, create_site
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


def register_cli(app: Flask) -> None:
    for group in (sites_cli, users_cli, categories_cli):
        app.cli.add_command(group)
    app.cli.add_command(import_command)
