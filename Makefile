# letsbe-agent — `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.DEFAULT_GOAL := help

GO            ?= go
PREFIX        ?= /usr/local
BIN           ?= $(CURDIR)/bin
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
COMMIT        ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS       := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
CONTROLLER_GEN_VERSION ?= v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_VERSION ?= v2.15.0
GOLANGCI      := $(BIN)/golangci-lint-$(GOLANGCI_VERSION)
NFPM_VERSION  ?= v2.45.2
NFPM          := $(BIN)/nfpm-$(NFPM_VERSION)
DIST          ?= $(CURDIR)/dist
ARCHES        ?= $(shell $(GO) env GOARCH)
FUZZTIME      ?= 30s
TEST_FLAGS    ?= -race -timeout 12m

##@ General
.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
.PHONY: run
run: ## Run the agent against the embedded development orchestrator on 127.0.0.1:8080.
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/letsbe-agent dev

.PHONY: build
build: ## Build the stripped static binary into bin/letsbe-agent.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/letsbe-agent ./cmd/letsbe-agent

.PHONY: install
install: $(BIN)/letsbe-agent ## Install the binary, the systemd unit and /etc/letsbe-agent/agent.env (kept if present); DESTDIR, PREFIX.
	BINARY='$(BIN)/letsbe-agent' DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' hack/install.sh

# Rebuilt only when older than the sources, so that `make build && sudo make install` needs no Go as root.
$(BIN)/letsbe-agent: go.mod go.sum $(shell find . -name '*.go' -not -name '*_test.go' -not -path './bin/*' 2>/dev/null)
	$(MAKE) build

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code, the CRD and RBAC from the API markers.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=letsbe-agent paths=./controllers/... output:rbac:artifacts:config=config/rbac

.PHONY: fmt
fmt: ## Format the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI) ## Run golangci-lint.
	$(GOLANGCI) run ./...

.PHONY: verify
verify: generate ## Fail if generated code, formatting or go.mod are stale.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) mod tidy
	@git diff --exit-code -- api config go.mod go.sum || { echo "generated files or go.mod are stale: run make generate and go mod tidy"; exit 1; }

##@ Release
.PHONY: package
package: $(NFPM) ## Build the .deb, .rpm and tar.gz of each GOARCH in ARCHES (default: this machine's) and SHA256SUMS into DIST (dist/).
	NFPM='$(NFPM)' GO='$(GO)' DIST='$(DIST)' ARCHES='$(ARCHES)' VERSION='$(VERSION)' COMMIT='$(COMMIT)' hack/package.sh

##@ Testing
.PHONY: test
# The envtest binaries when already prepared (make envtest-assets); without them the tests on a
# real API server skip loudly.
test: export KUBEBUILDER_ASSETS ?= $(shell bash hack/envtest-assets.sh --cached 2>/dev/null)
test: verify vet lint ## Everything CI runs: verify, vet, golangci-lint, all tests with the race detector.
	@test -n "$$KUBEBUILDER_ASSETS" || echo "!!!!!!!! KUBEBUILDER_ASSETS is not set: the tests on a real API server will SKIP (make envtest-assets prepares it)" >&2
	$(GO) test $(TEST_FLAGS) ./...

.PHONY: test-short
test-short: ## Unit tests only, no race detector (quick).
	$(GO) test -short ./...

.PHONY: test-e2e
test-e2e: ## End-to-end tests: the real binary against the reference orchestrator.
	$(GO) test -race -count=1 -run 'E2E' ./cmd/...

BENCH_PKGS    ?= ./api/store/memory ./api/store/journal ./orchestratorsync ./orchestratorsync/wire ./controllers ./executors
BENCH_COUNT   ?= 6
BENCH_TIME    ?= 100ms
BENCH_FLAGS   ?=
.PHONY: bench
bench: build ## Throughput (next to a bare client and a durable reference), CPU and allocations per task, a slow orchestrator, pickup latency, footprint and Go benchmarks against targets: docs/benchmarks.md (BENCH_FLAGS for hack/bench).
	@mkdir -p docs
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -benchtime $(BENCH_TIME) $(BENCH_PKGS) | tee docs/benchmarks-raw.txt
	$(GO) run ./hack/bench -agent $(BIN)/letsbe-agent -gobench docs/benchmarks-raw.txt -out docs/benchmarks.md $(BENCH_FLAGS)

.PHONY: envtest-assets
envtest-assets: ## Prepare etcd and kube-apiserver for the envtest tests (apt + a cached build) and print their directory.
	@bash hack/envtest-assets.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s).
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

##@ Tools
$(CONTROLLER_GEN):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

$(GOLANGCI):
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	mv $(BIN)/golangci-lint $@

$(NFPM):
	GOBIN=$(BIN) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	mv $(BIN)/nfpm $@
