"""The refresher as a process of its own, started and watched by each app process's
refresher thread (background.py).

Why a process: a refresh round is a burst of Python and SQL every ROLLUP_INTERVAL seconds. As a
thread it shared the worker's GIL with the request threads, and ingest p99 rose from 9 to 80-90
ms (bench: single events paced at 1,500/s); as a process, 11 ms. ROLLUP_NICE can lower its CPU
priority too; it is 0 by default because that measured no better p99, and a refresher starved
under a saturating load falls behind until the load drops.

Run as `python -m analytics.rollups.process`; the parent passes the database and settings in
the environment. It ends when its parent does (Linux's parent-death signal, and a check of the
parent's pid each round), or on SIGTERM, abandoning the round in progress.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading

log = logging.getLogger(__name__)
PARENT_ENV = "ROLLUP_PARENT_PID"
HOLDER_ENV = "ROLLUP_HOLDER"  # the lease holder name refresh.py takes: the parent can free it
_PR_SET_PDEATHSIG = 1


def name_native_thread(name: bytes) -> None:
    """Give the calling thread an OS-level name (Linux), so `top -H`, `ps -L` and the
    benchmark's CPU split (bench/cpu.py) tell the refresher's CPU from the request threads'."""
    try:
        ctypes.CDLL(None).prctl(15, name[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: the name is only a convenience
        pass


def _die_with_parent(parent: int) -> bool:
    """Ask the kernel for SIGTERM when the parent ends; False if it already has."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the per-round pid check still ends us
        pass
    return os.getppid() == parent


def _end(stop: threading.Event) -> None:
    """SIGTERM: end now, not after the round. The round's transaction rolls back (its days stay
    queued for the next holder) and `refresh` frees the lease on its way out, so a stopped or
    restarted server never leaves the lease held by a process that is still finishing work."""
    stop.set()
    raise SystemExit(0)


def main() -> None:
    parent = int(os.environ.get(PARENT_ENV, os.getppid()))
    if not _die_with_parent(parent):
        return
    name_native_thread(b"rollup-refresh")
    os.nice(int(os.environ.get("ROLLUP_NICE", 0)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: _end(stop))
    signal.signal(signal.SIGINT, lambda *_: _end(stop))

    from .. import create_app
    from .background import refresh_round, release_on_exit

    app = create_app()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s rollup-refresh %(message)s")
    interval = float(app.config["ROLLUP_INTERVAL"])
    try:
        # The first round at once: what was queued before a restart (a deploy, a crashed
        # worker) is counted now, not an interval later.
        while not stop.is_set() and os.getppid() == parent:
            refresh_round(app, stopping=stop.is_set)
            if stop.wait(interval):
                break
    finally:
        release_on_exit(app)


if __name__ == "__main__":
    main()
