#!/usr/bin/env bash
# Runs `mpirun -np 2 ARGS...` with its two ranks on two "hosts": network
# namespaces of this machine joined only by a veth pair (10.77.0.1 and
# 10.77.0.2), Open MPI's daemons and messages over TCP between them, launched
# through scripts/netns-agent.sh in place of ssh. Needs root (ip netns).
# Used by the tests; for real machines, see the README's tensor-parallel section.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
a="fnx$$-a" b="fnx$$-b"
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add "fnx$$-va" type veth peer name "fnx$$-vb"
ip link set "fnx$$-va" netns "$a"
ip link set "fnx$$-vb" netns "$b"
ip -n "$a" addr add 10.77.0.1/24 dev "fnx$$-va"
ip -n "$b" addr add 10.77.0.2/24 dev "fnx$$-vb"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "fnx$$-va" up
ip -n "$b" link set "fnx$$-vb" up
ip netns exec "$a" mpirun --allow-run-as-root --host "$a,$b" -np 2 \
  --mca plm_rsh_agent "$here/netns-agent.sh" --mca rtc ^hwloc \
  --mca oob_tcp_if_include 10.77.0.0/24 --mca btl_tcp_if_include 10.77.0.0/24 --mca btl self,tcp \
  "$@"
