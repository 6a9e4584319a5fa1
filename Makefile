# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The demo needs only the project and its `demo` extra; the test tooling (pytest, ruff,
# mypy, Playwright, schemathesis...) comes on top for `make test`, `lint` and `bench`.
# (Python 3.11's own pip installs all of it: no pip upgrade on the way.)
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
DEMO_ARGS ?=
MAN_DIR ?= build/man

.PHONY: demo test lint bench man clean

$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

$(TEST_STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[demo,test]'
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/shipyard demo $(DEMO_ARGS)

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	PYTHONPATH=src $(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	PYTHONPATH=src $(BIN)/lint-imports

# Man pages from the command tree (the same one docs/reference/cli.md is written from).
man: $(DEMO_STAMP)
	$(BIN)/python scripts/gen_man.py --out $(MAN_DIR)

bench: $(TEST_STAMP)
	# The publish peer, apt-ftparchive, is a Debian package (the other peers pip-install
	# themselves into bench/.peers/).
	command -v apt-ftparchive >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apt-utils)
	$(BIN)/python bench/report.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .demo build src/*.egg-info
