#!/usr/bin/env bash
# Stop exactly the daemons that tests/cluster/start_slurm.sh started (PIDs in STATE_DIR/pids).
set -uo pipefail
STATE="${1:-/tmp/voxflow-slurm}"
[ -f "$STATE/pids" ] || exit 0
pids="$(cat "$STATE/pids")"
for pid in $pids; do kill "$pid" 2>/dev/null; done
for _ in $(seq 50); do
    alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
    [ -z "$alive" ] && break
    sleep 0.1
done
for pid in $alive; do kill -9 "$pid" 2>/dev/null; done
rm -f "$STATE/pids"
