#!/usr/bin/env bash
# Steady-state CPU and RSS of a pair with N VRRPv3 instances (one IPv4 VIP each,
# arbiter on with gw as reference for splitguard), as the lab builds it: lb01
# (192.0.2.5, priority 150), lb02 (.6, priority 100) and gw (.254) in throw-away
# network namespaces on one bridge. Addresses come from TEST-NET-1 only (so N is
# at most 251); nothing is put in the root namespace; the namespaces and the
# daemons go on exit, also on failure or Ctrl-C.
#
# The bench's own form is `splitguard lab bench --scale` (or --instances N,...):
# both implementations alternating, runs with medians, v3/100 ms and v2/1 s,
# start-to-steady and mass-failover times (README, "Benchmark"). This script
# stays for comparing any splitguard binary, also one built before that section.
#
#   contrib/bench/scale.sh IMPL N [WINDOW_S] [INTERVAL]
#     IMPL      a splitguard binary (target/release/splitguard), or "keepalived"
#     N         instances, 1..251
#     WINDOW_S  CPU sampling window after the pair settled (default 15)
#     INTERVAL  advert interval for splitguard (default 100ms; keepalived: 0.1)
#
# Prints one line: CPU of each node's daemon over the window (utime+stime from
# /proc, % of one core), RSS, VIPs held, and the state changes each logged (a
# backup that claimed at start-up logs more than N). Needs root.
set -euo pipefail
IMPL=${1:?usage: scale.sh IMPL N [WINDOW_S] [INTERVAL]}
N=${2:?usage: scale.sh IMPL N [WINDOW_S] [INTERVAL]}
WIN=${3:-15}
IV=${4:-100ms}
SETTLE=${SETTLE:-12}
((N >= 1 && N <= 251)) || { echo "N must be 1..251 (TEST-NET-1 less the hosts)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "needs root (network namespaces)" >&2; exit 1; }

ID=sgscale$$
D=$(mktemp -d /tmp/sg-scale.XXXXXX)
cleanup() {
  for n in lb01 lb02 gw; do ip netns pids "$ID-$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; done
  sleep 0.3
  for n in lb01 lb02 gw br; do ip netns del "$ID-$n" 2>/dev/null || true; done
}
trap cleanup EXIT

ip netns add "$ID-br"
ip -n "$ID-br" link set lo up
ip -n "$ID-br" link add br0 type bridge
ip -n "$ID-br" link set br0 type bridge forward_delay 0
ip -n "$ID-br" link set br0 up
for h in lb01:5 lb02:6 gw:254; do
  n=${h%%:*} a=${h##*:}
  ip netns add "$ID-$n"
  ip -n "$ID-$n" link set lo up
  ip -n "$ID-br" link add "p-$n" type veth peer name eth0 netns "$ID-$n"
  ip -n "$ID-br" link set "p-$n" master br0
  ip -n "$ID-br" link set "p-$n" up
  ip -n "$ID-$n" addr add "192.0.2.$a/24" dev eth0
  ip -n "$ID-$n" link set eth0 up
done

# VIP k (1-based): TEST-NET-1 but .0, .255 and the hosts' .5, .6, .254.
POOL=()
for x in $(seq 1 253); do [[ $x == 5 || $x == 6 ]] || POOL+=("192.0.2.$x"); done

sg_config() { # node priority peer
  local f=$D/$1.toml
  printf 'node = "%s"\nstate_dir = "%s/%s-state"\ncontrol_socket = "%s/%s.sock"\n\n[arbiter]\nreferences = ["192.0.2.254"]\npeers = ["%s"]\n' \
    "$1" "$D" "$1" "$D" "$1" "$3" >"$f"
  for k in $(seq 1 "$N"); do
    printf '\n[[instance]]\nname = "VI_%d"\ninterface = "eth0"\nvrid = %d\npriority = %d\nadvert_interval = "%s"\nversion = 3\nvips = ["%s/24"]\n' \
      "$k" "$k" "$2" "$IV" "${POOL[$((k - 1))]}" >>"$f"
  done
  chmod 600 "$f"
}
ka_config() { # node priority
  local f=$D/$1.conf ka_iv
  ka_iv=$([[ $IV == 100ms ]] && echo 0.1 || echo "${IV%s}")
  printf 'global_defs {\n  router_id %s\n  vrrp_version 3\n}\n' "$1" >"$f"
  for k in $(seq 1 "$N"); do
    printf 'vrrp_instance VI_%d {\n  state BACKUP\n  interface eth0\n  virtual_router_id %d\n  priority %d\n  advert_int %s\n  virtual_ipaddress {\n    %s/24 dev eth0\n  }\n}\n' \
      "$k" "$k" "$2" "$ka_iv" "${POOL[$((k - 1))]}" >>"$f"
  done
}
start() { # node
  if [[ $IMPL == keepalived ]]; then
    ip netns exec "$ID-$1" keepalived --dont-fork --log-console --vrrp -f "$D/$1.conf" \
      -p "$D/$1.pid" -r "$D/$1.vpid" >"$D/$1.log" 2>&1 &
    disown
  else
    ip netns exec "$ID-$1" "$IMPL" run -c "$D/$1.toml" >"$D/$1.log" 2>&1 &
    disown
  fi
}
daemon_pid() { # node: keepalived's VRRP child, or splitguard
  if [[ $IMPL == keepalived ]]; then cat "$D/$1.vpid"; else ip netns pids "$ID-$1" | head -1; fi
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

if [[ $IMPL == keepalived ]]; then ka_config lb01 150; ka_config lb02 100
else sg_config lb01 150 192.0.2.6; sg_config lb02 100 192.0.2.5; fi
start lb01
start lb02
sleep "$SETTLE"
P1=$(daemon_pid lb01) P2=$(daemon_pid lb02)
a1=$(ticks "$P1") a2=$(ticks "$P2")
sleep "$WIN"
b1=$(ticks "$P1") b2=$(ticks "$P2")
hz=$(getconf CLK_TCK)
pct() { awk -v a="$1" -v b="$2" -v hz="$hz" -v w="$WIN" 'BEGIN { print (b - a) * 100 / hz / w }'; }
held() { ip -n "$ID-$1" -4 -o addr show dev eth0 | grep -c ' inet ' | awk '{print $1 - 1}'; }
changes() { grep -c 'state changed\|Entering MASTER\|Entering BACKUP' "$D/$1.log" || true; }
printf '%s N=%d interval=%s: CPU lb01 %.2f %% lb02 %.2f %%; RSS lb01 %d KiB lb02 %d KiB; VIPs held lb01 %d lb02 %d; state changes logged lb01 %d lb02 %d\n' \
  "$(basename "$IMPL")" "$N" "$IV" \
  "$(pct "$a1" "$b1")" "$(pct "$a2" "$b2")" \
  "$(awk '/VmRSS/{print $2}' "/proc/$P1/status")" "$(awk '/VmRSS/{print $2}' "/proc/$P2/status")" \
  "$(held lb01)" "$(held lb02)" "$(changes lb01)" "$(changes lb02)"
rm -rf "$D"
