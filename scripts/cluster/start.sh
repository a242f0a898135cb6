#!/usr/bin/env bash
# A one-machine "cluster" to run the plugin as on a real one: sshd on 127.0.0.1 (its own port) into a second
# Unix user with its own pacemaker environment (installed with the system Python, in that user's home), and a
# one-node Slurm (Debian's slurm-wlm and munge). Used by the remote tests; run it yourself to try remote
# training on one machine (docs/running_on_a_cluster.md).
#
# Needs root on Debian 12. Idempotent: what is already there and running is kept. It writes:
#   .cluster/            the AiiDA side's key, the sshd config and host key, Slurm's state, logs, and `env`
#   /etc/slurm/slurm.conf, ~/.ssh/config (a `Host mlip-autopipe-cluster` entry) and ~/.ssh/known_hosts
# Variables: CLUSTER_USER (hpcuser), CLUSTER_SSH_PORT (2222), CLUSTER_STATE (.cluster), PYTHON (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
STATE=${CLUSTER_STATE:-$REPO/.cluster}
USER_NAME=${CLUSTER_USER:-hpcuser}
PORT=${CLUSTER_SSH_PORT:-2222}
ALIAS=mlip-autopipe-cluster
CPUS=$(nproc)
start=$(date +%s)
mkdir -p "$STATE"/{slurm/state,slurm/spool,log}
chmod 700 "$STATE"

if [ "$(id -u)" != 0 ]; then echo "scripts/cluster/start.sh needs root (it adds a user, sshd and Slurm)" >&2; exit 1; fi

echo "== packages (openssh-server, slurm-wlm, munge, python3-venv)"
if ! command -v sshd >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null \
   || ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server slurm-wlm munge python3-venv >/dev/null
fi

echo "== user $USER_NAME and its key"
id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME"
usermod -p '*' "$USER_NAME"  # no password, yet not locked ('!'): sshd without PAM refuses locked accounts
HOME_DIR=$(getent passwd "$USER_NAME" | cut -d: -f6)
chmod 700 "$HOME_DIR"
[ -f "$STATE/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C mlip-autopipe-aiida -f "$STATE/id_ed25519"
install -d -o "$USER_NAME" -g "$USER_NAME" -m 700 "$HOME_DIR/.ssh"
# appended, not replaced: the key of another checkout's cluster set-up (e.g. a clean clone's CI run beside this one)
# stays valid while this one starts
touch "$HOME_DIR/.ssh/authorized_keys"
grep -qxF "$(cat "$STATE/id_ed25519.pub")" "$HOME_DIR/.ssh/authorized_keys" \
  || cat "$STATE/id_ed25519.pub" >> "$HOME_DIR/.ssh/authorized_keys"
chown "$USER_NAME:$USER_NAME" "$HOME_DIR/.ssh/authorized_keys"
chmod 600 "$HOME_DIR/.ssh/authorized_keys"

echo "== sshd on 127.0.0.1:$PORT"
[ -f "$STATE/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$STATE/ssh_host_ed25519_key"
cat > "$STATE/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $STATE/ssh_host_ed25519_key
PidFile $STATE/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers $USER_NAME
UsePAM no
Subsystem sftp /usr/lib/openssh/sftp-server
MaxStartups 50:30:100
MaxSessions 50
CONF
mkdir -p /run/sshd
if ! { [ -f "$STATE/sshd.pid" ] && kill -0 "$(cat "$STATE/sshd.pid")" 2>/dev/null; }; then
  pkill -f '^/usr/sbin/sshd -f .*/sshd_config -E ' && sleep 1  # one left by another checkout holds the port
  /usr/sbin/sshd -f "$STATE/sshd_config" -E "$STATE/log/sshd.log"
fi
timeout 30 bash -c "until ssh-keyscan -p $PORT 127.0.0.1 >/dev/null 2>&1; do sleep 0.5; done"

echo "== the AiiDA side's ~/.ssh (Host $ALIAS, known_hosts)"
install -d -m 700 ~/.ssh
touch ~/.ssh/known_hosts ~/.ssh/config
# this checkout's host key and client key replace those of an earlier run (another checkout, say)
ssh-keygen -R "[127.0.0.1]:$PORT" >/dev/null 2>&1 || true
ssh-keyscan -p "$PORT" -t ed25519 127.0.0.1 2>/dev/null >> ~/.ssh/known_hosts
awk -v host="Host $ALIAS" '$0 == host {skip = 1; next} /^Host / {skip = 0} !skip' ~/.ssh/config > ~/.ssh/config.new
printf 'Host %s\n  HostName 127.0.0.1\n  Port %s\n  User %s\n  IdentityFile %s\n  IdentitiesOnly yes\n' \
  "$ALIAS" "$PORT" "$USER_NAME" "$STATE/id_ed25519" >> ~/.ssh/config.new
mv ~/.ssh/config.new ~/.ssh/config
chmod 600 ~/.ssh/config
ssh -o BatchMode=yes "$ALIAS" true

echo "== pacemaker for $USER_NAME (system Python, in $HOME_DIR/pace-env)"
install -d -o "$USER_NAME" -g "$USER_NAME" "$HOME_DIR/aiida_run"
install -o "$USER_NAME" -m 755 scripts/install_pacemaker_env.sh "$HOME_DIR/install_pacemaker_env.sh"
runuser -u "$USER_NAME" -- env -C "$HOME_DIR" PYTHON="${PYTHON:-/usr/bin/python3}" \
  bash "$HOME_DIR/install_pacemaker_env.sh" "$HOME_DIR/pace-env" | tail -1

echo "== munge and Slurm (one node, $CPUS CPUs)"
install -d -o munge -g munge -m 755 /run/munge
if ! pgrep -x munged >/dev/null; then runuser -u munge -- /usr/sbin/munged; fi
HOST=$(hostname)
cat > "$STATE/slurm.conf" <<CONF
ClusterName=mlipautopipe
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=10
OverTimeLimit=0
StateSaveLocation=$STATE/slurm/state
SlurmdSpoolDir=$STATE/slurm/spool
SlurmctldPidFile=$STATE/slurm/slurmctld.pid
SlurmdPidFile=$STATE/slurm/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
chmod 755 "$STATE" "$STATE/slurm"  # slurmd and the user's jobs read nothing here, but Slurm checks the paths
mkdir -p /etc/slurm
install -m 644 "$STATE/slurm.conf" /etc/slurm/slurm.conf
for daemon in slurmctld slurmd; do
  if ! { [ -f "$STATE/slurm/$daemon.pid" ] && kill -0 "$(cat "$STATE/slurm/$daemon.pid")" 2>/dev/null; }; then
    # one started by another checkout (or before a reboot of its state) holds the ports: replace it
    if pkill -x "$daemon"; then timeout 30 bash -c "while pgrep -x $daemon >/dev/null; do sleep 0.5; done"; fi
    (cd "$STATE" && "/usr/sbin/$daemon" $([ "$daemon" = slurmctld ] && echo -i))
  fi
done
timeout 60 bash -c "until sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; do sleep 1; done"
runuser -u "$USER_NAME" -- srun -N1 -n1 true

cat > "$STATE/env" <<ENV
CLUSTER_HOST_ALIAS=$ALIAS
CLUSTER_USER=$USER_NAME
CLUSTER_SSH_PORT=$PORT
CLUSTER_KEY=$STATE/id_ed25519
CLUSTER_HOME=$HOME_DIR
CLUSTER_PACEMAKER=$HOME_DIR/pace-env/bin/pacemaker
CLUSTER_WORKDIR=$HOME_DIR/aiida_run
CLUSTER_CPUS=$CPUS
ENV
echo "== cluster ready in $(( $(date +%s) - start )) s: ssh $ALIAS; sinfo; $STATE/env"
