"""An ingest POST's answer: a status, a JSON body and its headers, as plain values.

The direct path (`views/direct.py`) hands it to the WSGI server as it is: building a werkzeug
Response for each answer took 6 % of a single event's CPU in the process (sampled by py-spy).
The Flask views of the same paths turn it into a Response (`response()`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Response
from werkzeug.http import HTTP_STATUS_CODES


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes  # JSON
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Answer:
        return cls(status, json.dumps(value).encode(), list(headers))

    def status_line(self) -> str:
        """As werkzeug writes it, e.g. `202 ACCEPTED`."""
        return f"{self.status} {HTTP_STATUS_CODES.get(self.status, 'unknown').upper()}"

    def wsgi_headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]

    def response(self) -> Response:
        return Response(self.body, self.status, self.headers, content_type="application/json")
