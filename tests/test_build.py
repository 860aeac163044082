"""Reproducible, auditable builds: every dependency is pinned with hashes in a lock that `make`,
CI and the container install from; the container runs as non-root with a health check."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# "name==version \" then one or more "    --hash=sha256:<64 hex>" lines
PIN = re.compile(
    r"^([A-Za-z0-9_.\-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.M
)


def normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    found = {normal(name): version for name, version, _ in PIN.findall(text)}
    listed = re.findall(r"^([A-Za-z0-9_.\-]+)==", text, re.M)
    assert len(found) == len(listed), f"{lock}: a pin without its hashes"
    return found


def required(names: list[str]) -> set[str]:
    return {normal(re.split(r"[<>=!~\[; ]", n, maxsplit=1)[0]) for n in names}


def test_every_dependency_is_pinned_with_hashes_and_both_locks_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    app, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert required(project["dependencies"]) <= set(app), "a dependency is missing from the lock"
    assert required(project["optional-dependencies"]["test"]) <= set(dev)
    assert {name: dev[name] for name in app} == app, "the two locks pin different versions"


def test_make_ci_and_the_container_install_from_the_locks():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q --require-hashes -r requirements-dev.lock" in makefile
    assert "--no-deps" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make audit" in ci
    docker = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements.lock" in docker
    assert "pip install --no-deps" in docker


def test_the_container_runs_as_non_root_with_a_health_check():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the last USER is not root"
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert "/healthz" in (ROOT / "Dockerfile").read_text()
    assert lines.index(next(x for x in lines if x.startswith("USER "))) < lines.index(
        next(x for x in lines if x.startswith("CMD "))
    )
