# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shipyard demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	PYTHONPATH=src $(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	PYTHONPATH=src $(BIN)/lint-imports

bench: $(STAMP)
	# The publish peer, apt-ftparchive, is a Debian package (the other peers pip-install
	# themselves into bench/.peers/).
	command -v apt-ftparchive >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apt-utils)
	$(BIN)/python bench/report.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .demo build src/*.egg-info
