"""Rollups: per-day counts that the dashboards read instead of scanning raw events.

- `refresh`: the one code path that keeps them current (a queue filled by database triggers,
  drained by whichever process holds the lease), plus `rebuild` and `status` for the CLI;
- `read`: how a stats function's answer over any range is put together from stored days;
- `background`: the thread each app process runs so that no extra process is needed.

Import the submodules directly: `stats` imports `read`, and `refresh` imports `stats`.
"""
