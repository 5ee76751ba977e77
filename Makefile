# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

AUDIT := tests/e2e/http_audit
# Test processes (pytest-xdist): most e2e time is spent waiting on server processes, so
# three share two cores well; each has its own PostgreSQL database and ports. A test that
# restarts PostgreSQL (marked `exclusive`) would fail the others' queries: it runs alone.
TEST_WORKERS ?= 3

.PHONY: run test check schema clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

## run: set up and start the server on the embedded default (SQLite, mail catcher)
run: $(STAMP)
	$(PY) main.py serve

## test: set up, check (format, lint, types, schema drift) and run the whole test suite
test: check $(AUDIT)/node_modules/.installed
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not exclusive"
	$(PY) -m pytest -m exclusive

# The graphql-http audit (GraphQL over HTTP spec) runs on Node; without npm its test
# skips locally (and fails in CI).
$(AUDIT)/node_modules/.installed: $(AUDIT)/package-lock.json
	if command -v npm >/dev/null; then \
	  npm ci --silent --no-audit --no-fund --prefix $(AUDIT) && touch $@; \
	else echo "npm not found: skipping the GraphQL-over-HTTP audit setup"; fi

## check: ruff format + lint, mypy strict, schema.graphql drift
check: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy .
	$(PY) -m schema | diff -u schema.graphql - || (echo "schema.graphql is stale: run 'make schema'" && exit 1)

## schema: write schema.graphql from the code
schema: $(STAMP)
	$(PY) -m schema > schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(AUDIT)/node_modules
