# Every target runs with the pinned Node (NODE_VERSION in sandbox-image/runtimes.env, cached once by
# ensure-node.sh), which is also the sandbox's node runtime in the tests and in `make run`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_BIN := $(shell scripts/ensure-node.sh)
export PATH := $(NODE_BIN):$(CURDIR)/node_modules/.bin:$(PATH)
CACHE ?= $(or $(MCPWORKS_CACHE),$(XDG_CACHE_HOME),$(HOME)/.cache)/mcpworks

.PHONY: help install deps components build lint typecheck test test-unit test-integration bench run crds images dev-cluster dev-cluster-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: node_modules/.installed

components: ## host packages, then build or find the cached test components (control plane, node, helm, nsjail)
	@scripts/install-host-packages.sh
	@test/controlplane/build.sh >/dev/null
	@test/controlplane/build-node.sh >/dev/null
	@scripts/install-nsjail.sh >/dev/null

install: deps components ## dependencies and test components

# Tests and tools find the cached components through these variables (a configured path overrides).
export MCPWORKS_CONTROLPLANE_BIN ?= $(CACHE)/controlplane/bin
export MCPWORKS_NSJAIL ?= $(shell scripts/install-nsjail.sh 2>/dev/null)

build: deps ## compile TypeScript to dist/
	npm run --silent build

typecheck: deps
	tsc -p tsconfig.json --noEmit

lint: deps typecheck ## eslint, prettier and the type checker
	eslint .
	prettier --check . --log-level warn

UNIT_TESTS := 'src/**/*.test.ts'
INTEGRATION_TESTS := 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts'
NODE_TEST := node --test --test-reporter=spec --test-timeout=600000

test-unit: deps
	$(NODE_TEST) $(UNIT_TESTS)

test-integration: install
	$(NODE_TEST) --test-concurrency=1 $(INTEGRATION_TESTS)

test: install lint ## everything: lint, unit, integration against a real API server and nsjail, e2e
	$(NODE_TEST) --test-concurrency=2 $(UNIT_TESTS) $(INTEGRATION_TESTS)

bench: install ## every benchmark; figures to .bench/latest.json
	node test/bench/run.ts

run: deps ## mcpworks serve on the samples
	node src/cli/main.ts serve -f config/samples

crds: deps ## regenerate crds/ and config/crd from the zod schemas
	node src/cli/main.ts crds --write

images: deps ## build the operator and sandbox images from their Dockerfiles (buildah, no registry); prints ref and docker-archive tar
	@node test/harness/images.ts

dev-cluster: install ## start a local cluster (as root with a real node) in the background; prints its KUBECONFIG
	@node test/harness/dev-cluster.ts up

dev-cluster-down: ## stop the local cluster (also cleans up a node left by a killed test)
	@node test/harness/dev-cluster.ts down

clean:
	rm -rf dist .bench
