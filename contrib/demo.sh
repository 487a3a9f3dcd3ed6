#!/usr/bin/env bash
# The README's first command: installs what the lab needs when it is missing
# (iproute2, nftables; protobuf-compiler, which the build of the etcd client
# needs), builds the release binary and plays `splitguard lab
# demo` in network namespaces on this machine (TEST-NET-1 addresses only; the
# lab is deleted when the demo ends, also on Ctrl-C). Arguments go to the demo
# (`--quick` stops after the firewalled-VRRP step).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "splitguard lab demo needs root: it creates network namespaces (sudo bash contrib/demo.sh)" >&2
    exit 1
fi
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
cargo build --release --locked --quiet
exec target/release/splitguard lab demo "$@"
