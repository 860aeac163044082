"""Instructions per single-event request, counted by valgrind in one process: a figure this
shared machine cannot blur.

The ingest suite's rates and CPU times moved by 2x from one run to the next on the same code
(bare Flask between 2,143 and 6,273 requests/s in one afternoon), more than most changes to the
request path are worth. Valgrind's `callgrind` counts the instructions a process executes, the
same from run to run. Each app is driven in-process through its WSGI callable (no HTTP server,
no threads), twice: with 600 requests and with 100. The difference of the two totals over 500 is
the cost of one request, without the start-up. What the database server does is another process,
and not counted; neither is the kernel's side of a system call, nor gunicorn's HTTP handling (the
same for every app). Our app runs without its refresher (ROLLUP_INTERVAL=0): a process of its
own, measured by the ingest suite.

    python -m bench instructions            (the suite: a database, the six apps, a table)
    python bench/instructions.py APP N      (one driver run, what valgrind is pointed at)

APP is `ours` (POST /api/events, the app as `wsgi.py` builds it), `benefits`, `collector` or
`track` (the app's legacy posts, one record or event each: the ingest suite's bodies), `floor`
(bench/bare_insert_app, the least a durable ingest does) or `bare` (bench/bare_app, the bare Flask
endpoint). The environment gives DATABASE_URL and BENCH_SITE_ID, and for our app BENCH_PUBLIC_ID.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import UA, Case, cases  # noqa: E402 (once the path is set)

# Our app's posts by name: the path of the ingest suite's single-event case each one drives.
OURS = {
    "ours": "/api/events",
    "benefits": "/benefits",
    "collector": "/collector",
    "track": "/track",
}
APPS = ("bare", "floor", *OURS)
WARM = 50  # requests before either count: imports, caches, the pool, prepared statements


def _wsgi(name: str) -> Callable[..., Any]:
    if name == "bare":
        from bench.bare_app import app as bare

        return bare
    if name == "floor":
        from bench.bare_insert_app import app as floor

        return floor
    os.environ.update(DEMO="0", PROXY_COUNT="1", SECRET_KEY="bench", ROLLUP_INTERVAL="0")
    from wsgi import app as ours

    return ours


def _case(name: str) -> Case:
    """The ingest suite's single-event case of our app's post `name`; its body for the others."""
    path = OURS.get(name, "/api/events")
    found = cases(os.environ.get("BENCH_PUBLIC_ID", "bench"), int(os.environ["BENCH_SITE_ID"]))
    return next(c for c in found if c.module == "wsgi:app" and c.path == path and c.per == 1)


def body_of(case: Case, run: str, n: int) -> bytes:
    """Request `n`'s body: a visit (and a collector timestamp) of its own, as `ingest.wrk`
    makes them; `run` (8 hex digits) keeps them apart from an earlier run's on the database."""
    body = case.body.replace("SEQ", f"{run}-{n}").replace("RUN8", run)
    body = body.replace("HEX12", f"{n:012x}").replace("USEC6", f"{n % 1_000_000:06d}")
    return body.encode()


def drive(name: str, requests: int) -> None:
    """Post `requests` single events (after WARM more) to one app, in this process."""
    app = _wsgi(name)
    case = _case(name)
    run = uuid.uuid4().hex[:8]
    numbers = itertools.count()
    answers: list[str] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        answers.append(status)

    for _ in range(WARM + requests):
        n = next(numbers)
        body = body_of(case, run, n)
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": case.path,
            "SERVER_NAME": "bench",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": case.content_type,
            "REMOTE_ADDR": "127.0.0.1",
            # a visitor per request, as in the ingest suite
            "HTTP_X_FORWARDED_FOR": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
            "HTTP_USER_AGENT": UA,
            "HTTP_ORIGIN": "https://bench.example",
        }
        out = app(environ, start_response)
        b"".join(out)
        getattr(out, "close", lambda: None)()
    if not answers[-1].startswith("2"):
        raise SystemExit(f"{name}: the last answer was {answers[-1]}")


def _counted(name: str, requests: int, env: dict[str, str]) -> int:
    """Instructions of one driver run, as callgrind's summary gives them."""
    found = subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            sys.executable, str(Path(__file__).resolve()), name, str(requests),
        ],
        env=env | {"PYTHONHASHSEED": "0"}, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    for line in found.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    raise RuntimeError(f"{name}: valgrind gave no count\n{found.stdout}\n{found.stderr[-3000:]}")


def per_request(name: str, env: dict[str, str], requests: int = 600) -> float:
    """Instructions of one request of `name`: two runs, `requests` and 100 requests."""
    return (_counted(name, requests, env) - _counted(name, 100, env)) / (requests - 100)


def available() -> bool:
    return shutil.which("valgrind") is not None


if __name__ == "__main__":
    drive(sys.argv[1], int(sys.argv[2]))
