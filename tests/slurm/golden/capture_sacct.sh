#!/usr/bin/env bash
# Capture the golden input of the sacct parser tests from the real Debian Slurm 22.05 tools:
# a private cluster WITH accounting (MariaDB + slurmdbd + slurmctld + 2 slurmd), one job per
# scenario, then `sacct --json` and `scontrol show config` into this directory.
#
# The test suite itself runs without accounting (no slurmdbd: tests/services/services.sh); this
# script is only for refreshing sacct-22.05.json. Needs root and, besides slurm-wlm and munge,
#   apt-get install --no-install-recommends slurmdbd mariadb-server
# Everything runs on other ports than the test cluster (ctld 6917, dbd 6919, slurmd 6931-6932,
# MariaDB 127.0.0.1:3307) and is stopped by its pid file at the end. Takes ~20 s.
#
#   bash tests/slurm/golden/capture_sacct.sh
#   DSHELL_UPDATE_GOLDEN=1 python -m pytest tests/slurm/test_parse_acct.py
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SVC=$(mktemp -d /tmp/dsa.XXXXXX)
export SVC
# shellcheck source=../../services/services.sh
source "$HERE/../../services/services.sh"
d=$SVC/acct
mkdir -p "$d/db" "$d/state" "$d/spool" "$d/log" "$d/work"
export SLURM_CONF=$d/slurm.conf

stop_all() {
  set +e
  if [ -e "$d/slurmctld.pid" ]; then
    squeue -h -o %A 2>/dev/null | xargs -r scancel 2>/dev/null
    sleep 1
  fi
  for f in "$d"/slurmd-a*.pid; do [ -e "$f" ] && stop_pidfile "$f" 15; done
  stop_pidfile "$d/slurmctld.pid" 15
  stop_pidfile "$d/slurmdbd.pid" 15
  stop_pidfile "$d/mariadb.pid" 30
  [ -e "$d/munged.pid" ] && stop_pidfile "$d/munged.pid" 5
  rm -rf "$SVC"
}
trap stop_all EXIT

# ---- MariaDB on 127.0.0.1:3307 (own data dir, own socket) ----
chmod 755 "$SVC" "$d"; chown mysql:mysql "$d/db"  # mktemp -d is 0700: mysql must get in
mariadb-install-db --user=mysql --datadir="$d/db" --skip-test-db >"$d/log/install-db.log" 2>&1 \
  || { log_tail "$d/log/install-db.log"; exit 1; }
runuser -u mysql -- /usr/sbin/mariadbd --no-defaults --datadir="$d/db" --socket="$d/db/sock" \
  --port=3307 --bind-address=127.0.0.1 --pid-file="$d/db/mariadb.pid" \
  --innodb-buffer-pool-size=64M --log-error="$d/log/mariadb.log" </dev/null >/dev/null 2>&1 &
echo $! >"$d/mariadb.pid"
wait_until 60 mariadb mariadb --no-defaults -S "$d/db/sock" -u root -e 'select 1' \
  || { log_tail "$d/log/mariadb.log"; exit 1; }
mariadb --no-defaults -S "$d/db/sock" -u root -e "
  CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'dshell';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

# ---- munge (shared with the test cluster when it runs) ----
if ! munge_ok; then
  mkdir -p /run/munge; chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged
  wait_until 10 munged munge_ok
  cp /run/munge/munged.pid "$d/munged.pid"
fi

# ---- slurmdbd on 6919 ----
cat >"$d/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6919
SlurmUser=root
LogFile=$d/log/slurmdbd.log
PidFile=$d/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=dshell
StorageLoc=slurm_acct_db
EOF
chmod 600 "$d/slurmdbd.conf"

# ---- slurm.conf: cluster "acct" with accounting ----
cat >"$SLURM_CONF" <<EOF
ClusterName=acct
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6917
AuthType=auth/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd-%n.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6919
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
DependencyParameters=kill_invalid_depend
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
MailProg=/bin/true
NodeName=a1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=6931 CPUs=2 RealMemory=2000 Feature=rack1 State=UNKNOWN
NodeName=a2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=6932 CPUs=2 RealMemory=2000 Feature=rack2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
/usr/sbin/slurmdbd || { log_tail "$d/log/slurmdbd.log"; exit 1; }
wait_until 30 slurmdbd sacctmgr -i list cluster || { log_tail "$d/log/slurmdbd.log"; exit 1; }
sacctmgr -i add cluster acct >/dev/null
sacctmgr -i add account research Cluster=acct >/dev/null
sacctmgr -i add user root Account=research >/dev/null
/usr/sbin/slurmctld -f "$SLURM_CONF" || { log_tail "$d/log/slurmctld.log"; exit 1; }
wait_until 30 slurmctld slurm_ctld_up || { log_tail "$d/log/slurmctld.log"; exit 1; }
/usr/sbin/slurmd -f "$SLURM_CONF" -N a1
/usr/sbin/slurmd -f "$SLURM_CONF" -N a2
wait_until 60 "2 nodes idle" slurm_nodes_idle 2 || { sinfo -N >&2; exit 1; }

# ---- one job per scenario ----
cd "$d/work"
sb() { sbatch --parsable "$@" | cut -d';' -f1; }
sb -J completed --wrap 'echo hello' >/dev/null
failed=$(sb -J failed --wrap 'echo oops >&2; exit 3')
sb -J signalled --wrap 'kill -9 $$' >/dev/null
held=$(sb -J held --hold --wrap true)
never=$(sb -J never --dependency="afterok:$failed" --wrap true)
cancelled=$(sb -J cancelled --wrap 'sleep 600')
sb -J array --array=0-2 -o "$d/work/arr-%A_%a.out" --wrap 'echo $SLURM_ARRAY_TASK_ID' >/dev/null
sb -J labelled --account=research --constraint=rack2 --cpus-per-task=2 --mem=128M \
  -o "$d/work/dshell-%j.out" -e "$d/work/dshell-%j.err" \
  '--comment=dshell-labels={"app":"web","tier":"1"}' --wrap 'echo labelled' >/dev/null
running=$(sb -J running --wrap 'sleep 600')
wait_until 30 "cancelled job to run" bash -c "squeue -h -j $cancelled -o %T | grep -q RUNNING"
scancel "$cancelled"
wait_until 30 "running job to run" bash -c "squeue -h -j $running -o %T | grep -q RUNNING"
wait_until 60 "finished jobs in sacct" bash -c \
  "[ \$(sacct -n -X -a -o State | grep -cE 'COMPLETED|FAILED|CANCELLED') -ge 8 ]" \
  || { sacct -a -X -o JobID,JobName,State; squeue; log_tail "$d/log/slurmdbd.log"; exit 1; }
sleep 2  # the dbd agent flushes job completions to the database
sacct --json -a >"$HERE/sacct-22.05.json"
sacct --json -a -j "$held,$never" >"$HERE/sacct-22.05-by-id.json"  # never eligible: by id only
# the same jobs as sacct's text shows them (22.05's JSON loses non-zero exit codes: see the tests)
sacct -a -X --noheader --parsable2 --format=JobID,ExitCode >"$HERE/sacct-22.05.txt"
squeue --json >"$HERE/squeue-22.05-acct.json"  # what squeue still shows of the same jobs
scontrol show config >"$HERE/scontrol-config-acct-22.05.txt"
# a command to try against this cluster before it stops (SLURM_CONF is exported), e.g. the
# backend's accounting path by hand: DSHELL_ACCT_HOOK='python3 try.py' bash capture_sacct.sh
if [ -n "${DSHELL_ACCT_HOOK:-}" ]; then bash -c "$DSHELL_ACCT_HOOK"; fi
echo "captured sacct-22.05.json, sacct-22.05-by-id.json, sacct-22.05.txt, squeue-22.05-acct.json and scontrol-config-acct-22.05.txt into $HERE" >&2
