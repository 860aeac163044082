"""The refresher each app process keeps running, so that `make run` needs no extra command.

Every process tries every ROLLUP_INTERVAL seconds; the lease lets one of them work at a time
(across nodes too), so more processes add no work, only a spare when one dies.

By default the work runs in a child process (process.py), which a thread of this process starts
and restarts if it dies: a round's burst then no longer holds the request threads' GIL.
ROLLUP_PROCESS=0, or a database only this process can see (in-memory SQLite), keeps the rounds
in the thread itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from ..extensions import db
from .process import HOLDER_ENV, PARENT_ENV, name_native_thread

log = logging.getLogger(__name__)
THREAD_NAME = "rollup-refresher"
_lock = threading.Lock()
_children: list[subprocess.Popen] = []


def init_app(app: Flask) -> None:
    """Start the refresher with the first request (after gunicorn has forked the worker)."""
    interval = float(app.config.get("ROLLUP_INTERVAL", 0))
    if interval <= 0 or app.testing or not app.config.get("ROLLUPS", True):
        return
    app.extensions["rollup_refresher"] = threading.Event()
    app.before_request(lambda: ensure_started(app))


def ensure_started(app: Flask) -> None:
    """Start this process's refresher unless it runs (or `init_app` chose none).

    Called by every request, including the ingest posts served without Flask's hooks.
    """
    if app.extensions.get("rollup_refresher_started"):
        return
    stop_event = app.extensions.get("rollup_refresher")
    if stop_event is None:
        return
    with _lock:
        if not app.extensions.get("rollup_refresher_started"):
            app.extensions["rollup_refresher_started"] = True
            target = _supervise if in_child_process(app) else _run
            thread = threading.Thread(
                target=target, args=(app, stop_event), name=THREAD_NAME, daemon=True
            )
            thread.start()
            atexit.register(stop, app)
            atexit.register(release_on_exit, app)


def in_child_process(app: Flask) -> bool:
    uri = str(app.config["SQLALCHEMY_DATABASE_URI"])
    in_memory = uri.startswith("sqlite") and (":memory:" in uri or uri.rstrip("/") == "sqlite:")
    return bool(app.config.get("ROLLUP_PROCESS", True)) and not in_memory


def stop(app: Flask) -> None:
    """End this app's refresher (tests, a clean shutdown): a child drops its round at once, a
    thread ends after its round."""
    event = app.extensions.get("rollup_refresher")
    if event is not None:
        event.set()
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME and thread is not threading.current_thread():
            thread.join(timeout=15)


def release_on_exit(app: Flask, holder: str | None = None) -> None:
    """Free the lease if this process (or its ended child `holder`) holds it, as the process
    ends (gunicorn runs this in a worker it stops or restarts): a refresh cut short rolls back
    whole and stays queued, and the next process need not wait for the lease to expire
    (5 minutes without rollups, at every deploy)."""
    from .refresh import release_lease

    try:
        with app.app_context():
            if holder is None:
                release_lease(refreshed=False)
            else:
                release_lease(holder, refreshed=False)
            db.session.remove()
    except Exception:  # the database may be gone too; the lease then simply expires
        log.warning("could not free the rollup lease at exit", exc_info=True)


def refresh_round(app: Flask, stopping: Callable[[], bool] = lambda: False) -> None:
    """One round: whatever is queued, if this process gets the lease, and once an hour the
    coming months' partitions of `events`. Never raises: a database outage must not end the
    refresher."""
    from ..partitions import ensure_now_and_then
    from .refresh import refresh

    with app.app_context():
        try:
            refresh(stopping=stopping)
            ensure_now_and_then()
        except Exception:
            log.exception("rollup refresh failed; retrying next round")
        finally:
            db.session.remove()


def _run(app: Flask, stop_event: threading.Event) -> None:
    """The rounds in this thread (ROLLUP_PROCESS=0)."""
    name_native_thread(b"rollup-refresh")
    interval = float(app.config["ROLLUP_INTERVAL"])
    while not stop_event.is_set():  # the first round at once, as in the child (process.py)
        refresh_round(app)
        stop_event.wait(interval)


def _child_environment(app: Flask, holder: str) -> dict[str, str]:
    """The child builds its app from the environment: hand it this app's database and the
    settings a refresh reads, whether they came from the environment or from a config mapping."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "SECRET_KEY": str(app.secret_key),
        "ROLLUP_INTERVAL": str(app.config["ROLLUP_INTERVAL"]),
        "ROLLUP_NICE": str(app.config.get("ROLLUP_NICE", 0)),
        "DEMO": "0",
        PARENT_ENV: str(os.getpid()),
        HOLDER_ENV: holder,
        "PYTHONPATH": package_root + (os.pathsep + path if path else ""),
    }


def _supervise(app: Flask, stop_event: threading.Event) -> None:
    """Keep one refresher child running until `stop`; restart it (after a pause) if it dies."""
    interval = float(app.config["ROLLUP_INTERVAL"])
    holder = f"{socket.gethostname()[:30]}:{os.getpid()}:child:{secrets.token_hex(4)}"
    with app.app_context():
        env = _child_environment(app, holder)
    while not stop_event.is_set():
        child = subprocess.Popen(
            [sys.executable, "-m", "analytics.rollups.process"], env=env, stdin=subprocess.DEVNULL
        )
        _children.append(child)
        while child.poll() is None and not stop_event.wait(1):
            pass
        if child.poll() is None:  # asked to stop: SIGTERM makes the child drop its round
            child.terminate()
            try:
                child.wait(timeout=10)  # the statement in flight ends first
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            _children.remove(child)
            release_on_exit(app, holder)  # a killed child could not free the lease itself
            return
        _children.remove(child)
        release_on_exit(app, holder)
        log.warning("rollup refresher process exited with %s; restarting it", child.returncode)
        stop_event.wait(interval)
