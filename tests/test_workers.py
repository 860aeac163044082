"""gunicorn's workers share the connections they are given (gunicorn.conf.py, `reuse_port`).

With the one listening socket the master shares, the workers race to accept and a kept-alive
connection stays with the winner: a proxy's or a load generator's few connections could all land
on one worker, which then served them on one core. Here each worker listens on a socket of its
own and the kernel spreads connections over them. Read from /proc: which process holds which
socket.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.serving import (
    children,
    listeners,
    polling_workers,
    serve,
    sockets_of,
    stop,
    strangers,
    tcp_sockets,
)

CONNECTIONS = 32
ESTABLISHED = "01"  # a state in /proc/net/tcp


def listeners_of(pid: int, port: int) -> set[int]:
    return listeners(port) & set(sockets_of(pid))


@pytest.fixture
def gunicorn(database_url: str) -> Iterator[tuple[int, int]]:
    """The app under gunicorn.conf.py with 2 workers: (master pid, port)."""
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test", "ROLLUP_PROCESS": "0"}
    proc, base = serve("wsgi:app", env, workers=2, threads=4)
    try:
        yield proc.pid, int(base.rsplit(":", 1)[1])
    finally:
        stop(proc)


def test_each_worker_listens_on_a_socket_of_its_own(gunicorn) -> None:
    """And both run once `serve` returns: a connection the kernel hands to either is served."""
    master, port = gunicorn
    assert polling_workers(master, port) == 2
    held = {pid: listeners_of(pid, port) for pid in children(master)}
    first, second = held.values()
    assert len(first) == len(second) == 1 and not first & second, held
    assert not listeners_of(master, port), "the master holds no listener the workers race for"


def test_the_kernel_spreads_kept_alive_connections_over_both_workers(gunicorn) -> None:
    """32 connections opened at once, each kept alive after one request: each worker holds some.
    (Spread by a hash of each connection's addresses: one worker holding 3 or fewer of 32 has a
    chance of 3 in a million. On the socket the master shares, both workers running, one held
    29 or 30 of the 32 in three runs of four.)"""
    master, port = gunicorn
    address = ("127.0.0.1", port)
    clients = [socket.create_connection(address, timeout=10) for _ in range(CONNECTIONS)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        for client in clients:
            assert client.recv(65536).startswith(b"HTTP/1.1 200"), "every connection answered"
        ours = {client.getsockname()[1] for client in clients}
        served = {i for lp, rp, state, i in tcp_sockets() if lp == port and rp in ours
                  and state == ESTABLISHED}  # fmt: skip
        holders = Counter(
            pid for pid in children(master) for inode in sockets_of(pid) if inode in served
        )
        assert sum(holders.values()) == CONNECTIONS, holders
        assert len(holders) == 2 and min(holders.values()) >= 4, holders
    finally:
        for client in clients:
            client.close()


def test_a_second_server_on_the_same_port_is_noticed(gunicorn) -> None:
    """With `reuse_port` a second listener on the port shares it silently: `serve` refuses to
    hand out a server whose port another one holds too (`strangers`)."""
    master, port = gunicorn
    assert not strangers(master, port)
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", port))  # accepted: the kernel lets it share the port
        other.listen()
        assert strangers(master, port) == {os.fstat(other.fileno()).st_ino}
