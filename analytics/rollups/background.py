"""The refresher thread each app process runs, so that `make run` needs no extra process.

Every process tries every ROLLUP_INTERVAL seconds; the lease lets one of them work at a time
(across nodes too), so more processes add no work, only a spare when one dies.
"""

from __future__ import annotations

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

    @app.before_request
    def _start_refresher() -> None:
        if id(app) in _started:
            return
        with _lock:
            if id(app) not in _started:
                _started.add(id(app))
                thread = threading.Thread(
                    target=_run, args=(app, interval), name="rollup-refresher", daemon=True
                )
                thread.start()


def _run(app: Flask, interval: float) -> None:
    from .refresh import refresh

    stop = threading.Event()
    while not stop.wait(interval):
        with app.app_context():
            try:
                refresh()
            except Exception:  # a database outage must not end the thread
                log.exception("rollup refresh failed; retrying in %s s", interval)
            finally:
                db.session.remove()
