#!/usr/bin/env bash
# The whole test suite: installs the Debian packages the tests drive (when missing),
# then runs every workspace test. Run as root on Debian: the lab tests build network
# namespaces and fail loudly, never skip, when they cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests use; see DESIGN.md "Tests and real peers".
packages=(iproute2 iputils-ping nftables keepalived tcpdump tshark arping python3 python3-venv python3-aiosmtpd prometheus-alertmanager dovecot-imapd zabbix-agent systemd prometheus python3-yaml openssl curl util-linux ndisc6 etcd-server etcd-client protobuf-compiler fence-agents ipmitool openipmi groff-base lintian dpkg-dev man-db chromium)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "contrib/test.sh: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PyPI's twilio signs inbound webhooks the way Twilio does (tests/reply_lab.rs).
if [ ! -x target/pyvenv/bin/python ] || ! target/pyvenv/bin/python -c 'import twilio' 2>/dev/null; then
  python3 -m venv target/pyvenv
  target/pyvenv/bin/pip install --quiet --disable-pip-version-check 'twilio==9.13.0'
fi

# PyPI's sushy-tools emulates a Redfish BMC (lab/src/bmc.rs, tests/fence_agents.rs);
# its auth file takes bcrypt hashes, made with the bcrypt it depends on.
if [ ! -x target/sushy-venv/bin/sushy-emulator ] || ! target/sushy-venv/bin/python -c 'import bcrypt, sushy_tools' 2>/dev/null; then
  python3 -m venv target/sushy-venv
  target/sushy-venv/bin/pip install --quiet --disable-pip-version-check 'sushy-tools==2.2.0' bcrypt
fi

# The Debian package (release build, no lab) that tests/deb_package.rs inspects,
# lints and installs; the script installs cargo-deb when missing.
bash contrib/deb/build.sh >/dev/null

# cargo-nextest runs each test in its own process, across all test binaries at
# once (.config/nextest.toml): the lab tests mostly wait on VRRP timers, so the
# suite takes about half the time `cargo test` takes running binaries in turn.
# There are no doctests for it to miss.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
cargo nextest run --workspace --locked
