"""The migrations build exactly the tables the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from analytics.extensions import db
from analytics.ingest.writer import error_row, event_row, store_events
from analytics.models import Event, EventError
from analytics.partitions import outside_partitions
from tests.conftest import count


def test_models_and_migrations_agree(app):
    with db.engine.connect() as conn:
        opts = {"compare_type": True, "include_object": outside_partitions}
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"


def test_events_key_carries_site_and_time(app):
    pk = [c.name for c in db.metadata.tables["events"].primary_key.columns]
    assert pk == ["site_id", "occurred_at", "id"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_runs_in_wal_mode_with_foreign_keys(app):
    """The zero-set-up database: readers never block the writer, and keys are enforced."""
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_deleting_a_site_deletes_its_events_and_keeps_its_errors(app, site):
    store_events(
        [event_row(site_id=site.id, source="api", name="pv")],
        [error_row("/api/events", "bad", payload={"x": 1}, site_id=site.id)],
    )
    db.session.delete(site)
    db.session.commit()
    assert count(Event) == 0
    [error] = db.session.execute(db.select(EventError)).scalars().all()
    assert error.site_id is None and error.reason == "bad"
