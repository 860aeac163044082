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

    Answers, not accepts: gunicorn's master listens before any worker has imported the app, so
    a connection alone proved nothing, and the first request timed the workers' start (2.4-2.8
    s on a slow day, failing the latency bounds of tests/test_slow_clients.py). A worker only
    takes connections once it runs, so one HTTP answer means requests are served from then on.
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
            if _answers(port):
                return proc, f"http://127.0.0.1:{port}"
            time.sleep(0.1)
        raise RuntimeError(f"{module} did not start")
    except BaseException:  # also Ctrl-C or SIGTERM while it starts
        stop(proc)
        raise


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
