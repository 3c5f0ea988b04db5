# The two commands a new user needs: `make serve` and `make test`. Both set everything up first.
# `make serve` (and `make install`) install only what the node needs; `make test` adds the
# development tools (`.[dev]`: pytest, ruff, mypy, import-linter, hypothesis, schemathesis, tuspy) on top, and
# the client SDK and `vault-sync` (`client/`, its own distribution) so its tests run too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NODE_STAMP := $(VENV)/.installed-node
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: serve test test-s3 lint typecheck unit check-reliability install install-dev install-client client-wire bench bench-quick bench-nginx clean

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

# Every test but the reliability checks, which `make check-reliability` runs: `make test` runs
# both, so each test runs once.
unit: $(DEV_STAMP)
	$(BIN)/pytest -m "not reliability" $(PYTEST_ARGS)

# The reliability checks (pytest marker `reliability`): crash loops, disk full and stalls, memory
# under slow clients, load, hostile input, token attacks and BOLA, schemathesis against a live node.
# `-rA` prints what each printed (kills, losses, requests/s, RssAnon ...) without `-s`.
check-reliability: $(DEV_STAMP)
	$(BIN)/pytest -m reliability -rA $(PYTEST_ARGS)

test: lint typecheck unit check-reliability

# The s3 backend's tests against a throw-away Ceph RADOS Gateway (started, then stopped; Ceph is
# apt-installed the first time). Without a gateway `make test` skips them, saying so.
S3_TESTS ?= tests/test_s3_conformance.py tests/test_s3_node.py tests/test_s3_lease.py
test-s3: $(DEV_STAMP)
	bash .ci/with-ceph-rgw.sh $(BIN)/pytest $(PYTEST_ARGS) $(S3_TESTS)

# `make bench` runs the benchmarks in BENCH one after another (`python -m bench all`: the chunk
# store, the API, uploads, the photo-library backup and downloads, each against its peers in the
# same run; 8-13 minutes here) and ends with one summary of issue 9's targets, met or missed;
# `make bench BENCH=uploads` runs one. `make bench-quick` (or `make bench QUICK=1`) runs the quick
# variants of uploads, photos and downloads (about a minute and a half here). nginx is one of the
# peers: as root with apt-get it is installed first, otherwise its rows are skipped, saying how.
BENCH ?= chunkstore api uploads photos downloads
BENCH_QUICK ?= uploads photos downloads
bench: $(NODE_STAMP) bench-nginx
	$(BIN)/python -m bench all $(if $(QUICK),--quick $(if $(filter command line,$(origin BENCH)),$(BENCH),$(BENCH_QUICK)),$(BENCH))

bench-quick: QUICK = 1
bench-quick: bench

bench-nginx:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing nginx, a benchmark peer: apt-get install -y nginx"; \
		apt-get install -y nginx || { apt-get update && apt-get install -y nginx; }; \
	else \
		echo "nginx is not installed (Debian: apt-get install -y nginx): the benchmarks skip its rows"; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
