#!/usr/bin/env bash
# Writes etcd to $1, from Debian's etcd-server package without installing it (installing starts a
# service): apt-get download + dpkg-deb -x.
set -euo pipefail
out=$(realpath -m "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# apt may have no package lists yet on a fresh machine.
apt-get download -q etcd-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download -q etcd-server >/dev/null; }
dpkg-deb -x etcd-server_*.deb root
install -D -m 0755 root/usr/bin/etcd "$out"
