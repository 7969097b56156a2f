#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine, for tests/test_slurm.py.
# Works as root in a fresh Debian container without systemd or cgroups; safe to run
# again (it installs, writes and starts only what is missing). Usage:
#   bash .ci/slurm_cluster.sh          # install + start, wait until `srun hostname` works
#   bash .ci/slurm_cluster.sh stop     # stop slurmd, slurmctld and munged
# State, spool and logs go to $RRLSRN_SLURM_DIR (default /tmp/rrlsrn-slurm); slurm.conf
# is written there and installed as /etc/slurm/slurm.conf, so every client finds it.
set -euo pipefail

STATE=${RRLSRN_SLURM_DIR:-/tmp/rrlsrn-slurm}
CONF=/etc/slurm/slurm.conf
TIMEOUT=${RRLSRN_SLURM_TIMEOUT:-90}

die() {
    echo "slurm_cluster.sh: error: $*" >&2
    for log in "$STATE/slurmctld.log" "$STATE/slurmd.log"; do
        [[ -f $log ]] && { echo "--- tail of $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}
log() { echo "slurm_cluster.sh: $*"; }

if [[ ${1:-} == stop ]]; then
    for daemon in slurmd slurmctld munged; do
        pid=$(pgrep -x "$daemon" || true)
        [[ -n $pid ]] && { log "stopping $daemon ($pid)"; kill $pid; }
        for _ in $(seq 30); do pgrep -x "$daemon" >/dev/null || break; sleep 0.5; done
    done
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"

# (a) packages
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null \
    || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v pgrep >/dev/null; then
    log "installing slurmctld slurmd slurm-client munge procps"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge procps \
        >/dev/null || die "apt-get install failed"
fi

# (b) munge
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "writing /etc/munge/munge.key"
    head -c 1024 /dev/urandom >/etc/munge/munge.key
fi
chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
chmod 755 /run/munge
if ! pgrep -x munged >/dev/null; then
    log "starting munged"
    rm -f /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged || /usr/sbin/munged --force \
        || die "munged did not start"
fi
for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
munge -n | unmunge >/dev/null || die "munge round trip failed"

# (c) slurm.conf
host=$(hostname -s)
cpus=$(nproc)
mem_total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
headroom=$((mem_total / 10 > 512 ? mem_total / 10 : 512))
real_mem=$((mem_total - headroom))
mkdir -p "$STATE/state" "$STATE/spool" /etc/slurm
cat >"$STATE/slurm.conf.new" <<EOF
# Written by .ci/slurm_cluster.sh: a single-node test cluster.
ClusterName=rrlsrn
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue/scontrol this long (snakemake's squeue status
# checks need it: no accounting storage, so sacct has nothing).
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$STATE/slurm.conf.new" "$CONF"; then
    log "writing $CONF ($host: CPUs=$cpus RealMemory=$real_mem)"
    cp "$STATE/slurm.conf.new" "$STATE/slurm.conf"
    cp "$STATE/slurm.conf" "$CONF"
    if pgrep -x slurmctld >/dev/null; then scontrol reconfigure || true; fi
fi
rm -f "$STATE/slurm.conf.new"
export SLURM_CONF=$CONF

# (d) daemons
if ! pgrep -x slurmctld >/dev/null; then
    log "starting slurmctld"
    slurmctld || die "slurmctld did not start"
fi
for _ in $(seq 40); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
scontrol ping | grep -q UP || die "slurmctld does not answer (scontrol ping)"
if ! pgrep -x slurmd >/dev/null; then
    log "starting slurmd"
    slurmd || die "slurmd did not start"
fi

# (e) wait until the node is idle and a job step runs
deadline=$((SECONDS + TIMEOUT))
while :; do
    state=$(sinfo -h -N -n "$host" -o %t 2>/dev/null | head -n 1)
    case $state in
        idle | mix | alloc) break ;;
        drain* | drng | down*) scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    ((SECONDS < deadline)) || die "node $host not idle after ${TIMEOUT}s (sinfo state: '$state')"
    sleep 1
done
out=$(timeout "$TIMEOUT" srun -N1 -n1 -t 1 hostname 2>&1) \
    || die "srun hostname failed: $out"
log "ready: node $host $state, srun hostname -> $out"
sinfo
