"""What the ingest code needs from an HTTP request, read once at the door."""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.wrappers import Request


class BodyTooLarge(Exception):
    """The request body is over the endpoint's limit; `size` is what we know of its size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"body of {size} bytes is over the {limit}-byte limit")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RequestMeta:
    ip: str | None
    user_agent: str | None
    origin: str | None
    opted_out: bool  # Do-Not-Track or Global Privacy Control

    @classmethod
    def from_request(cls, request: Request) -> RequestMeta:
        # Read from the WSGI environ itself: werkzeug's header view rebuilds each key per read.
        environ = request.environ
        return cls(
            ip=environ.get("REMOTE_ADDR"),
            user_agent=environ.get("HTTP_USER_AGENT"),
            origin=environ.get("HTTP_ORIGIN"),
            opted_out=environ.get("HTTP_DNT") == "1" or environ.get("HTTP_SEC_GPC") == "1",
        )


def read_body(request: Request, limit: int) -> bytes:
    """Read at most `limit` bytes of body, or raise BodyTooLarge without reading the rest."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(declared, limit)
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(declared or len(data), limit)
    return data
