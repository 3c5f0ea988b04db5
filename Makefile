# The two commands a new user needs: `make serve` and `make test`. Both set everything up first.
# `make serve` (and `make install`) install only what the node needs; `make test` adds the
# development tools (`.[dev]`: pytest, ruff, mypy, import-linter, hypothesis, tuspy) on top.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NODE_STAMP := $(VENV)/.installed-node
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: serve test test-s3 lint typecheck unit install install-dev bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"

$(NODE_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(DEV_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# The node and its `vault` command, at $(BIN)/vault.
install: $(NODE_STAMP)

install-dev: $(DEV_STAMP)

serve: $(NODE_STAMP)
	$(BIN)/vault serve $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check vault backends plugins tests bench
	$(BIN)/ruff format --check vault backends plugins tests bench
	$(BIN)/lint-imports

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

# The s3 backend's tests against a throw-away Ceph RADOS Gateway (started, then stopped; Ceph is
# apt-installed the first time). Without a gateway `make test` skips them, saying so.
S3_TESTS ?= tests/test_s3_conformance.py tests/test_s3_node.py
test-s3: $(DEV_STAMP)
	bash .ci/with-ceph-rgw.sh $(BIN)/pytest $(PYTEST_ARGS) $(S3_TESTS)

# `make bench` runs every benchmark (about 12 minutes); `make bench BENCH=uploads` runs one.
BENCH ?= chunkstore api uploads
bench: $(NODE_STAMP)
	@for name in $(BENCH); do $(BIN)/python -m bench $$name || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
