#!/usr/bin/env bash
# A single-node SLURM on this machine for the CI's real-SLURM tests (tests/batch/test_slurm_real.py).
#
#   scripts/ci/slurm-local.sh start DIR   # write DIR/slurm.conf, start munged, slurmctld and slurmd
#   scripts/ci/slurm-local.sh stop DIR    # stop them
#
# Needs Debian's slurm-wlm and munge (the CI installs them) and root (the daemons run as root here).
# After `start`, export SLURM_CONF=DIR/slurm.conf; `sinfo` then shows one idle node.
set -euo pipefail
cmd=${1:?start or stop}
dir=$(realpath -m "${2:?a state folder}")

if [ "$cmd" = stop ]; then
  for pid in "$dir"/slurmd.pid "$dir"/slurmctld.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  exit 0
fi

[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$dir/state" "$dir/spool"
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/{m = int($2 / 1024) - 1024; print (m > 512 ? m : 512)}' /proc/meminfo)
cat > "$dir/slurm.conf" <<CONF
ClusterName=bonesimci
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
ReturnToService=2
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if ! munge -n >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force
fi
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 30); do
  if sinfo -h -o %t 2>/dev/null | grep -q idle; then
    echo "slurm: one idle node ($host, $cpus CPUs, $mem MB); export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "slurm: the node did not become idle" >&2
tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
