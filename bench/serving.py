"""Serve a WSGI app with gunicorn as `make run` does (2 workers x 16 threads), for a benchmark."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
THREADS = int(os.environ.get("BENCH_THREADS", "16"))  # `make run`'s threads per worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(
    module: str,
    env: dict[str, str],
    workers: int = 2,
    threads: int = THREADS,
    worker_class: str = "gthread",
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.Popen, str]:
    """Start gunicorn on a free port; return the process and its base URL once it answers.

    Answers, not accepts: each gthread worker listens before it has imported the app
    (gunicorn.conf.py, `reuse_port`), so a connection alone proved nothing, and the first request
    timed the workers' start (2.4-2.8 s on a slow day, failing the latency bounds of
    tests/test_slow_clients.py). One answer proves one worker runs; a connection the kernel
    hands to another one still waits for that worker's start, so a gthread server is returned
    only once every worker polls its listener (`polling_workers`).
    """
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            worker_class,
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            *extra,
            module,
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn {module} exited with status {proc.returncode}")
            if _answers(port) and (
                worker_class != "gthread" or polling_workers(proc.pid, port) == workers
            ):
                if strangers(proc.pid, port):
                    raise RuntimeError(f"another server listens on port {port} too")
                return proc, f"http://127.0.0.1:{port}"
            time.sleep(0.1)
        raise RuntimeError(f"{module} did not start")
    except BaseException:  # also Ctrl-C or SIGTERM while it starts
        stop(proc)
        raise


def children(pid: int) -> list[int]:
    """A process's children (gunicorn's master: its workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as found:
            return [int(child) for child in found.read().split()]
    except FileNotFoundError:
        return []


def sockets_of(pid: int) -> dict[int, int]:
    """A process's open sockets: {inode: file descriptor}."""
    found = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return {}
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if link.startswith("socket:["):
            found[int(link[8:-1])] = int(fd)
    return found


def tcp_sockets() -> Iterator[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every TCP socket; state "0A" is listening,
    "01" established."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
                yield local, remote, fields[3], int(fields[9])


def listeners(port: int) -> set[int]:
    """The inodes of the sockets listening on `port`."""
    return {inode for local, _, state, inode in tcp_sockets() if local == port and state == "0A"}


def polling_workers(master: int, port: int) -> int:
    """How many of gunicorn's workers have a listener on `port` registered with their poller:
    a gthread worker registers it once its app is loaded and it runs (read from /proc)."""
    listening = listeners(port)
    ready = 0
    for pid in children(master):
        own = {fd for inode, fd in sockets_of(pid).items() if inode in listening}
        polled: set[int] = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fdinfo"):
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    polled |= {int(line.split()[1]) for line in info if line.startswith("tfd:")}
        except (FileNotFoundError, ProcessLookupError):
            continue
        ready += bool(own & polled)
    return ready


def strangers(master: int, port: int) -> set[int]:
    """Listeners on `port` that neither gunicorn's master nor its workers hold. With
    `reuse_port`, a second server given the same port (two `free_port` calls that happened to
    agree) would share it, and each would answer the other's requests, instead of failing."""
    ours: set[int] = set()
    for pid in (master, *children(master)):
        ours |= set(sockets_of(pid))
    return listeners(port) - ours


def _answers(port: int) -> bool:
    """Whether an HTTP request to the port gets any answer (a 404 will do)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.settimeout(5)
            sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def served(module: str, env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """gunicorn serving `module` for the duration of the block; yields its base URL."""
    proc, base = serve(module, env, workers)
    try:
        yield base
    finally:
        stop(proc)
