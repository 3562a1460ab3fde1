#!/bin/sh
# Open MPI's remote launcher (plm_rsh_agent) for hosts that are network
# namespaces of this machine: `netns-agent.sh HOST COMMAND...` runs COMMAND in
# namespace HOST, through a shell as ssh would.
host="$1"
shift
exec ip netns exec "$host" sh -c "$*"
