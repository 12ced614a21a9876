# DjangoMart developer commands. Everything runs from a virtualenv in .venv that
# these targets create and keep in sync with requirements*.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
ARGS ?=
# pytest-xdist workers for `make test`: one per core ("auto"); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= auto

.PHONY: run test lint format superuser manage install lock clean bench bench-quick

# Silent on stdout (messages on stderr): `make run`'s stdout carries only JSON log lines.
$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "DjangoMart needs Python 3.11 or newer (set PYTHON=...)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing requirements-dev.txt into $(VENV)" >&2
	@$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt >&2
	@touch $(STAMP)

install: $(STAMP)

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	@echo "Installing requirements-bench.txt into $(VENV)" >&2
	@$(PY) -m pip install --disable-pip-version-check -q -r requirements-bench.txt >&2
	@touch $(BENCH_STAMP)

## make run: the shop in the foreground (embedded PostgreSQL unless DATABASE_URL is set).
run: $(STAMP)
	@exec $(PY) -m devtools.run

## make test: lint, then the whole suite on real PostgreSQL. ARGS="tests/x.py -k y" narrows it.
test: lint
	@test -x /usr/bin/chromium || echo "make test: no /usr/bin/chromium, so the browser tests (tests/browser) skip; install it with: sudo apt-get install chromium" >&2
	$(PY) -m devtools.withdb -- $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m devtools.withdb -- $(VENV)/bin/mypy .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

superuser: $(STAMP)
	$(PY) -m devtools.withdb -- $(PY) manage.py createsuperuser

## make bench: the benchmarks (bench/README.md); ARGS="sandbox.api" narrows them.
bench: $(BENCH_STAMP)
	$(PY) -m devtools.withdb -- $(PY) -m bench $(ARGS)

## make bench-quick: the same benchmarks with shorter phases (about 2 minutes).
bench-quick: $(BENCH_STAMP)
	BENCH_QUICK=1 $(PY) -m devtools.withdb -- $(PY) -m bench $(ARGS)

## make manage ARGS="shell": any manage.py command with the development environment.
manage: $(STAMP)
	$(PY) -m devtools.withdb -- $(PY) manage.py $(ARGS)

## make lock: re-resolve pyproject.toml's ranges in a scratch venv and pin the result.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q .
	{ echo "# Runtime dependencies, pinned to what CI tested. Regenerate with \`make lock\`."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v -i '^djangomart'; } > requirements.txt
	.lock-venv/bin/pip install -q '.[dev]'
	{ echo "# Development and test tools on top of requirements.txt, pinned. Regenerate with \`make lock\`."; \
	  echo "-r requirements.txt"; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v -i '^djangomart' | grep -v -x -F -f requirements.txt; } > requirements-dev.txt
	.lock-venv/bin/pip install -q '.[dev,bench]'
	{ echo "# The benchmarks' plotting (bench/), on top of requirements-dev.txt, pinned; installed by \`make bench\` only. Regenerate with \`make lock\`."; \
	  echo "-r requirements-dev.txt"; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v -i '^djangomart' | grep -v -x -F -f requirements.txt | grep -v -x -F -f requirements-dev.txt; } > requirements-bench.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache staticfiles
