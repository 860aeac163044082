# Two commands do everything on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make run    virtualenv, install, migrate, serve on http://127.0.0.1:5000 (SQLite unless DATABASE_URL)
#   make test   virtualenv, install, lint, the whole test suite on SQLite and PostgreSQL
#   make bench  every benchmark suite (python -m bench all), tables of figures against targets
#   make bench soak   the 10-minute soak alone;  make fuzz   the fuzz tests at length
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2
# Request threads per worker: group commit shares a commit among the requests a worker holds
# while a write is in flight, so more threads make larger groups. Single events under 2 x 16
# ran at 1.5x the events/s of 2 x 4 (2026-12-03, bench/ingest.py: README, Benchmarks).
THREADS ?= 16
# Test processes (pytest-xdist, one test module per process): the suite waits on servers,
# browsers and PostgreSQL much of the time, so more processes than cores pay. On two cores, one
# process took 21 minutes, two 11 (12-14 in CI), three 9.5 (2026-12-03). Tests marked `serial`
# (their assertions are latencies) run afterwards, alone; exit status 5 is pytest's "no test
# selected". PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 3
BENCH_ARGS ?=

.PHONY: run test lint bench soak fuzz lock audit clean

# Every dependency comes from a lock, pinned with its hashes: requirements.lock (what the app
# needs; the container installs it) and requirements-dev.lock (that and the tests' tools, the
# same versions). `make lock` renews both after a change to pyproject.toml's dependencies. The
# app itself is installed on top, without dependencies.
$(BIN)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

lock: $(BIN)/.installed
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --upgrade \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --extra test \
		--no-emit-index-url --no-emit-find-links -c requirements.lock \
		-o requirements-dev.lock pyproject.toml

# Known vulnerabilities of the locked versions (pip-audit); skips, saying so, without the data.
audit: $(BIN)/.installed
	$(BIN)/python .ci/audit

instance/secret_key:
	mkdir -p instance
	$(PYTHON) -c 'import secrets; print(secrets.token_hex(32))' > $@
	chmod 600 $@

run: $(BIN)/.installed instance/secret_key
	export SECRET_KEY="$${SECRET_KEY:-$$(cat instance/secret_key)}" DEMO="$${DEMO:-1}"; \
	$(BIN)/flask --app wsgi db upgrade && $(BIN)/flask --app wsgi partitions ensure && \
	exec $(BIN)/gunicorn --workers $(WORKERS) --threads $(THREADS) --bind $(HOST):$(PORT) \
		--access-logfile - wsgi:app

# PostgreSQL tests use TEST_POSTGRES_URL, or a throw-away server started here when the server
# binaries are installed (`apt-get install postgresql`); otherwise they skip with the reason.
test: $(BIN)/.installed
	$(BIN)/ruff check .
	@if [ -z "$$TEST_POSTGRES_URL" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		export TEST_POSTGRES_URL="$$(PG_INSTALL=0 .ci/start-postgres)"; \
	fi; \
	$(BIN)/python bench/tracker_size.py && \
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS) && \
	{ $(BIN)/pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]; }

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# Every benchmark suite at full size (dashboards on 100 k, 1 M and 10 M events: about an hour);
# CI's small run: see .ci/run (BENCH_ARGS="--sizes 100000 ..."). Add --strict to fail on a miss.
# `make bench soak` runs the soak suite alone (10 minutes at 80 % of the maximum ingest rate,
# dashboards read meanwhile; --soak-seconds in BENCH_ARGS to change it).
BENCH_SUITE := $(if $(filter soak,$(MAKECMDGOALS)),soak,all)

bench: $(BIN)/.installed
	$(BIN)/python -m bench $(BENCH_SUITE) $(BENCH_ARGS)

soak: $(BIN)/.installed
	@if [ -z "$(filter bench,$(MAKECMDGOALS))" ]; then $(BIN)/python -m bench soak $(BENCH_ARGS); fi

# The fuzz tests at length, with fresh random cases (CI runs 30 fixed cases per test and database),
# and the rollups' property tests (rollups, split counts and stored visits equal the raw queries) on
# 300 random histories (CI: 8).
fuzz: $(BIN)/.installed
	@if [ -z "$$TEST_POSTGRES_URL" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		export TEST_POSTGRES_URL="$$(PG_INSTALL=0 .ci/start-postgres)"; \
	fi; \
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-3000} FUZZ_RANDOM=1 $(BIN)/pytest -q tests/test_fuzz.py && \
	ROLLUP_EXAMPLES=$${ROLLUP_EXAMPLES:-300} $(BIN)/pytest -q tests/test_rollups.py tests/test_slices.py -k "equal_raw or whole_rebuild"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
