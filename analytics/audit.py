"""The Settings audit log: who changed what, in the same transaction as the change."""

from __future__ import annotations

from flask_login import current_user
from sqlalchemy import select

from .extensions import db
from .models import AuditEntry

SHOWN = 50  # entries on the Settings page


def record(action: str, detail: str) -> None:
    """Add an entry for the logged-in user's change (committed with the change, or by itself)."""
    actor = getattr(current_user, "email", None) or "(system)"
    db.session.add(AuditEntry(actor=actor, action=action, detail=detail[:2000]))
    db.session.commit()


def latest(limit: int = SHOWN) -> list[AuditEntry]:
    return list(
        db.session.execute(
            select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
        ).scalars()
    )
