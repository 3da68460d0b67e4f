#!/usr/bin/env bash
# A real single-node SLURM on loopback for the cluster tests (tests/cluster/).
#
#   bash tests/cluster/start_slurm.sh [STATE_DIR]    # default STATE_DIR=/tmp/voxflow-slurm
#   bash tests/cluster/stop_slurm.sh  [STATE_DIR]
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when missing (needs root and apt),
# writes /etc/slurm/slurm.conf (the executor's job step strips SLURM_CONF, so the config must
# be at the default path) and gres.conf with one fake GPU (jobs see CUDA_VISIBLE_DEVICES=0),
# starts munged, slurmctld and slurmd as background daemons and records exactly their PIDs in
# STATE_DIR/pids for stop_slurm.sh. No cgroups (proctrack/linuxproc, task/none) and no
# accounting database: poll jobs with squeue (profiles/slurm), keep finished jobs visible for
# MinJobAge seconds. Prints the partition name ("debug") when the node is idle.
set -euo pipefail
STATE="${1:-/tmp/voxflow-slurm}"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "start_slurm: installing slurmctld slurmd slurm-client munge" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null; }
fi

if [ -f /etc/slurm/slurm.conf ] && ! grep -q "written by voxflow" /etc/slurm/slurm.conf; then
    echo "start_slurm: /etc/slurm/slurm.conf belongs to another SLURM; not touching it" >&2
    exit 3
fi
if [ -f "$STATE/pids" ]; then
    bash "$(dirname "$0")/stop_slurm.sh" "$STATE" || true
fi
mkdir -p "$STATE"/{ctld,spool,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
: >"$STATE/pids"

# munge: a key, then the daemon (as root: --force)
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chmod 400 /etc/munge/munge.key
munged --force --pid-file="$STATE/munged.pid" --socket=/run/munge/munge.socket.2 \
    --log-file="$STATE/log/munged.log"
for _ in $(seq 50); do [ -s "$STATE/munged.pid" ] && break; sleep 0.1; done
cat "$STATE/munged.pid" >>"$STATE/pids"

node="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
cat >/etc/slurm/slurm.conf <<CONF
# written by voxflow tests/cluster/start_slurm.sh
ClusterName=voxflow
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
cat >/etc/slurm/gres.conf <<CONF
AutoDetect=off
NodeName=$node Name=gpu File=/dev/null
CONF

slurmctld -i
slurmd
for _ in $(seq 100); do
    [ -s "$STATE/slurmctld.pid" ] && [ -s "$STATE/slurmd.pid" ] && break
    sleep 0.1
done
cat "$STATE/slurmctld.pid" "$STATE/slurmd.pid" >>"$STATE/pids"

for _ in $(seq 100); do
    if sinfo -h -o "%t" 2>/dev/null | grep -qx "idle"; then
        echo "debug"
        exit 0
    fi
    sleep 0.2
done
echo "start_slurm: the node did not become idle; see $STATE/log" >&2
sinfo >&2 || true
exit 1
