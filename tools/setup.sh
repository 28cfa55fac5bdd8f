#!/usr/bin/env bash
# Installs the Debian packages ghostwatch's generation and tests need, if any are missing.
# Idempotent: on a machine that has them all it only checks. Needs root for apt-get.
set -euo pipefail

packages=(
	clang llvm libbpf-dev bpftool # make generate: bpf2go compiles bpf/*.bpf.c and strips DWARF
	linux-libc-dev                # make generate: syscall names (gen/syscalls)
	linux-libc-dev-arm64-cross linux-libc-dev-armhf-cross # make generate: arm64 and arm syscall names
	util-linux                    # tests: unshare, nsenter
	containerd runc busybox-static # container tests: a private containerd, a locally built busybox image
	containernetworking-plugins   # CRI tests, make e2e, trace cni: the pods' network (loopback, ptp, host-local, bridge)
	xz-utils zstd                 # tools/vmlinux-h.sh unpacks kernels
	qemu-system-x86 qemu-system-arm # vmtest boots Debian's amd64 and arm64 kernels under TCG
	bpftrace strace               # make bench: the peers
	gcc libc6-dev                 # go test -race needs cgo
	crun uidmap libcap2-bin       # tests: the second runtime; user namespaces mapped from /etc/subuid; setcap
	prometheus                    # tests: a real server scrapes the agent; promtool checks its metrics
	bash zsh fish groff-base      # tests: the completion scripts in each shell; the man pages render
	chromium-headless-shell       # tests: the HTML report opened in a real browser
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "setup: missing packages (${missing[*]}) and not root: install them or run as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
