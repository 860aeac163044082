"""`flask --app wsgi ...` commands: sites, users, categories, goals and funnels. Each prints one
line of result (a list, one line per row)."""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from . import partitions
from .categories import add_category
from .demo_copy import load as copy_demo
from .demo_data import load as load_demo
from .demo_data import simulator_funnel
from .extensions import db
from .importer import FORMATS, import_file, site_for_import
from .models import DEFAULT_RETENTION_MONTHS, Site
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
@click.option(
    "--retention-months",
    type=int,
    default=DEFAULT_RETENTION_MONTHS,
    show_default=True,
    help="Months of raw events to keep (`purge` removes older ones; aggregates stay).",
)
def sites_create(
    name: str, origins: tuple[str, ...], public_id: str | None, retention_months: int
) -> None:
    """Create a site and print its public id."""
    try:
        site = create_site(name, origins, public_id, retention_months)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(site.public_id)


@click.command("forget")
@click.argument("person_id")
@click.option("--site", "public_id", default=None, help="Only this site (public id).")
@with_appcontext
def forget_command(person_id: str, public_id: str | None) -> None:
    """Erase everything about one person: by a tracker session id, a recorder hash_id, or a
    collector or /track session id."""
    from .erasure import InvalidId, forget, site_id_of

    site_id = None
    if public_id is not None:
        site_id = site_id_of(public_id)
        if site_id is None:
            _fail(InvalidInput(f"no site with public id {public_id!r}"))
    try:
        done = forget(person_id, site_id)
    except InvalidId as exc:
        _fail(exc)
    click.echo(
        f"removed {done.events} events, {done.span_events} rollup copies of events, "
        f"{done.presence} rollup presence rows and {done.errors} rejected payloads"
    )
    days = ", ".join(f"{day}" for _, day in done.days) or "none"
    state = "recounted" if done.recounted else "queued for the refresher"
    click.echo(f"days touched ({state}): {days}")


@click.command("purge")
@click.option("--rollups", is_flag=True, help="Also remove the aggregates of the purged days.")
@click.option("--site", "public_id", default=None, help="Only this site (public id).")
@with_appcontext
def purge_command(rollups: bool, public_id: str | None) -> None:
    """Apply each site's retention: remove raw events older than it, and old event_errors."""
    from .retention import purge

    site_ids = None
    if public_id is not None:
        found = db.session.execute(
            db.select(Site.id).where(Site.public_id == public_id)
        ).scalar_one_or_none()
        if found is None:
            _fail(InvalidInput(f"no site with public id {public_id!r}"))
        site_ids = [found]
    bars: dict[str, Any] = {}

    def progress(site: str, done: int, total: int) -> None:
        if site not in bars:
            bars[site] = click.progressbar(length=total, label=f"site {site}", file=sys.stderr)
        bars[site].update(1)
        if done == total:
            bars[site].render_finish()

    try:
        report = purge(
            rollups=rollups,
            errors_days=current_app.config["EVENT_ERRORS_RETENTION_DAYS"],
            site_ids=site_ids,
            progress=progress,
        )
    except RuntimeError as exc:
        _fail(exc)
    for site in report.sites:
        kept = "aggregates removed" if rollups else "aggregates kept"
        click.echo(
            f"site {site.public_id}: kept from {site.kept_from}; removed {site.days} days, "
            f"{site.events} events, {site.raw_rollup_rows} raw rollup rows"
            + (f", {site.aggregates} aggregate rows" if rollups else f" ({kept})")
        )
    if report.partitions_dropped:
        click.echo(f"partitions dropped whole: {', '.join(report.partitions_dropped)}")
    click.echo(
        f"event_errors: removed {report.errors} received before "
        f"{report.errors_before:%Y-%m-%d %H:%M} UTC"
    )


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
    partitions.ensure()  # old months landed in the default partition: each gets its own


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
    today = dt.datetime.now(dt.UTC).date()
    partitions.cover(today - dt.timedelta(days=days), today)
    db.session.commit()  # end the read transaction: the load writes on connections of its own
    with click.progressbar(length=events, label=label, file=sys.stderr) as bar:
        if db.engine.dialect.name == "postgresql":  # COPY: millions of events in a minute or two
            url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            stored = copy_demo(url, site.id, days, events, seed=seed, progress=bar.update)
        else:
            stored = load_demo(site.id, days, events, seed=seed, progress=bar.update)
    simulator_funnel(site)
    click.echo(f"stored {stored} events over {days} days in site {site.public_id}")


rollups_cli = AppGroup("rollups", help="The per-day tables the dashboards read.")


def _site_id(public_id: str | None) -> int | None:
    if public_id is None:
        return None
    site = db.session.execute(
        db.select(Site).where(Site.public_id == public_id)
    ).scalar_one_or_none()
    if site is None:
        _fail(InvalidInput(f"no site with public id {public_id!r}"))
    return site.id


def _drain(site_id: int | None, label: str) -> int:
    from .rollups.refresh import queued_days, refresh

    with click.progressbar(
        length=len(queued_days(site_id)), label=label, file=sys.stderr
    ) as bar:
        done = refresh(site_id, progress=bar.update, max_rounds=100)
    if done < 0:
        _fail(click.ClickException("another process holds the refresh lease; try again soon"))
    return done


@rollups_cli.command("rebuild")
@click.option("--site", "public_id", default=None, help="Only this site (public id).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="From this day.")
def rollups_rebuild(public_id: str | None, since) -> None:
    """Recompute the rollups of every day (of a site, since a day) from raw events."""
    from .rollups.refresh import queue_rebuild

    site_id = _site_id(public_id)
    queued = queue_rebuild(site_id, since.date() if since else None)
    done = _drain(site_id, f"rebuilding {queued} days")
    click.echo(f"rebuilt {done} days")


@rollups_cli.command("refresh")
def rollups_refresh() -> None:
    """Recompute the days changed since the last refresh (the app's thread does this too)."""
    click.echo(f"refreshed {_drain(None, 'refreshing')} days")


@rollups_cli.command("status")
def rollups_status() -> None:
    """Each site's queued days and lag (how long its oldest change has waited)."""
    from .rollups.refresh import status

    sites, last = status()
    click.echo(f"last refresh: {last.isoformat(' ', 'seconds') if last else 'never'}")
    for s in sites:
        lag = "up to date" if s.lag_seconds is None else f"lag {s.lag_seconds:.0f} s"
        click.echo(
            f"{s.public_id}\t{s.name}\t{s.built_days} days built\t"
            f"{s.queued_days} queued\t{lag}"
        )


partitions_cli = AppGroup("partitions", help="Monthly partitions of events (PostgreSQL).")


@partitions_cli.command("ensure")
@click.option(
    "--ahead",
    default=None,
    type=click.IntRange(0, 120),
    help="Months ahead of this one to create (default 3).",
)
def partitions_ensure(ahead: int | None) -> None:
    """Create this month's partition and the coming ones, and give every month that landed in
    the default partition one of its own. Safe to run at any time, as often as you like."""
    done = partitions.ensure(ahead=partitions.MONTHS_AHEAD if ahead is None else ahead)
    if not done.partitioned:
        click.echo("events is a plain table on this database (SQLite): nothing to do")
        return
    drained = ", ".join(f"{name} {rows} rows" for name, rows in done.drained.items())
    click.echo(
        f"created {len(done.created)} partitions"
        + (f" ({', '.join(done.created)})" if done.created else "")
        + (f"; moved out of the default partition: {drained}" if drained else "")
    )


@partitions_cli.command("list")
def partitions_list() -> None:
    """Each partition of events, its months and its rows (estimated from statistics)."""
    if not partitions.is_partitioned():
        click.echo("events is a plain table on this database (SQLite)")
        return
    for part in [*partitions.partitions(), None]:
        name = partitions.DEFAULT if part is None else part.name
        rows = db.session.execute(
            db.text("SELECT reltuples::bigint FROM pg_class WHERE relname = :n"), {"n": name}
        ).scalar()
        span = "other months" if part is None else f"{part.start} to {part.end}"
        click.echo(f"{name}\t{span}\t~{max(rows or 0, 0)} rows")


tokens_cli = AppGroup("tokens", help="API tokens for the stats API (/api/v1/stats).")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="API token", show_default=True, help="What the token is for.")
def tokens_create(email: str, name: str) -> None:
    """Create a token for a user and print it: it is shown this once, and stored hashed."""
    from .tokens import create_token, find_user

    try:
        row, token = create_token(find_user(email).id, name)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(token)
    click.echo(f"token {row.id} ({row.prefix}...): copy it now, it is not stored", err=True)


@tokens_cli.command("list")
@click.argument("email")
def tokens_list(email: str) -> None:
    """A user's tokens: id, prefix, name, created, last used, revoked (never the token)."""
    from .tokens import find_user, tokens_of

    try:
        user = find_user(email)
    except InvalidInput as exc:
        _fail(exc)

    def when(value: dt.datetime | None) -> str:
        return value.isoformat(" ", "seconds") if value else "-"

    for row in tokens_of(user.id):
        state = f"revoked {when(row.revoked_at)}" if row.revoked_at else "active"
        click.echo(
            f"{row.id}\t{row.prefix}...\t{row.name}\tcreated {when(row.created_at)}\t"
            f"last used {when(row.last_used_at)}\t{state}"
        )


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by its id (see `tokens list`): it stops working at once."""
    from .tokens import revoke_token

    try:
        row = revoke_token(token_id, acting_user_id=0, acting_is_admin=True)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(f"revoked token {row.id} ({row.prefix}...)")


goals_cli = AppGroup("goals", help="A site's goals: conversions the Overview counts.")
funnels_cli = AppGroup("funnels", help="A site's funnels: ordered steps counted per visit.")


def _site(public_id: str) -> Site:
    site = db.session.execute(
        db.select(Site).where(Site.public_id == public_id)
    ).scalar_one_or_none()
    if site is None:
        _fail(InvalidInput(f"no site with public id {public_id!r}"))
    return site


@goals_cli.command("add")
@click.argument("site")
@click.argument("name")
@click.option("--page", default=None, help="A page goal: a path, `*` matches anything.")
@click.option("--event", default=None, help="An event goal: the event's name.")
@click.option("--prop", "props", multiple=True, help="With --event: KEY=VALUE (repeatable).")
@click.option("--benefit", default=None, help="A benefit goal: an item id, or * for any.")
@click.option("--type", "event_type", default=None, help="With --benefit: the event's name.")
def goals_add(
    site: str,
    name: str,
    page: str | None,
    event: str | None,
    props: tuple[str, ...],
    benefit: str | None,
    event_type: str | None,
) -> None:
    """Add a goal to SITE (a public id): exactly one of --page, --event, --benefit."""
    from .goals import create_goal, parse_props

    kinds = {"page": page, "event": event, "benefit": benefit}
    chosen = [kind for kind, value in kinds.items() if value is not None]
    if len(chosen) != 1:
        _fail(click.UsageError("give exactly one of --page, --event, --benefit"))
    if props and event is None:
        _fail(click.UsageError("--prop goes with --event"))
    if benefit is not None and not event_type:
        _fail(click.UsageError("--benefit needs --type EVENT (e.g. --type teleservice)"))
    found = _site(site)
    try:
        goal = create_goal(
            found,
            name,
            chosen[0],
            path=page,
            event_name=event if event is not None else event_type,
            props=parse_props(props),
            item_id=benefit,
        )
    except InvalidInput as exc:
        _fail(exc)
    click.echo(f"added {goal.kind} goal {goal.name}")


@goals_cli.command("list")
@click.argument("site")
def goals_list(site: str) -> None:
    """List SITE's goals: name, kind, definition."""
    from .goals import describe, goals_of

    for goal in goals_of(_site(site).id):
        click.echo(f"{goal.name}\t{goal.kind}\t{describe(goal)}")


@goals_cli.command("delete")
@click.argument("site")
@click.argument("name")
def goals_delete(site: str, name: str) -> None:
    """Delete SITE's goal NAME (refused while a funnel uses it)."""
    from .goals import delete_goal

    try:
        delete_goal(_site(site), name)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(f"deleted goal {name}")


@funnels_cli.command("add")
@click.argument("site")
@click.argument("name")
@click.argument("steps", nargs=-1, required=True)
def funnels_add(site: str, name: str, steps: tuple[str, ...]) -> None:
    """Add a funnel of 2 to 8 STEPS, each path:/x, event:NAME or a goal's name."""
    from .goals import create_funnel

    try:
        funnel = create_funnel(_site(site), name, steps)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(f"added funnel {funnel.name} of {len(funnel.steps)} steps")


@funnels_cli.command("list")
@click.argument("site")
def funnels_list(site: str) -> None:
    """List SITE's funnels: name and steps."""
    from .goals import funnels_of, step_text

    for funnel in funnels_of(_site(site).id):
        click.echo(f"{funnel.name}\t" + " → ".join(step_text(s) for s in funnel.steps))


@funnels_cli.command("delete")
@click.argument("site")
@click.argument("name")
def funnels_delete(site: str, name: str) -> None:
    """Delete SITE's funnel NAME."""
    from .goals import delete_funnel

    try:
        delete_funnel(_site(site), name)
    except InvalidInput as exc:
        _fail(exc)
    click.echo(f"deleted funnel {name}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(rollups_cli)
    app.cli.add_command(partitions_cli)
    for group in (sites_cli, users_cli, categories_cli, goals_cli, funnels_cli):
        app.cli.add_command(group)
    app.cli.add_command(import_command)
    app.cli.add_command(demo_cli)
    app.cli.add_command(purge_command)
    app.cli.add_command(forget_command)
    app.cli.add_command(tokens_cli)
