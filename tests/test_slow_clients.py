"""Slow and flooding clients: they must not starve the workers.

gunicorn alone (gthread, as `make run` serves the app) is starved by slow-loris clients: a
thread reads a request, however slowly it comes (measured: 40 of them held normal posts back
for as long as they trickled). The layer that stops them is a buffering reverse proxy, so the
slow-loris test runs Debian's nginx with the very configuration of docs/nginx.conf in front of
gunicorn. What the app itself does (body limits checked before reading) is tested without it.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from analytics.models import EventError, Site
from bench.serving import ROOT, free_port, serve, stop

from .conftest import DESKTOP_CHROME, _required

# Its assertions are latencies under a flood: run alone, after the parallel tests (make test).
pytestmark = pytest.mark.serial

SLOW_CLIENTS = 40  # five times the threads of `make run` (2 workers x 4)


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """gunicorn (gunicorn.conf.py, 2 workers x 4 threads) on the test database; its base URL."""
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(Site).values(public_id="slow", name="Slow", origins=[]))
    engine.dispose()
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test", "ROLLUP_PROCESS": "0"}
    proc, base = serve("wsgi:app", env)
    try:
        yield base
    finally:
        stop(proc)


def quick_post(base: str) -> tuple[int, float]:
    """A normal tracker post: (status, seconds it took)."""
    started = time.perf_counter()
    response = requests.post(
        base + "/api/events",
        data=json.dumps({"site": "slow", "name": "pageview", "url": "https://a.example/"}),
        headers={"Content-Type": "text/plain", "User-Agent": DESKTOP_CHROME},
        timeout=30,
    )
    return response.status_code, time.perf_counter() - started


def find_nginx() -> str:
    """Debian's nginx binary; skip without it (fail where REQUIRE_NGINX=1, as in CI)."""
    nginx = shutil.which("nginx") or next(iter(glob.glob("/usr/sbin/nginx")), None)
    if nginx is None:
        if _required("REQUIRE_NGINX"):
            pytest.fail("REQUIRE_NGINX=1 but nginx is missing (apt-get install nginx)")
        pytest.skip("needs Debian's nginx (apt-get install nginx)")
    return nginx


def nginx_conf(top: str, site: str, daemon: bool = True) -> str:
    """A whole nginx.conf in `top` around `site` (a docs/ server block), every path in `top`."""
    conf = os.path.join(top, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            ("" if daemon else "daemon off;\n")
            + f"pid {top}/nginx.pid;\nerror_log {top}/error.log;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n access_log off;\n client_body_temp_path {top}/body;\n"
            f" proxy_temp_path {top}/proxy;\n fastcgi_temp_path {top}/fastcgi;\n"
            f" uwsgi_temp_path {top}/uwsgi;\n scgi_temp_path {top}/scgi;\n{site}\n}}\n"
        )
    return conf


@pytest.fixture
def proxied(server: str) -> Iterator[str]:
    """Debian's nginx running docs/nginx.conf (without TLS) in front of `server`: its base URL."""
    nginx = find_nginx()
    documented = (ROOT / "docs" / "nginx.conf").read_text()
    site = documented.split("\nserver {\n    listen 80;")[0]  # the port-80 redirect goes
    port = free_port()
    upstream = server.removeprefix("http://")
    site = re.sub(r"listen 443 ssl http2;[^\n]*", f"listen 127.0.0.1:{port};", site)
    site = re.sub(r"\n\s*ssl_certificate(_key)? [^\n]*", "", site)
    site = site.replace("server 127.0.0.1:5000;", f"server {upstream};")
    top = tempfile.mkdtemp(prefix="analytics-nginx-")
    os.chmod(top, 0o777)  # nginx's workers run as nobody when the tests run as root
    conf = nginx_conf(top, site, daemon=False)
    proc = subprocess.Popen([nginx, "-p", top, "-c", conf], stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(top, ignore_errors=True)


def slow_loris(base: str, clients: int, seconds: float) -> list[threading.Thread]:
    """`clients` connections that trickle a request in, a byte every half second: the headers
    for half of them, a body for the others."""
    host, port = base.removeprefix("http://").split(":")
    stop_at = time.monotonic() + seconds

    def trickle(n: int) -> None:
        try:
            with socket.create_connection((host, int(port)), timeout=30) as sock:
                if n % 2:
                    sock.sendall(
                        b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                    )
                else:
                    sock.sendall(b"POST /api/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                while time.monotonic() < stop_at:
                    sock.sendall(b"[" if n % 2 else b"x")
                    time.sleep(0.5)
        except OSError:
            pass  # dropped by the server: what it should do

    threads = [threading.Thread(target=trickle, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def test_slow_loris_clients_behind_the_documented_nginx_starve_nothing(proxied: str) -> None:
    """40 slow-loris connections (five times the threads of `make run`) for 15 s: through the
    proxy, normal posts are still answered at once; nginx drops the trickling after its 10 s
    client timeouts, and none of them ever reaches a worker."""
    threads = slow_loris(proxied, SLOW_CLIENTS, 15)
    time.sleep(2)  # every slow client has started
    answers = [quick_post(proxied) for _ in range(10)]
    for thread in threads:
        thread.join(timeout=30)
    slowest = max(seconds for _, seconds in answers)
    print(f"\n[slow clients] behind nginx, {SLOW_CLIENTS} slow-loris connections: {answers}")
    assert {status for status, _ in answers} == {202}
    assert slowest < 2.0, f"a normal post waited {slowest:.1f} s behind slow clients"


def test_a_flood_of_1mb_bodies_is_refused_and_others_still_pass(server: str) -> None:
    big = b"[" + b" " * (1024 * 1024) + b"]"

    def flood(_: int) -> int:
        try:
            return requests.post(
                server + "/api/events",
                data=big,
                headers={"Content-Type": "text/plain", "User-Agent": DESKTOP_CHROME},
                timeout=30,
            ).status_code
        except requests.ConnectionError:
            return 0  # the server closed the connection after answering 413 mid-upload

    with ThreadPoolExecutor(16) as pool:
        flooding = pool.map(flood, range(80))
        time.sleep(0.3)
        answers = [quick_post(server) for _ in range(5)]
        statuses = list(flooding)
    slowest = max(seconds for _, seconds in answers)
    print(f"\n[slow clients] 80 bodies of 1 MB: {statuses.count(413)} x 413; normal: {answers}")
    assert set(statuses) <= {413, 0} and statuses.count(413) >= 40
    assert {status for status, _ in answers} == {202}
    assert slowest < 2.0


def test_a_huge_content_length_is_refused_before_its_body(server: str, database_url) -> None:
    """A client announces 1 GB and sends nothing: the answer comes at once, from the headers."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 1073741824\r\nConnection: close\r\n\r\n"
        )
        started = time.perf_counter()
        head = sock.recv(4096).decode("latin-1")
        waited = time.perf_counter() - started
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert waited < 2.0
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        reasons = conn.execute(sa.select(EventError.reason)).scalars().all()
    engine.dispose()
    assert any("1073741824" in reason for reason in reasons), "recorded, by size"


def test_the_compose_proxy_configuration_is_valid_nginx() -> None:
    """docs/nginx-compose.conf (docker-compose.yml's proxy) passes `nginx -t` (its upstream
    `app` named as an address here, where there is no Docker DNS)."""
    nginx = find_nginx()
    site = (ROOT / "docs" / "nginx-compose.conf").read_text()
    site = site.replace("server app:5000;", "server 127.0.0.1:5000;")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
    top = tempfile.mkdtemp(prefix="analytics-nginx-")
    try:
        conf = nginx_conf(top, site)
        checked = subprocess.run([nginx, "-t", "-p", top, "-c", conf], capture_output=True)
        assert checked.returncode == 0, checked.stderr.decode()
    finally:
        shutil.rmtree(top, ignore_errors=True)
