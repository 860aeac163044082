"""What the ingest code needs from an HTTP request, read once at the door."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from werkzeug.http import parse_list_header
from werkzeug.sansio.utils import get_content_length


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
    def from_environ(cls, environ: dict[str, Any]) -> RequestMeta:
        return cls(
            ip=environ.get("REMOTE_ADDR"),
            user_agent=environ.get("HTTP_USER_AGENT"),
            origin=environ.get("HTTP_ORIGIN"),
            opted_out=environ.get("HTTP_DNT") == "1" or environ.get("HTTP_SEC_GPC") == "1",
        )


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """Read at most `limit` bytes of body, or raise BodyTooLarge without reading the rest.

    From the WSGI stream itself, as werkzeug's request would give it: a server that ends the
    stream itself (`wsgi.input_terminated`: gunicorn, which also takes chunked bodies) is read
    as it is; otherwise no more than the declared length, and nothing without one.
    """
    declared = get_content_length(
        environ.get("CONTENT_LENGTH"), environ.get("HTTP_TRANSFER_ENCODING")
    )
    if declared is not None and declared > limit:
        raise BodyTooLarge(declared, limit)
    stream = environ["wsgi.input"]
    if "wsgi.input_terminated" in environ:
        data = stream.read(limit + 1)
    elif declared is None:
        return b""
    else:
        data = stream.read(declared)
    if len(data) > limit:
        raise BodyTooLarge(declared or len(data), limit)
    return data


def forwarded_for(environ: dict[str, Any], proxies: int) -> str | None:
    """The client's address behind `proxies` reverse proxies, as werkzeug's ProxyFix(x_for=)
    takes it: the `proxies`-th address from the end of X-Forwarded-For, else REMOTE_ADDR."""
    header = environ.get("HTTP_X_FORWARDED_FOR")
    if header:
        values = parse_list_header(header)
        if len(values) >= proxies and values[-proxies]:
            return values[-proxies]
    return environ.get("REMOTE_ADDR")
