# ghostwatch: `make help` lists the targets.
GO      ?= go
BIN     ?= bin/ghostwatch
ARGS    ?= trace setns
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: help build run generate vmlinux runtime-base check-runtime-base check-generated lint test test-unit test-host vmtest bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build bin/ghostwatch (no clang needed: gen/ is committed)
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/ghostwatch

run: build ## build, then run ghostwatch $(ARGS) as root (default: trace setns)
	@if [ "$$(id -u)" -eq 0 ]; then ./$(BIN) $(ARGS); else sudo ./$(BIN) $(ARGS); fi

generate: ## regenerate the bpf2go bindings in gen/ from bpf/ (needs clang, llvm-strip, libbpf-dev)
	tools/setup.sh
	$(GO) generate ./gen/...
	$(GO) run ./tools/readme

vmlinux: ## regenerate gen/vmlinux.h from the pinned Debian kernel (see tools/vmlinux-h.sh)
	tools/setup.sh
	tools/vmlinux-h.sh gen/vmlinux.h

runtime-base: ## learn what runc and crun do between installing a seccomp filter and exec; merge into gen/runtimebase (as root)
	tools/setup.sh
	$(GO) run ./tools/runtimebase

check-runtime-base: ## fail if runc or crun do, in 20 runs per mode, what gen/runtimebase lacks (as root)
	$(GO) run ./tools/runtimebase -check -runs 20

check-generated: generate ## fail if gen/ or the README's gadget docs differ from what `make generate` writes
	@git diff --exit-code --stat -- gen README.md || { echo "gen/ or README.md is stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- gen)" || { git status --porcelain -- gen; echo "gen/ has files not committed" >&2; exit 1; }

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$out" || { echo "gofmt: $$out" >&2; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

test-unit: ## tests that need no privileges
	$(GO) test ./...

test-host: ## unit, privileged and container tests on this machine's kernel (run as root)
	tools/setup.sh
	$(GO) test -race -count=1 -p 1 ./...

vmtest: ## the privileged suite in VMs on Debian's 6.1 and 6.12 kernels (KERNELS="6.1 6.12")
	tools/setup.sh
	$(GO) run ./vmtest/cmd/vmtest

bench: ## costs beside floors and peers in one run (as root): seccomp recording, trace caps, trace devices, netns holders, streaming
	tools/setup.sh
	$(GO) test -run '^$$' -bench . -benchtime 1x ./tools/bench

test: ## the full suite: set-up, lint, host tests, then vmtest (run as root)
	tools/setup.sh
	$(MAKE) lint
	$(MAKE) test-host
	$(MAKE) check-runtime-base
	$(MAKE) vmtest
