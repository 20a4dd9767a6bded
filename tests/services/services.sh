# services.sh -- start, wait for and stop the real services dshell's tests use, without systemd.
#
# Sourceable bash library (safe under `set -euo pipefail`). Adapted from the measured reference
# library; tested on Debian 12 (bookworm) as root. Usage (tests/run-all.sh does this):
#
#   export SVC=/tmp/dshell-svc            # configs, data, logs and pid files live here
#   source tests/services/services.sh
#   trap svc_stop_all EXIT
#   svc_install_apt                       # apt-get update + install (~15 s on a fresh machine)
#   sshd_start; slurm_start 3; zk_start; zk_ensemble_start
#
# Every start function blocks until the service answers, or returns 1 after a timeout and prints
# the tail of the service's log. Every process is stopped by its own pid file (never by name).

: "${SVC:=/tmp/dshell-svc}"
mkdir -p "$SVC"

# Everything the tests need from Debian, in one place.
SVC_APT_PACKAGES="zookeeper openssh-server openssh-client slurm-wlm munge iproute2 zsh fish"

svc_install_apt() {  # idempotent; needs root
  apt-get update -qq
  # shellcheck disable=SC2086  # the list is meant to split
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $SVC_APT_PACKAGES >/dev/null
}

# ---------- generic helpers ----------
wait_until() {   # wait_until TIMEOUT_S DESCRIPTION CMD [ARGS...]   (CMD may be a shell function)
  local t=$1 what=$2; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then echo "TIMEOUT after ${t}s waiting for $what" >&2; return 1; fi
    sleep 0.2
  done
}
pid_alive() {    # true if PID exists and is not a zombie
  local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}
stop_pidfile() { # stop_pidfile FILE [GRACE_S]: SIGTERM, wait, then SIGKILL
  local f=$1 g=${2:-10} p i
  [ -s "$f" ] || return 0
  p=$(cat "$f"); rm -f "$f"
  pid_alive "$p" || return 0
  kill "$p" 2>/dev/null || true
  for ((i = 0; i < g * 5; i++)); do pid_alive "$p" || return 0; sleep 0.2; done
  kill -9 "$p" 2>/dev/null || true; return 0
}
log_tail() {     # log_tail FILE... : the end of each log, to stderr (for failed starts)
  local f
  for f in "$@"; do [ -e "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done; return 0
}
tcp_send() {     # tcp_send HOST PORT STRING  -> prints reply (bash /dev/tcp; no nc needed)
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2; printf '%s' '$3' >&3; cat <&3" 2>/dev/null
}
ssh_banner() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2; head -c 4 <&3" 2>/dev/null | grep -q '^SSH-'; }

# ---------- ZooKeeper (Debian 'zookeeper' 3.8, OpenJDK 17) ----------
ZK_CP="/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
zk_serving() { tcp_send 127.0.0.1 "$1" srvr | grep -qE '^Mode: (standalone|leader|follower)'; }
_zk_launch() {   # _zk_launch DIR  (DIR holds zoo.cfg; restarts a killed member too)
  cp /etc/zookeeper/conf/log4j.properties "$1/"
  nohup java -Xmx256m -XX:+UseSerialGC -cp "$1:$ZK_CP" \
    -Dzookeeper.log.dir="$1" -Dzookeeper.root.logger=INFO,CONSOLE \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$1/zoo.cfg" > "$1/zk.log" 2>&1 < /dev/null &
  echo $! > "$1/zk.pid"
}
_zk_conf() {     # _zk_conf DATADIR CLIENTPORT TICK
  cat <<EOF
tickTime=$3
initLimit=10
syncLimit=5
dataDir=$1
clientPort=$2
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr
EOF
}
zk_start() {     # standalone server on 127.0.0.1:${ZK_PORT:-2181}; ~0.7 s
  local d=$SVC/zk port=${ZK_PORT:-2181}
  rm -rf "$d"; mkdir -p "$d/data"
  _zk_conf "$d/data" "$port" 2000 > "$d/zoo.cfg"
  _zk_launch "$d"
  wait_until 30 "zookeeper 127.0.0.1:$port" zk_serving "$port" || { log_tail "$d/zk.log"; return 1; }
}
zk_stop() { stop_pidfile "$SVC/zk/zk.pid"; }

zk_ensemble_start() {  # 3 members: clients 2281-2283, quorum 2888-2890, election 3888-3890; ~2.5 s
  local n d
  for n in 1 2 3; do
    d=$SVC/zk-ens/$n; rm -rf "$d"; mkdir -p "$d/data"; echo "$n" > "$d/data/myid"
    { _zk_conf "$d/data" "228$n" 500
      echo "server.1=127.0.0.1:2888:3888"
      echo "server.2=127.0.0.1:2889:3889"
      echo "server.3=127.0.0.1:2890:3890"; } > "$d/zoo.cfg"
    _zk_launch "$d"
  done
  for n in 1 2 3; do
    wait_until 60 "zk member $n" zk_serving "228$n" || { log_tail "$SVC"/zk-ens/*/zk.log; return 1; }
  done
}
zk_ensemble_stop() { local n; for n in 1 2 3; do stop_pidfile "$SVC/zk-ens/$n/zk.pid"; done; }
# kill one member in a test:  kill -9 "$(cat $SVC/zk-ens/2/zk.pid)"; restart it: _zk_launch $SVC/zk-ens/2

# ---------- OpenSSH server on loopback (root, key auth) ----------
_sshd_config() {  # _sshd_config PORT LISTEN HOSTKEY PIDFILE
  cat <<EOF
Port $1
ListenAddress $2
HostKey $3
PidFile $4
AuthorizedKeysFile $SVC/ssh/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
AcceptEnv LANG LC_* DSH_*
MaxStartups 100:30:200
MaxSessions 50
LogLevel VERBOSE
EOF
}
sshd_start() {   # 127.0.0.1:${SSH_PORT:-2222}; client key $SVC/ssh/id_ed25519, known_hosts $SVC/ssh/known_hosts
  local d=$SVC/ssh port=${SSH_PORT:-2222}
  mkdir -p "$d" /run/sshd; chmod 755 /run/sshd          # /run/sshd is compiled in (privsep dir)
  [ -f "$d/hostkey" ]    || ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey" -C dsh-host
  [ -f "$d/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/id_ed25519" -C dsh-client
  cp "$d/id_ed25519.pub" "$d/authorized_keys"
  _sshd_config "$port" 127.0.0.1 "$d/hostkey" "$d/sshd.pidfile" > "$d/sshd_config"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/hostkey.pub")" > "$d/known_hosts"
  /usr/sbin/sshd -t -f "$d/sshd_config" || return 1
  /usr/sbin/sshd -D -e -f "$d/sshd_config" > "$d/sshd.log" 2>&1 < /dev/null &
  echo $! > "$d/sshd.pid"
  wait_until 10 "sshd 127.0.0.1:$port" ssh_banner 127.0.0.1 "$port" || { log_tail "$d/sshd.log"; return 1; }
}
sshd_stop() { stop_pidfile "$SVC/ssh/sshd.pid"; }

# ---------- Slurm 22.05 (slurmctld + N slurmd on one host) + munge ----------
slurm_ctld_up()  { scontrol ping 2>/dev/null | grep -q 'is UP'; }
slurm_nodes_idle() { [ "$(sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | wc -l)" -ge "$1" ]; }
munge_ok() { munge -n < /dev/null 2>/dev/null | unmunge > /dev/null 2>&1; }
_slurm_conf() {  # _slurm_conf DIR NODES  -> slurm.conf on stdout
  local d=$1 nn=$2 i
  # No AuthAltTypes=auth/jwt: it needs slurm-wlm-jwt-plugin (slurmctld refuses to start without it).
  cat <<EOF
ClusterName=dsh
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
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
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/none
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
SlurmctldTimeout=10
SlurmdTimeout=10
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
MaxArraySize=1001
MaxJobCount=20000
MailProg=/bin/true
SlurmctldDebug=info
SlurmdDebug=info
EOF
  for ((i = 1; i <= nn; i++)); do
    echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((6830 + i)) CPUs=2 RealMemory=2000 Feature=rack$(( (i + 1) / 2 )) State=UNKNOWN"
  done
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
}
slurm_start() {  # slurm_start [NODES=3]  -> nodes n1..nN (CPUs=2, 2000 MB each), partition 'debug'
  local nn=${1:-3} d=$SVC/slurm i
  export SLURM_CONF=$d/slurm.conf          # every slurm client (sbatch, squeue, ...) needs this
  rm -rf "$d"; mkdir -p "$d/state" "$d/spool" "$d/log"
  # munge: the package's postinst creates the key; create it if absent
  [ -s /etc/munge/munge.key ] || { mungekey -c -k /etc/munge/munge.key && chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key; }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge; chmod 755 /run/munge
  if ! munge_ok; then
    runuser -u munge -- /usr/sbin/munged || return 1     # forks; pid in /run/munge/munged.pid
    wait_until 10 munged munge_ok || { log_tail /var/log/munge/munged.log; return 1; }
    cp /run/munge/munged.pid "$d/munged.pid"             # ours: slurm_stop stops it
  fi
  _slurm_conf "$d" "$nn" > "$SLURM_CONF"
  /usr/sbin/slurmctld -f "$SLURM_CONF" || { log_tail "$d/log/slurmctld.log"; return 1; }  # daemonizes
  wait_until 30 slurmctld slurm_ctld_up || { log_tail "$d/log/slurmctld.log"; return 1; }
  for ((i = 1; i <= nn; i++)); do
    /usr/sbin/slurmd -f "$SLURM_CONF" -N "n$i" || { log_tail "$d/log/slurmd-n$i.log"; return 1; }
  done
  wait_until 60 "$nn slurm nodes idle" slurm_nodes_idle "$nn" \
    || { sinfo -N >&2; log_tail "$d/log/slurmctld.log" "$d"/log/slurmd-n*.log; return 1; }
}
_kill_tree() {   # SIGKILL a PID and all its descendants (children first)
  local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do _kill_tree "$c"; done
  kill -9 "$1" 2>/dev/null; return 0
}
slurm_stop() { ( set +e; _slurm_stop ); return 0; }  # best effort, never fails the caller
_slurm_stop() {
  local d=$SVC/slurm f p
  [ -e "$d/slurm.conf" ] || return 0
  export SLURM_CONF=$d/slurm.conf
  # 1. cancel every job: stopping slurmd does NOT end running jobs (slurmstepd survives it)
  if slurm_ctld_up; then
    squeue -h -o %A 2>/dev/null | xargs -r scancel 2>/dev/null || true
    wait_until 5 "jobs to finish" bash -c '[ -z "$(squeue -h -t R,CG 2>/dev/null)" ]' 2>/dev/null || true
  fi
  for f in "$d"/slurmd-n*.pid; do if [ -e "$f" ]; then stop_pidfile "$f" 15; fi; done  # slurmd first
  stop_pidfile "$d/slurmctld.pid" 15
  # 2. stray slurmstepd of OUR cluster: identified by SLURM_CONF in their environment
  for p in $(ps -eo pid=,comm= | awk '$2 == "slurmstepd" {print $1}'); do
    if { tr '\0' '\n' < "/proc/$p/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$d/slurm.conf"; then
      _kill_tree "$p"
    fi
  done
  stop_pidfile "$d/munged.pid" 5                        # only if slurm_start started it
  return 0
}

svc_stop_all() {   # safe under set -euo pipefail and with nothing running; runs in a subshell
  ( set +e; slurm_stop; sshd_stop; zk_ensemble_stop; zk_stop )
  return 0
}
