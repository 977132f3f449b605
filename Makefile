# Sluice — build, run, test, bench. Two set-up commands work on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
MODULES := libs cli deploy/images deploy/kubernetes/manifests services/pipelines services/training services/serving services/notebooks services/metadata services/tuning services/dashboard examples/training/mnist examples/serving
export GOFLAGS := -buildvcs=false

.PHONY: build run test test-integration vet bench deps clean workflowcheck images images-services images-base images-infra images-compose compose-plugin caddy kube-tools compose-up compose-down

build: ## build the sluice binary and every service binary into ./bin
	@mkdir -p $(BIN)
	cd cli && $(GO) build -o $(BIN)/sluice ./cmd/sluice
	@for s in pipelines training serving notebooks metadata tuning dashboard; do \
		(cd services/$$s && $(GO) build -o $(BIN)/$$s ./cmd/$$s) || exit 1; done
	cd examples/training/mnist && $(GO) build -o $(BIN)/mnist-trainer ./cmd/mnist-trainer
	cd examples/serving && $(GO) build -o $(BIN)/serving-mnist ./mnist

run: build ## run the whole platform embedded in one process (NATS, Temporal + UI, S3, every service) and the quickstart
	$(BIN)/sluice dev --quickstart

deps: ## install what the tests need (Debian packages); fails under CI=true when something is missing
	bash scripts/test-deps.sh

# go vet with the tests' own build flags (-race): the dependencies' compiled export data that vet reads is then the
# very build-cache entries the tests link against, so make test compiles the dependency tree once, not twice.
vet:
	@for m in $(MODULES); do echo "go vet $$m"; (cd $$m && $(GO) vet -race ./...) || exit 1; done

test: deps ## go vet + all tests with -race across every module of the workspace (PostgreSQL started for the metadata suite; the real Caddy for the gateway test), then the container suite
	@# The images the container suite needs are built alongside (their Debian base is mostly download time),
	@# and waited for before that suite: make test stays well inside CI's 30 minutes on 2 cores.
	@set -o pipefail; mkdir -p $(BIN); \
	$(MAKE) --no-print-directory images >$(BIN)/images.log 2>&1 & images=$$!; \
	$(MAKE) --no-print-directory vet workflowcheck caddy kube-tools || { kill $$images 2>/dev/null; wait $$images; exit 1; }; \
	eval "$$(bash scripts/pg-test.sh start)"; trap 'bash scripts/pg-test.sh stop >/dev/null' EXIT; \
	export SLUICE_CADDY=$(BIN)/tools/caddy-$(CADDY_VERSION); \
	fail=""; for m in $(MODULES); do echo "== go test -race $$m"; \
		(cd $$m && $(GO) test -race -vet=off -count=1 -timeout 20m ./...) || fail="$$fail $$m"; done; \
	if wait $$images; then echo "== make images (built alongside the tests): ok"; \
	else echo "== make images failed; the end of $(BIN)/images.log:"; tail -40 $(BIN)/images.log; fail="$$fail images"; fi; \
	$(MAKE) --no-print-directory test-integration || fail="$$fail tests/integration"; \
	if [ -n "$$fail" ]; then echo "FAILED:$$fail"; exit 1; fi

WORKFLOW_MODULES := services/pipelines services/training services/serving services/notebooks services/tuning
# The SDK's analyzer runs as a `go vet -vettool` (deploy/tools/workflowcheck): per package, with facts passed between
# packages and results kept in the build cache beside the tests' own -race export data, instead of type-checking
# every dependency from source once per module as the upstream singlechecker command does.
workflowcheck: ## static determinism check of every Temporal workflow (go.temporal.io/sdk/contrib/tools/workflowcheck v0.6.0)
	@mkdir -p $(BIN)/tools
	@cd deploy/tools/workflowcheck && GOWORK=off GOFLAGS=-buildvcs=false $(GO) build -trimpath -o $(BIN)/tools/workflowcheck-vet .
	@for m in $(WORKFLOW_MODULES); do echo "workflowcheck $$m"; \
		(cd $$m && $(GO) vet -race -vettool=$(BIN)/tools/workflowcheck-vet -workflowcheck.config=$(CURDIR)/workflowcheck.config.yaml ./...) || exit 1; done

bench: build ## run the benchmarks and write docs/benchmarks.md (scripts/bench.sh starts a durable throwaway PostgreSQL for the metadata rows)
	bash scripts/bench.sh

clean:
	rm -rf $(BIN)

# serving: regenerate the gRPC stubs of services/serving/api/proto (TF Serving and KServe v2 protos) with Debian's
# protoc (well-known types from python3-grpc-tools) and pinned protoc-gen-go / protoc-gen-go-grpc from the module proxy.
PROTO_WKT ?= /usr/lib/python3/dist-packages/grpc_tools/_proto
.PHONY: proto
proto: deps
	@mkdir -p $(BIN)
	GOBIN=$(BIN) GOFLAGS= $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(BIN) GOFLAGS= $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
	cd services/serving && files=$$(cd api/proto && find . -name '*.proto' | sed 's|^\./||' | sort) && \
	M="Mgoogle/protobuf/any.proto=google.golang.org/protobuf/types/known/anypb,Mgoogle/protobuf/wrappers.proto=google.golang.org/protobuf/types/known/wrapperspb" && \
	PATH=$(BIN):$$PATH protoc -I api/proto -I $(PROTO_WKT) \
		--go_out=. --go_opt=module=github.com/sluice-ml/sluice/services/serving,$$M \
		--go-grpc_out=. --go-grpc_opt=module=github.com/sluice-ml/sluice/services/serving,$$M $$files

# --- Images, Compose and the container integration suite (deploy/, docker-compose.yml, tests/integration) ---
# Everything is built here from this repository, the Go module proxy and Debian: no image registry.
# INFRA=local (default) builds stand-ins for NATS, Temporal (+ Web UI), S3 and PostgreSQL; INFRA=official
# leaves the compose file's defaults (nats:2.12, temporalio/auto-setup:1.30.4, temporalio/ui:2.45.1,
# minio/minio, postgres:16) for machines that can pull them. Each image name is a variable.
INFRA ?= local
SLUICE_IMAGE_PREFIX ?= sluice/
SLUICE_IMAGE_TAG ?= dev
LOCAL_BASE_IMAGE ?= sluice-local/debian:bookworm
STEP_IMAGE ?= sluice-local/step:dev
LAUNCHER_IMAGE ?= sluice-local/launcher:dev
ifeq ($(INFRA),local)
NATS_IMAGE ?= sluice-local/nats:2.12
TEMPORAL_IMAGE ?= sluice-local/temporal:1.30.4
TEMPORAL_UI_IMAGE ?= sluice-local/temporal-ui:2.45.1
S3_IMAGE ?= sluice-local/versitygw:1.8.0
POSTGRES_IMAGE ?= sluice-local/postgres:15
COMPOSE_FILES ?= -f docker-compose.yml -f deploy/compose/local.yml
else
COMPOSE_FILES ?= -f docker-compose.yml
endif
export SLUICE_IMAGE_PREFIX SLUICE_IMAGE_TAG STEP_IMAGE NATS_IMAGE TEMPORAL_IMAGE TEMPORAL_UI_IMAGE S3_IMAGE POSTGRES_IMAGE
COMPOSE_PROJECT ?= sluice
CADDY_VERSION ?= v2.11.9
COMPOSE_VERSION ?= v2.40.3
STATIC_GO := CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w'
DOCKER_BUILD := DOCKER_BUILDKIT=0 docker build -q
# $(call image,DOCKERFILE,TAG,FILES,BUILD-ARGS): build from a context holding only the Dockerfile and FILES
# (sent as a tar: no 300 MB of other binaries per build, and .dockerignore does not apply).
image = tar -c $(1) $(3) | $(DOCKER_BUILD) -f $(1) $(4) -t $(2) - >/dev/null

images: images-services images-infra ## build every image: services, sluice CLI, examples, and the infrastructure stand-ins

images-services: images-base ## one image per service (FROM scratch; pipelines on the step image), the sluice CLI and mnist-trainer
	@mkdir -p $(BIN)/static
	cd cli && $(STATIC_GO) -o $(BIN)/static/sluice ./cmd/sluice
	@for s in pipelines training serving notebooks metadata tuning dashboard; do \
		(cd services/$$s && $(STATIC_GO) -o $(BIN)/static/$$s ./cmd/$$s) || exit 1; done
	cd examples/training/mnist && $(STATIC_GO) -o $(BIN)/static/mnist-trainer ./cmd/mnist-trainer
	@for s in training serving notebooks metadata tuning dashboard sluice mnist-trainer; do \
		$(call image,deploy/Dockerfile,$(SLUICE_IMAGE_PREFIX)$$s:$(SLUICE_IMAGE_TAG),bin/static/$$s deploy/etc,--build-arg SERVICE=$$s) || exit 1; done
	$(call image,deploy/images/service-debian.Dockerfile,$(SLUICE_IMAGE_PREFIX)pipelines:$(SLUICE_IMAGE_TAG),bin/static/pipelines,--build-arg STEP_IMAGE=$(STEP_IMAGE) --build-arg SERVICE=pipelines)
	cd services/pipelines && $(STATIC_GO) -o $(BIN)/static/launcher ./cmd/launcher
	$(call image,deploy/images/launcher.Dockerfile,$(LAUNCHER_IMAGE),bin/static/launcher)

images-base: ## the Debian base (debootstrap + docker import, skipped when present) and the step image (shell + curl)
	bash deploy/images/debian-base.sh $(LOCAL_BASE_IMAGE) postgresql curl ca-certificates
	$(call image,deploy/images/step.Dockerfile,$(STEP_IMAGE),,--build-arg BASE=$(LOCAL_BASE_IMAGE))

images-infra: images-base ## stand-ins: NATS, Temporal server on PostgreSQL + Web UI, versitygw (S3), PostgreSQL (INFRA=local only)
ifeq ($(INFRA),local)
	@mkdir -p $(BIN)/static
	cd deploy/images && $(STATIC_GO) -o $(BIN)/static/temporal-server ./temporal
	cd deploy/images && $(STATIC_GO) -o $(BIN)/static/nats-server github.com/nats-io/nats-server/v2
	cd deploy/images && $(STATIC_GO) -o $(BIN)/static/versitygw github.com/versity/versitygw/cmd/versitygw
	$(call image,deploy/images/nats.Dockerfile,$(NATS_IMAGE),bin/static/nats-server)
	$(call image,deploy/images/temporal.Dockerfile,$(TEMPORAL_IMAGE),bin/static/temporal-server deploy/etc,--target server)
	$(call image,deploy/images/temporal.Dockerfile,$(TEMPORAL_UI_IMAGE),bin/static/temporal-server deploy/etc,--target ui)
	$(call image,deploy/images/s3.Dockerfile,$(S3_IMAGE),bin/static/versitygw deploy/etc)
	$(call image,deploy/images/postgres.Dockerfile,$(POSTGRES_IMAGE),deploy/images/postgres-entrypoint.sh,--build-arg BASE=$(LOCAL_BASE_IMAGE))
endif

caddy: ## the entry point's Caddy, built from its Go module (bin/tools/caddy-$(CADDY_VERSION))
	@mkdir -p $(BIN)/tools
	@[ -x $(BIN)/tools/caddy-$(CADDY_VERSION) ] || { GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN=$(BIN)/tools \
		$(GO) install -trimpath -ldflags='-s -w' github.com/caddyserver/caddy/v2/cmd/caddy@$(CADDY_VERSION) && \
		mv $(BIN)/tools/caddy $(BIN)/tools/caddy-$(CADDY_VERSION); }

# The test API server of the Kubernetes runtime (libs/runtime/kube/kubetest, as controller-runtime's envtest):
# kube-apiserver from k8s.io/kubernetes and etcd from go.etcd.io/etcd/server/v3, pinned by the tools module
# deploy/kubernetes/tools (every k8s.io staging module replaced by its published version); rebuilt when its go.mod changes.
KUBE_TOOLS := $(BIN)/tools/kube
kube-tools: ## kube-apiserver and etcd for the Kubernetes runtime's tests, built from the module proxy into bin/tools/kube
	@mkdir -p $(KUBE_TOOLS)
	@sum=$$(cat deploy/kubernetes/tools/go.mod deploy/kubernetes/tools/go.sum | sha256sum | cut -c1-16); \
	[ -x $(KUBE_TOOLS)/kube-apiserver ] && [ -x $(KUBE_TOOLS)/etcd ] && [ "$$(cat $(KUBE_TOOLS)/.sum 2>/dev/null)" = "$$sum" ] || { \
		echo "building kube-apiserver and etcd (deploy/kubernetes/tools)"; \
		(cd deploy/kubernetes/tools && GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 $(GO) build -trimpath \
			-ldflags='-s -w -X k8s.io/component-base/version.gitVersion=v1.37.2' -o $(KUBE_TOOLS)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver && \
		GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' \
			-o $(KUBE_TOOLS)/etcd go.etcd.io/etcd/server/v3) && echo "$$sum" > $(KUBE_TOOLS)/.sum; }

images-compose: images caddy ## images + the entry point (Caddy built from its Go module with deploy/caddy/Caddyfile)
	@mkdir -p $(BIN)/static
	cp $(BIN)/tools/caddy-$(CADDY_VERSION) $(BIN)/static/caddy
	$(call image,deploy/images/caddy.Dockerfile,$(SLUICE_IMAGE_PREFIX)entrypoint:$(SLUICE_IMAGE_TAG),bin/static/caddy deploy/etc deploy/caddy)

compose-plugin: ## `docker compose` v2 (github.com/docker/compose/v2) as the docker CLI plugin, when docker has none
	@# Built inside its module (go install pkg@version refuses it: its go.mod has exclude directives).
	@docker compose version >/dev/null 2>&1 || { mkdir -p $(HOME)/.docker/cli-plugins $(BIN)/tools && \
		dir=$$(GOWORK=off $(GO) mod download -json github.com/docker/compose/v2@$(COMPOSE_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p') && \
		[ -x $(BIN)/tools/docker-compose-$(COMPOSE_VERSION) ] || (cd $$dir && GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 \
			$(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/tools/docker-compose-$(COMPOSE_VERSION) ./cmd) && \
		install -m 0755 $(BIN)/tools/docker-compose-$(COMPOSE_VERSION) $(HOME)/.docker/cli-plugins/docker-compose && docker compose version; }

compose-up: images-compose compose-plugin ## run every service in its own container (docker-compose.yml), wait until healthy, print the URLs
	eval "$$(bash deploy/compose/auth-env.sh)" && docker compose $(COMPOSE_FILES) -p $(COMPOSE_PROJECT) up -d --wait --wait-timeout 600
	@printf 'Sluice (compose project %s) is up.\n  API (all services)   http://127.0.0.1:%s      e.g. curl http://127.0.0.1:%s/readyz\n  Temporal Web UI      http://127.0.0.1:%s  (namespace %s)\n  Temporal frontend    127.0.0.1:%s\n  NATS JetStream       nats://127.0.0.1:%s\n  S3 endpoint          http://127.0.0.1:%s  bucket %s  access key %s  secret key %s\n  Admin token          .sluice/auth/admin-token  (the CLI reads it from there)\nStop it with make compose-down; data stays in the compose volumes.\n' \
		$(COMPOSE_PROJECT) $${SLUICE_PORT:-8080} $${SLUICE_PORT:-8080} $${TEMPORAL_UI_PORT:-8233} $${TEMPORAL_NAMESPACE:-sluice} \
		$${TEMPORAL_PORT:-7233} $${NATS_PORT:-4222} $${S3_PORT:-9000} $${S3_BUCKET:-sluice} $${S3_ACCESS_KEY:-sluice} $${S3_SECRET_KEY:-sluice-secret-key}

compose-down: compose-plugin ## stop the compose deployment (COMPOSE_DOWN_FLAGS=-v also drops its volumes)
	eval "$$(bash deploy/compose/auth-env.sh)" && docker compose $(COMPOSE_FILES) -p $(COMPOSE_PROJECT) down $(COMPOSE_DOWN_FLAGS)

# The container suite: every service in its own container on one Docker network against the stand-ins
# (or INFRA=official images). Its own module outside go.work (testcontainers-go pulls newer OpenTelemetry
# than the Temporal server pins), so it runs with GOWORK=off. The Ryuk reaper image cannot be pulled here:
# the suite removes what it creates itself.
test-integration: images ## the testcontainers-go suite (tests/integration) against the images `make images` builds
	cd tests/integration && GOWORK=off $(GO) vet ./... && \
		TESTCONTAINERS_RYUK_DISABLED=true GOWORK=off $(GO) test -count=1 -timeout 25m ./...

# The soak test (tests/integration TestSoak, outside make test): SLUICE_SOAK of mixed load (runs, TFJobs,
# predicts, notebooks) on the container deployment with a service SIGKILLed every SLUICE_SOAK_KILL_EVERY.
# No go test timeout: every wait of the test is bounded (load + drain ≤ 15 min + settle ≤ SLUICE_SOAK_SETTLE).
SLUICE_SOAK ?= 30m
SLUICE_SOAK_KILL_EVERY ?= 5m
.PHONY: soak
soak: images ## the soak test: SLUICE_SOAK=30m of mixed load, a service container killed every SLUICE_SOAK_KILL_EVERY=5m
	cd tests/integration && SLUICE_SOAK=$(SLUICE_SOAK) SLUICE_SOAK_KILL_EVERY=$(SLUICE_SOAK_KILL_EVERY) \
		TESTCONTAINERS_RYUK_DISABLED=true GOWORK=off $(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' .
