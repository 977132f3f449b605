# Sluice — build, run, test, bench. Two set-up commands work on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
MODULES := libs cli services/pipelines services/training services/serving services/notebooks services/metadata examples/training/mnist examples/serving services/tuning
export GOFLAGS := -buildvcs=false

.PHONY: build run test vet bench deps clean images workflowcheck

build: ## build the sluice binary and every service binary into ./bin
	@mkdir -p $(BIN)
	cd cli && $(GO) build -o $(BIN)/sluice ./cmd/sluice
	@for s in pipelines training serving notebooks metadata tuning; do \
		(cd services/$$s && $(GO) build -o $(BIN)/$$s ./cmd/$$s) || exit 1; done
	cd examples/training/mnist && $(GO) build -o $(BIN)/mnist-trainer ./cmd/mnist-trainer
	cd examples/serving && $(GO) build -o $(BIN)/serving-mnist ./mnist

run: build ## run the whole platform embedded in one process (NATS, Temporal + UI, S3, every service) and the quickstart
	$(BIN)/sluice dev --quickstart

deps: ## install what the tests need (Debian packages); fails under CI=true when something is missing
	bash scripts/test-deps.sh

vet:
	@for m in $(MODULES); do echo "go vet $$m"; (cd $$m && $(GO) vet ./...) || exit 1; done

test: deps vet workflowcheck ## go vet + all tests with -race across every module of the workspace (PostgreSQL started for the metadata suite)
	@set -o pipefail; eval "$$(bash scripts/pg-test.sh start)"; trap 'bash scripts/pg-test.sh stop >/dev/null' EXIT; \
	for m in $(MODULES); do echo "== go test -race $$m"; \
		(cd $$m && $(GO) test -race -count=1 -timeout 20m ./...) || exit 1; done

WORKFLOW_MODULES := services/pipelines services/training services/serving services/notebooks services/tuning
workflowcheck: ## static determinism check of every Temporal workflow (go.temporal.io/sdk/contrib/tools/workflowcheck)
	@mkdir -p $(BIN)/tools
	@[ -x $(BIN)/tools/workflowcheck ] || GOBIN=$(BIN)/tools GOFLAGS= $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0
	@for m in $(WORKFLOW_MODULES); do echo "workflowcheck $$m"; \
		(cd $$m && $(BIN)/tools/workflowcheck -config $(CURDIR)/workflowcheck.config.yaml ./...) || exit 1; done

bench: build ## run the benchmarks and write docs/benchmarks.md
	eval "$$(bash scripts/pg-test.sh start)"; trap 'bash scripts/pg-test.sh stop >/dev/null' EXIT; bash scripts/bench.sh

images: ## build one FROM-scratch image per service from static binaries (docker build, no registry)
	@mkdir -p $(BIN)/static
	cd cli && CGO_ENABLED=0 $(GO) build -o $(BIN)/static/sluice ./cmd/sluice
	@for s in pipelines training serving notebooks metadata tuning; do \
		(cd services/$$s && CGO_ENABLED=0 $(GO) build -o $(BIN)/static/$$s ./cmd/$$s) || exit 1; \
		docker build -q -f deploy/Dockerfile --build-arg SERVICE=$$s -t sluice/$$s:dev . || exit 1; done

clean:
	rm -rf $(BIN)
