# The two commands a new user needs: `make serve` and `make test`. Both set everything up first.
# `make serve` (and `make install`) install only what the node needs; `make test` adds the
# development tools (`.[dev]`: pytest, ruff, mypy, import-linter, hypothesis, tuspy) on top, and
# the client SDK and `vault-sync` (`client/`, its own distribution) so its tests run too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NODE_STAMP := $(VENV)/.installed-node
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: serve test test-s3 lint typecheck unit install install-dev install-client client-wire bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"

$(NODE_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $@

$(DEV_STAMP): pyproject.toml client/pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' -e client
	@touch $@

# The node and its `vault` command, at $(BIN)/vault.
install: $(NODE_STAMP)

install-dev: $(DEV_STAMP)

# The client alone (`vault-sync` at $(BIN)/vault-sync), without the node's dependencies.
install-client: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e client

# Regenerate the client's wire structs from this node's OpenAPI document (a test fails until you do).
client-wire: $(DEV_STAMP)
	$(BIN)/python -c 'import sys, tempfile; from vault.app import create_app; from vault.config import config_from_mapping; sys.stdout.buffer.write(create_app(config_from_mapping({"storage": {"data_dir": tempfile.mkdtemp()}})).openapi_document)' | $(BIN)/python -m vault_client.codegen --file - -o client/vault_client/wire.py

serve: $(NODE_STAMP)
	$(BIN)/vault serve $(ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check vault backends plugins client tests bench
	$(BIN)/ruff format --check vault backends plugins client tests bench
	$(BIN)/lint-imports

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

# The s3 backend's tests against a throw-away Ceph RADOS Gateway (started, then stopped; Ceph is
# apt-installed the first time). Without a gateway `make test` skips them, saying so.
S3_TESTS ?= tests/test_s3_conformance.py tests/test_s3_node.py tests/test_s3_lease.py
test-s3: $(DEV_STAMP)
	bash .ci/with-ceph-rgw.sh $(BIN)/pytest $(PYTEST_ARGS) $(S3_TESTS)

# `make bench` runs every benchmark (about 12 minutes); `make bench BENCH=uploads` runs one.
BENCH ?= chunkstore api uploads
bench: $(NODE_STAMP)
	@for name in $(BENCH); do $(BIN)/python -m bench $$name || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
