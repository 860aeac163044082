"""Where the CPU goes during a load run: CPU time of each part of the system, from /proc.

A ratio alone cannot tell a slow app from a busy machine. Two snapshots of every process's (and,
for the server, every thread's) CPU time, taken in the steady middle of a run, give the CPU
each part spent per event: the server's request threads, its rollup refresher thread (which
names itself), PostgreSQL's backends and background processes, the load generator, the rest,
and what stayed idle. Linux only (it reads /proc).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PARTS = (
    "server: requests",
    "server: rollup refresher",
    "PostgreSQL: backends",
    "PostgreSQL: background",
    "wrk",
    "other",
    "idle",
)
_TICK = os.sysconf("SC_CLK_TCK")
_PG_BACKGROUND = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum",
    "logical replication",
    "stats",
    "archiver",
)


def _stat(path: Path) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process or thread, None if it is gone."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def process_seconds(pid: int) -> float:
    """CPU seconds a process (e.g. a database backend on this machine) has used so far."""
    found = _stat(Path(f"/proc/{pid}/stat"))
    if found is None:
        raise ProcessLookupError(pid)
    return found[1]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _server_pids(root: int, parents: dict[int, int]) -> set[int]:
    found = {root}
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        grew = bool(more)
        found |= more
    return found


@dataclass(frozen=True)
class Snapshot:
    tasks: dict[int, tuple[str, float]]  # pid (tid for the server's threads) -> part, CPU s
    idle: float  # the machine's idle seconds so far, all cores


def snapshot(server_pid: int) -> Snapshot:
    """CPU seconds used so far by each process (each thread of the server) and its part."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(entry / "stat")) is not None:
            stats[int(entry.name)] = found
    server = _server_pids(server_pid, {pid: parent for pid, (parent, _) in stats.items()})
    tasks: dict[int, tuple[str, float]] = {}
    for pid, (_, seconds) in stats.items():
        if pid in server:
            for task in Path(f"/proc/{pid}/task").glob("*"):
                found = _stat(task / "stat")
                if found is not None:
                    refresher = _read(task / "comm").strip() == "rollup-refresh"
                    part = "server: rollup refresher" if refresher else "server: requests"
                    tasks[int(task.name)] = (part, found[1])
            continue
        command = _read(Path(f"/proc/{pid}/cmdline")).replace("\0", " ")
        if command.startswith("postgres: "):
            background = any(kind in command for kind in _PG_BACKGROUND)
            part = "PostgreSQL: background" if background else "PostgreSQL: backends"
        elif command.split(" ", 1)[0].endswith("wrk"):
            part = "wrk"
        else:
            part = "other"
        tasks[pid] = (part, seconds)
    cpu = _read(Path("/proc/stat")).split("\n", 1)[0].split()
    idle = (int(cpu[4]) + int(cpu[5])) / _TICK  # idle + iowait, all cores
    return Snapshot(tasks, idle)


def per_event(first: Snapshot, last: Snapshot, events: float) -> dict[str, float]:
    """Microseconds of CPU per event for each part between two snapshots.

    Each process counts what it used in between: one that started meanwhile, all of its time;
    one that ended meanwhile is missing from `last`, and what it used in the window with it.
    """
    spent = dict.fromkeys(PARTS, 0.0)
    for task, (part, seconds) in last.tasks.items():
        before = first.tasks.get(task)
        spent[part] += seconds - (before[1] if before and before[0] == part else 0.0)
    spent["idle"] = last.idle - first.idle
    return {part: seconds * 1e6 / events for part, seconds in spent.items()} if events else {}


def wait_started(
    server_pid: int, quiet: float = 0.05, step: float = 0.5, limit: float = 30.0
) -> float:
    """Wait until the server's refresher children have started; return the seconds waited.

    Each gunicorn worker starts its refresher process with its first request, and importing
    the app there costs 1.5 s of CPU per child on this machine (2.9 s for two, measured). That
    is paid once per server start, so a run measured while it happens charged it to the events
    of those seconds (150-640 us per event). Started means: the refresher used less than `quiet`
    seconds of CPU over the last `step` seconds, with no load on the server.
    """
    waited, before = 0.0, None
    while waited < limit:
        now = snapshot(server_pid)
        used = sum(s for part, s in now.tasks.values() if part == "server: rollup refresher")
        started = any(part == "server: rollup refresher" for part, _ in now.tasks.values())
        if before is not None and started and used - before < quiet:
            return waited
        before = used
        time.sleep(step)
        waited += step
    return waited
