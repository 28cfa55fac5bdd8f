# ghostwatch: `make help` lists the targets.
GO      ?= go
BIN     ?= bin/ghostwatch
ARGS    ?= agent --data-dir $(CURDIR)/data
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

# make image: the architectures in the image (GOARCH values).
IMAGE_ARCHS ?= amd64
# make e2e: the Kubernetes binaries, built from the release e2e/kubebin/go.mod pins, and etcd.
KUBE_BIN     ?= bin/kube
KUBE_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" {print $$2; exit}' e2e/kubebin/go.mod)
KUBE_LDFLAGS := -s -w $(foreach kv,gitVersion=$(KUBE_VERSION) gitMajor=$(word 1,$(subst ., ,$(KUBE_VERSION:v%=%))) \
	gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))),-X k8s.io/component-base/version.$(kv))
KUBE_CMDS    := kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl

.PHONY: help build image e2e run generate man vmlinux runtime-base check-runtime-base check-generated lint test test-unit test-host vmtest bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build bin/ghostwatch and a static bin/ghostwatch-arm64 (no clang needed: gen/ is committed)
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/ghostwatch
	CGO_ENABLED=0 GOARCH=arm64 $(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)-arm64 ./cmd/ghostwatch

image: ## bin/ghostwatch-image.tar: static binaries in an OCI image, no registry or daemon (ctr image import: ghostwatch:latest)
	@for arch in $(IMAGE_ARCHS); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=$(VERSION)" \
			-o bin/linux-$$arch/ghostwatch ./cmd/ghostwatch || exit 1; \
	done
	@$(GO) run ./tools/image -o bin/ghostwatch-image.tar -version $(VERSION) $(foreach a,$(IMAGE_ARCHS),$(a)=bin/linux-$(a)/ghostwatch)

$(KUBE_BIN)/kubelet: e2e/kubebin/go.mod e2e/kubebin/go.sum
	cd e2e/kubebin && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $(abspath $(KUBE_BIN))/ \
		$(foreach c,$(KUBE_CMDS),k8s.io/kubernetes/cmd/$(c))

$(KUBE_BIN)/etcd:
	tools/etcd.sh $@

e2e: image $(KUBE_BIN)/kubelet $(KUBE_BIN)/etcd ## a control plane on loopback (etcd, kube-apiserver, kubelet on a private containerd), the DaemonSet, kubectl ghostwatch (as root)
	tools/setup.sh
	GHOSTWATCH_E2E_BIN=$(abspath $(KUBE_BIN)) GHOSTWATCH_E2E_IMAGE=$(abspath bin/ghostwatch-image.tar) \
		$(GO) test -tags e2e -count=1 -v -timeout 20m ./e2e/

run: build ## build, then run ghostwatch $(ARGS) as root (default: the agent, its record in ./data)
	@if [ "$$(id -u)" -eq 0 ]; then ./$(BIN) $(ARGS); else sudo ./$(BIN) $(ARGS); fi

generate: ## regenerate the bpf2go bindings in gen/ from bpf/ (needs clang, llvm-strip, libbpf-dev)
	tools/setup.sh
	$(GO) generate ./gen/...
	$(GO) run ./tools/readme
	$(MAKE) man

man: ## docs/man: a man page per command, written from the command line's definition
	rm -f docs/man/*.1
	$(GO) run ./cmd/ghostwatch man docs/man

vmlinux: ## regenerate gen/vmlinux_x86.h and gen/vmlinux_arm64.h from the pinned Debian kernels (see tools/vmlinux-h.sh)
	tools/setup.sh
	tools/vmlinux-h.sh amd64
	tools/vmlinux-h.sh arm64

runtime-base: ## learn what runc and crun do between installing a seccomp filter and exec; merge into gen/runtimebase (as root)
	tools/setup.sh
	$(GO) run ./tools/runtimebase

check-runtime-base: ## fail if runc or crun do, in 20 runs per mode, what gen/runtimebase lacks (as root)
	$(GO) run ./tools/runtimebase -check -runs 20

check-generated: generate ## fail if gen/, the gadget docs (README.md, docs/) or the man pages differ from what `make generate` writes
	@git diff --exit-code --stat -- gen README.md docs || { echo "gen/, README.md or docs/ is stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- gen docs/man)" || { git status --porcelain -- gen docs/man; echo "gen/ or docs/man has files not committed" >&2; exit 1; }

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$out" || { echo "gofmt: $$out" >&2; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/
	$(GO) tool staticcheck ./...

test-unit: ## tests that need no privileges
	$(GO) test ./...

test-host: ## unit, privileged and container tests on this machine's kernel (run as root)
	tools/setup.sh
	$(GO) test -race -count=1 -p 1 ./...

vmtest: ## the privileged suite in VMs on Debian's kernels (KERNELS="5.10 6.1 6.12" ARCH="amd64 arm64": rows of vmtest.Matrix)
	tools/setup.sh
	$(GO) run ./vmtest/cmd/vmtest

bench: ## costs beside floors and peers in one run (as root): seccomp recording, trace caps, trace devices, netns holders, trace netns, trace oom, trace setns, trace signals, trace cni, trace netlink, streaming, the agent, history
	tools/setup.sh
	$(GO) test -run '^$$' -bench . -benchtime 1x ./tools/bench

test: ## the full suite: set-up, lint, host tests, then vmtest (run as root)
	tools/setup.sh
	$(MAKE) lint
	$(MAKE) test-host
	$(MAKE) check-runtime-base
	$(MAKE) vmtest
	$(MAKE) e2e
