# DYSCHAT developer entry points. `make` alone lists them.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

CARGO ?= cargo
COMPOSE_FILE ?= docker-compose.prod.yml
COVERAGE_DIR ?= coverage
# Extra arguments for the test runner, e.g. `make test TEST_ARGS=harness`.
TEST_ARGS ?=
# What `make bench` runs: a scenario of dyschat-bench and its options, e.g.
# `make bench BENCH_ARGS="ingest --rooms 50"` (`cargo run -p dyschat-tools -- --help` lists them).
BENCH_ARGS ?= all

# Runs scripts/ensure-servers.sh (installs nats-server / redis-server / prometheus when missing)
# and exports NATS_SERVER_BIN, REDIS_SERVER_BIN and PROMETHEUS_BIN for the integration tests, which
# start their own servers.
ENSURE_SERVERS = env_lines="$$(scripts/ensure-servers.sh)"; eval "$$env_lines"; \
	export NATS_SERVER_BIN REDIS_SERVER_BIN PROMETHEUS_BIN

.PHONY: help build run_dev run_prod deploy_check test test_coverage bench lint fmt clean_dev test_browser

help: ## List the targets
	@echo "DYSCHAT make targets:"
	@grep -E '^[a-z_]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

build: ## Build the four service binaries into target/release/
	$(CARGO) build --release --bins

run_dev: ## Run NATS, Redis and all four services locally (Ctrl-C stops everything)
	@scripts/run-dev.sh

run_prod: ## Build the images and start the production topology (docker-compose.prod.yml) with Docker Compose
	@COMPOSE_FILE_PROD="$(COMPOSE_FILE)" scripts/run-prod.sh

deploy_check: ## Check the deployment files (compose, NATS, Prometheus, nginx, dashboards); no Docker needed
	@scripts/deploy-check.sh

test: ## Run every test (unit, integration, doc); installs nats-server/redis-server if needed
	@$(MAKE) deploy_check
	@$(ENSURE_SERVERS); \
	echo "NATS_SERVER_BIN=$$NATS_SERVER_BIN REDIS_SERVER_BIN=$$REDIS_SERVER_BIN"; \
	export RUST_LIB_BACKTRACE=$${RUST_LIB_BACKTRACE:-0}; \
	$(CARGO) build --workspace --bins; \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
		status=0; \
		$(CARGO) test --workspace --doc || status=$$?; \
		$(CARGO) nextest run --workspace --no-fail-fast $(TEST_ARGS) || status=$$?; \
		exit $$status; \
	else \
		$(CARGO) test --workspace --no-fail-fast $(if $(TEST_ARGS),-- $(TEST_ARGS)); \
	fi
	@$(ENSURE_SERVERS); $(CARGO) run -q -p dyschat-tools --bin dyschat-bench -- smoke --out target/bench/smoke.json
	@$(MAKE) test_browser

test_browser: ## Test the web client in headless Chromium against a real mesh (installs chromium, npm deps)
	@scripts/test-browser.sh

test_coverage: ## Run the tests with coverage: HTML report in coverage/html, summary printed
	@if ! $(CARGO) llvm-cov --version >/dev/null 2>&1; then \
		echo "installing cargo-llvm-cov"; \
		$(CARGO) install cargo-llvm-cov --locked; \
	fi
	@if [ -z "$${LLVM_COV:-}" ] && command -v rustup >/dev/null 2>&1 && \
		! rustup component list --installed 2>/dev/null | grep -q '^llvm-tools'; then \
		echo "adding the llvm-tools-preview rustup component"; \
		rustup component add llvm-tools-preview || { \
			echo "cannot add llvm-tools-preview; set LLVM_COV and LLVM_PROFDATA to llvm-cov/llvm-profdata" >&2; \
			echo "binaries matching your rustc's LLVM version (rustc -vV) instead" >&2; exit 1; }; \
	fi
	@$(ENSURE_SERVERS); \
	$(CARGO) llvm-cov clean --workspace; \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) llvm-cov nextest --workspace --no-report; \
	else \
		$(CARGO) llvm-cov --workspace --no-report; \
	fi; \
	$(CARGO) llvm-cov report --html --output-dir "$(COVERAGE_DIR)"; \
	$(CARGO) llvm-cov report --summary-only; \
	echo "HTML report: $(COVERAGE_DIR)/html/index.html"

bench: ## Run every benchmark scenario (dyschat-bench all, ~10 min); table printed, JSON in target/bench/
	@$(ENSURE_SERVERS); \
	$(CARGO) build --release --workspace --bins; \
	$(CARGO) run -q --release -p dyschat-tools --bin dyschat-bench -- $(BENCH_ARGS)

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean_dev: ## Delete .dev/ (the data and logs of make run_dev)
	rm -rf .dev
