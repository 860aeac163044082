"""The refresher thread each app process runs, so that `make run` needs no extra process.

Every process tries every ROLLUP_INTERVAL seconds; the lease lets one of them work at a time
(across nodes too), so more processes add no work, only a spare when one dies.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import threading

from flask import Flask

from ..extensions import db

log = logging.getLogger(__name__)
_started: set[int] = set()
_lock = threading.Lock()


def init_app(app: Flask) -> None:
    """Start the thread with the first request (after gunicorn has forked the worker)."""
    interval = float(app.config.get("ROLLUP_INTERVAL", 0))
    if interval <= 0 or app.testing or not app.config.get("ROLLUPS", True):
        return
    app.extensions["rollup_refresher"] = threading.Event()
    app.before_request(lambda: ensure_started(app))


def ensure_started(app: Flask) -> None:
    """Start this process's refresher thread unless it runs (or `init_app` chose none).

    Called by every request, including the ingest posts served without Flask's hooks.
    """
    if id(app) in _started:
        return
    stop_event = app.extensions.get("rollup_refresher")
    if stop_event is None:
        return
    with _lock:
        if id(app) not in _started:
            _started.add(id(app))
            interval = float(app.config["ROLLUP_INTERVAL"])
            thread = threading.Thread(
                target=_run, args=(app, interval, stop_event), name="rollup-refresher", daemon=True
            )
            thread.start()
            atexit.register(release_on_exit, app)


def stop(app: Flask) -> None:
    """End this app's refresher thread after its current round (tests, a clean shutdown)."""
    event = app.extensions.get("rollup_refresher")
    if event is not None:
        event.set()
    for thread in threading.enumerate():
        if thread.name == "rollup-refresher":
            thread.join(timeout=10)


def release_on_exit(app: Flask) -> None:
    """Free the lease if this process holds it, as the process ends (gunicorn runs this in a
    worker it stops or restarts): a refresh cut short rolls back whole and stays queued, and the
    next process need not wait for the lease to expire (5 minutes without rollups, at every
    deploy)."""
    from .refresh import release_lease

    try:
        with app.app_context():
            release_lease(refreshed=False)
            db.session.remove()
    except Exception:  # the database may be gone too; the lease then simply expires
        log.warning("could not free the rollup lease at exit", exc_info=True)


def _name_native_thread(name: bytes) -> None:
    """Give the thread an OS-level name (Linux), so `top -H`, `ps -L` and the benchmark's CPU
    split (bench/cpu.py) can tell the refresher's CPU from the request threads'."""
    try:
        ctypes.CDLL(None).prctl(15, name[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: the name is only a convenience
        pass


def _run(app: Flask, interval: float, stop_event: threading.Event) -> None:
    from .refresh import refresh

    _name_native_thread(b"rollup-refresh")

    while not stop_event.wait(interval):
        with app.app_context():
            try:
                refresh()
            except Exception:  # a database outage must not end the thread
                log.exception("rollup refresh failed; retrying in %s s", interval)
            finally:
                db.session.remove()
