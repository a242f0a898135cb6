#!/usr/bin/env bash
# Stop what scripts/cluster/start.sh started (sshd, slurmctld, slurmd; munged is left to the system). The user, its
# pacemaker environment and .cluster/ stay, so a later start.sh is quick; remove them by hand if you wish.
set -uo pipefail
cd "$(dirname "$0")/../.."
STATE=${CLUSTER_STATE:-$PWD/.cluster}
for pidfile in "$STATE/sshd.pid" "$STATE/slurm/slurmctld.pid" "$STATE/slurm/slurmd.pid"; do
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill "$(cat "$pidfile")" && echo "stopped $(basename "$pidfile" .pid)"
  fi
done
