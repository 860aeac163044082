"""The visitor's country, from the client address at ingest; the address itself is never stored.

The data is GeoIP2Fast's own file (MaxMind GeoLite2 Country, IPv4 and IPv6, converted by the
package's author and shipped inside the installed package): no download and no network at run
time. It is loaded once per process on the first lookup (about 0.1 s, some 55 MB of memory), and
a lookup takes a few microseconds. Addresses that are not globally routable (private, loopback,
link-local, documentation ranges) have no country. `COUNTRY_DATABASE` may name a newer `.dat.gz`
from the package's releases; otherwise upgrading the package updates the data.
"""

from __future__ import annotations

import ipaddress
import threading

from flask import Flask

_lock = threading.Lock()
_readers: dict[str, object] = {}
BUNDLED = "geoip2fast-ipv6.dat.gz"  # countries of IPv4 and IPv6 networks


def _reader(path: str) -> object:
    reader = _readers.get(path)
    if reader is None:
        with _lock:
            reader = _readers.get(path)
            if reader is None:
                from geoip2fast import GeoIP2Fast

                reader = _readers[path] = GeoIP2Fast(geoip2fast_data_file=path, verbose=False)
    return reader


def lookup(ip: str, path: str = BUNDLED) -> str | None:
    """ISO 3166-1 alpha-2 code of a globally routable address, else None (never raises).

    Not cached: a cache would keep recent addresses in memory, and a lookup is cheap.
    """
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:a.b.c.d, as dual-stack servers report IPv4
    if not address.is_global:
        return None
    code = getattr(_reader(path).lookup(str(address)), "country_code", "")
    return code.upper() if len(code) == 2 and code.isalpha() else None


def country_of(app: Flask, ip: str | None) -> str | None:
    """The country of a request's client address, or None (unknown, private, or switched off)."""
    if not ip or not app.config.get("COUNTRY_LOOKUP", True):
        return None
    return lookup(ip, app.config.get("COUNTRY_DATABASE") or BUNDLED)
