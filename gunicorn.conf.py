"""gunicorn's settings for `make run`, the container and the benchmarks (gunicorn reads this file
from the working directory; command-line options override it).

A public ingest endpoint meets slow and hostile clients. The defence in depth:
- in front, a buffering reverse proxy (docs/nginx.conf) that holds slow clients and caps bodies
  before a worker sees them;
- here, tight limits on the request line and headers, and a short keep-alive (gthread gives a
  silent connection back to its poller after 5 s, but a client that trickles bytes keeps a
  thread: only the proxy stops that, see docs/reverse-proxy.md);
- in the app, every body is capped (MAX_BODY_BYTES: a larger Content-Length is a 413 before a
  byte of it is read) and every batch too (MAX_BATCH_EVENTS).
"""

import os

from gunicorn import util
from gunicorn.http import wsgi

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# 16 request threads: group commit makes one commit of the ingest requests a worker holds while a
# write is in flight, and with 4 threads the groups were small and the cores waited on commits
# (README, Benchmarks: 2 x 16 against 2 x 4, 2026-12-03).
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
# Each worker listens on a socket of its own (SO_REUSEPORT), and the kernel spreads new
# connections over them. On the one socket the master shares, the workers race to accept, and a
# kept-alive connection stays with the winner: under 16 wrk connections one worker held all 16
# in 2 of 6 runs, and served them alone on one core at 2,469-2,526 requests/s against
# 3,204-3,664 (README, Benchmarks, 2026-12-05). A reverse proxy keeps a few upstream connections
# alive just so. With it: every run on both workers. Two servers started on one port share it
# instead of the second failing, and gunicorn then ignores listeners handed down by systemd.
reuse_port = True
# A worker that stops answering its master's heartbeat for this long is restarted; also the
# time a restart gives in-flight requests to finish.
timeout = 30
graceful_timeout = 30
# Idle kept-alive connections are closed after this many seconds (trackers post once a second
# at most while a page is busy, then go quiet).
keepalive = 5
# Requests are small: a request line or a header over 8 KB, or more than 50 headers, is refused
# (400) before the app runs.
limit_request_line = 8190
limit_request_fields = 50
limit_request_field_size = 8190

# The access log (`--access-logfile -` in `make run` and the container) leaves out the client's
# address, user agent and referrer: time, request line, status, size, duration.
access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(M)sms'


def post_fork(server, worker):
    """Tell the app how many request threads this worker runs (`--threads` on the command line
    included), before it loads: it keeps that many database connections (config.pool_size)."""
    os.environ["GUNICORN_THREADS"] = str(worker.cfg.threads)


def post_worker_init(worker):
    """Keep full garbage collections rare and short in a worker serving dashboards.

    A full collection walks every tracked object. In a worker that had served the dashboards
    it took 60-85 ms, and `GET /statistics` (14,000 rows at 10 M events) started one every
    third or fourth request: its p95 was 1.8-2.5x its p50. So:
    - what the loaded app holds (modules, pandas, Plotly, SQLAlchemy) is frozen: never walked;
    - the youngest generation is collected after 20,000 allocations, not 700, so that a
      request's rows die by reference count before they are promoted to the old generations,
      whose growth is what starts a full collection. The caches that fill later (SQLAlchemy's
      compiled statements, about 90,000 objects after the suite's filters) are walked rarely.
    Measured, 60 `GET /statistics` after every filtered Overview: p95 145 ms (p50 57) with the
    defaults, 60 ms (p50 57) with both (README, Design).
    """
    import gc

    gc.freeze()
    gc.set_threshold(20_000, 20, 10)


def _write_with_headers(write):
    """gunicorn's `Response.write`, changed to send the headers and a whole body in one write.

    gunicorn sends a response's headers, then its body, in two `sendall`s: two system calls,
    two TCP segments, and two reads for the client. An ingest answer is a short JSON body with
    its length known, so it goes out in one, as a 204 without a body always did. Measured
    (README, Benchmarks, 2026-12-05, night): the load generator's CPU fell by 2-6 us a request;
    the request threads' did not move beyond the spread of the ingest suite's runs.
    Anything else (a streamed or chunked body, HEAD, a body in pieces) is written as before.
    """

    def write_once(self, data):
        if (
            not self.headers_sent
            and type(data) is bytes
            and self.response_length == len(data)
            and not self.chunked
            and not getattr(self, "_omits_body", False)
            and self.req.method != "HEAD"
            and (self.status_code or 0) >= 200
            and self.status_code not in (204, 304)
        ):
            lines = self.default_headers()
            lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
            head = ("".join(lines) + "\r\n").encode("latin-1")
            self.headers_sent = True
            self.sent = len(data)
            util.write(self.sock, head + data)
            return
        write(self, data)

    write_once.__wrapped__ = write
    return write_once


if not hasattr(wsgi.Response.write, "__wrapped__"):  # the file may be read twice
    wsgi.Response.write = _write_with_headers(wsgi.Response.write)
