"""A gunicorn worker killed with SIGKILL while it writes: no half batch, nothing acknowledged lost.

Six clients post 10-event batches (as large as group commit takes) to gunicorn (one worker,
four threads, as `make run` but one worker so that every kill hits the requests in flight) while
the worker is killed three times.
Each batch ends up all stored or not stored at all, whatever its answer was; every batch
answered 2xx is stored whole; a resend of the batches that got no answer stores each once. Run
with group commit off and on: with it on, a kill lands in the middle of a group.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from analytics.ingest.writer import GROUP_ROWS
from analytics.models import Event, Site
from bench.serving import children, serve, stop

from .conftest import DESKTOP_CHROME

BATCH = GROUP_ROWS  # the largest request group commit merges with others
CLIENTS = 6
KILLS = 3


@pytest.fixture
def pg_url(request) -> Iterator[str]:
    """The migrated PostgreSQL test database, emptied, with the site `crash`."""
    from .conftest import _truncate

    url = request.getfixturevalue("postgres_url")
    _truncate(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.insert(Site).values(public_id="crash", name="Crash", origins=[]))
    engine.dispose()
    yield url


MADE: dict[str, int] = {}  # when each batch was made, epoch ms: a resend repeats it


def post_batch(base: str, batch_id: str) -> str:
    """POST one batch; its status code as text, or 'no answer' when the connection died.

    Its events carry an eid and a ts, as the tracker's do: the same time is what lets the
    database tell a resend from a new event.
    """
    made = MADE.setdefault(batch_id, int(time.time() * 1000))
    body = [
        {"site": "crash", "name": "hit", "eid": f"{batch_id}-{k}", "ts": made, "props": {"k": k}}
        for k in range(BATCH)
    ]
    request = urllib.request.Request(
        base + "/api/events",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "text/plain", "User-Agent": DESKTOP_CHROME},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (urllib.error.URLError, ConnectionError, OSError):
        return "no answer"


def stored_per_batch(url: str) -> Counter[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        keys = conn.execute(sa.select(Event.dedupe_key)).scalars().all()
    engine.dispose()
    return Counter(key.rsplit("-", 1)[0] for key in keys)


@pytest.mark.parametrize("group_commit", ["0", "1"])
def test_a_killed_worker_leaves_no_half_batch(pg_url: str, group_commit: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "SECRET_KEY": "test",
        "INGEST_GROUP_COMMIT": group_commit,
        "ROLLUP_PROCESS": "0",
    }
    proc, base = serve("wsgi:app", env, workers=1)
    answers: dict[str, str] = {}
    done = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not done.is_set():
            batch_id = f"g{group_commit}c{n}b{i}"
            answers[batch_id] = post_batch(base, batch_id)
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        killed = 0
        time.sleep(1.5)
        while killed < KILLS:
            workers = children(proc.pid)
            if workers:
                # Kill a worker that is serving, not one still starting (on a busy machine a
                # start takes seconds): once it has answered a round of posts, more are in flight.
                seen = len(answers)
                deadline = time.monotonic() + 30
                while len(answers) < seen + CLIENTS and time.monotonic() < deadline:
                    time.sleep(0.02)
                os.kill(workers[0], signal.SIGKILL)
                killed += 1
            time.sleep(1.5)  # the master starts a new worker meanwhile
        done.set()
        for thread in threads:
            thread.join(timeout=60)
        stored = stored_per_batch(pg_url)
        unanswered = [b for b, status in answers.items() if status == "no answer"]
        for batch_id in unanswered:  # the client resends what it got no answer for
            for _attempt in range(20):  # while the master starts a worker again
                answers[batch_id + " (resent)"] = post_batch(base, batch_id)
                if answers[batch_id + " (resent)"] == "202":
                    break
                time.sleep(0.5)
        after_resend = stored_per_batch(pg_url)
    finally:
        done.set()
        stop(proc)

    statuses = Counter(status for b, status in answers.items() if "resent" not in b)
    print(
        f"\n[crash] group commit {group_commit}: {KILLS} kills, {len(answers)} posts: "
        f"{dict(statuses)}; of the {len(unanswered)} unanswered, "
        f"{sum(1 for b in unanswered if stored[b])} had been stored whole before the resend"
    )
    assert set(statuses) <= {"202", "503", "no answer"}, statuses
    assert unanswered, "a kill landed on requests in flight"
    assert set(stored.values()) <= {BATCH}, "every batch is all stored or not at all"
    for batch_id, status in answers.items():
        if "resent" in batch_id:
            continue
        if status == "202":
            assert stored[batch_id] == BATCH, "every batch answered 2xx is stored whole"
        if status == "503":
            assert stored[batch_id] == 0, "a 503 stored nothing"
    resent = {b: answers[b + " (resent)"] for b in unanswered}
    assert set(resent.values()) == {"202"}, resent
    assert all(after_resend[b] == BATCH for b in unanswered), "the resends stored them, once"
    assert set(after_resend.values()) == {BATCH}
