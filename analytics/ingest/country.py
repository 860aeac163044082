"""The visitor's country, from the client address at ingest; the address itself is never stored.

The data is GeoIP2Fast's own file (MaxMind GeoLite2 Country, IPv4 and IPv6, converted by the
package's author and shipped inside the installed package): no download and no network at run
time. It is loaded once per process on the first lookup (about 0.1 s, some 55 MB of memory), and
a lookup takes a few microseconds. Addresses that are not globally routable (private, loopback,
link-local, documentation ranges) have no country. `COUNTRY_DATABASE` may name a newer `.dat.gz`
from the package's releases; otherwise upgrading the package updates the data.

Every ingest post asks, so the address is read in C (`socket.inet_pton`, as strict as the
`ipaddress` module) and checked against the ranges below with a bisection. Through `ipaddress`
(which parses in Python, and builds a network per `is_global`) a lookup took 114,000
instructions for a public IPv4 address and 167,000 for IPv6, against about 500,000 for a whole
single-event post; now 42,000 and 47,000, most of them the country data's own lookup
(callgrind, 5,000 lookups of distinct addresses).
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
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


def _spans(*networks: str) -> tuple[list[int], list[int]]:
    """The networks as sorted, disjoint [first, last] integer spans: (firsts, lasts)."""
    parsed = sorted(ipaddress.ip_network(n) for n in networks)
    return [int(n.network_address) for n in parsed], [int(n.broadcast_address) for n in parsed]


# Not globally routable: the special-purpose registries of IANA as Python's `ipaddress` reads
# them (`is_global` false), so that this module answers as it did when it asked `ipaddress`
# (tests/test_country.py holds it to that).
_LOCAL_V4 = _spans(
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/29", "192.0.0.170/31", "192.0.2.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
)  # fmt: skip
# (2001::/23 holds the reading's 2001:2::/48 and 2001:10::/28; ::ffff:0:0/96 is unmapped first)
_LOCAL_V6 = _spans(
    "::/128", "::1/128", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10",
)  # fmt: skip
_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96, IPv4 as a dual-stack server reports it


def _routable(number: int, spans: tuple[list[int], list[int]]) -> bool:
    at = bisect.bisect_right(spans[0], number) - 1
    return at < 0 or number > spans[1][at]


def _global_text(ip: str) -> str | None:
    """The address as the country data reads it (IPv4 unmapped from ::ffff:a.b.c.d), or None
    when it is not an address or not globally routable."""
    try:
        packed = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    except (OSError, ValueError):  # not an address (ValueError: an embedded NUL), or one with a
        return None  # zone index (fe80::1%eth0), which the country data cannot read either
    number = int.from_bytes(packed, "big")
    if len(packed) == 4:
        return ip if _routable(number, _LOCAL_V4) else None
    if number >> 32 == 0xFFFF:
        v4 = number - _MAPPED
        return socket.inet_ntoa(v4.to_bytes(4, "big")) if _routable(v4, _LOCAL_V4) else None
    return ip if _routable(number, _LOCAL_V6) else None


def lookup(ip: str, path: str = BUNDLED) -> str | None:
    """ISO 3166-1 alpha-2 code of a globally routable address, else None (never raises).

    Not cached: a cache would keep recent addresses in memory, and a lookup is cheap.
    """
    address = _global_text(ip.strip())
    if address is None:
        return None
    code = getattr(_reader(path).lookup(address), "country_code", "")
    return code.upper() if len(code) == 2 and code.isalpha() else None


def country_of(app: Flask, ip: str | None) -> str | None:
    """The country of a request's client address, or None (unknown, private, or switched off)."""
    if not ip or not app.config.get("COUNTRY_LOOKUP", True):
        return None
    return lookup(ip, app.config.get("COUNTRY_DATABASE") or BUNDLED)
