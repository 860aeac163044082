"""The three older contracts we speak so their clients keep working with only a new base URL.

One module per contract (`benefits`, `collector`, `track`), each turning a request body into event
rows for the single write path, plus `site` (which site legacy events belong to). This module holds
what they share: the reply value and the rejection row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..payload import field_errors
from ..writer import error_row


@dataclass
class Reply:
    """What a legacy endpoint answers: status, JSON body (None is the JSON `null`), headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def rejection(
    endpoint: str,
    reason: str,
    *,
    body: bytes | str | None = None,
    data: Any = None,
    site_id: int | None = None,
    body_size: int | None = None,
) -> dict[str, Any]:
    """An `event_errors` row: the parsed payload when there is one, else the raw body."""
    if body_size is None and body is not None:
        body_size = len(body if isinstance(body, bytes) else body.encode("utf-8", "replace"))
    return error_row(
        endpoint, reason, payload=data, raw=body, body_size=body_size or 0, site_id=site_id
    )


def summary(exc: ValidationError) -> str:
    """One line naming every bad field: 'benefit_index: Field required; hash_id: ...'."""
    return "; ".join(f"{loc}: {msg}" for loc, msg in field_errors(exc, "(record)"))
