#!/bin/bash
# The default transport, as xl migrate uses it: ssh to the destination runs
# 'xl-migrate-live receive' there (a private sshd on 127.0.0.1 with its own
# keys; -s replaces the ssh command as xl's -s does). Also: a dead ssh link
# mid-copy leaves the source running.
. "$(dirname "$0")/lib.sh"
command -v /usr/sbin/sshd >/dev/null || fail "openssh-server is not installed (setup.sh installs it)"
mkdir -p /run/sshd "$T/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/userkey"
bindir=$(dirname "$(readlink -f "$XLML")")
# the remote PATH must find this build's xl-migrate-live
echo "command=\"PATH=$bindir:\$PATH; eval \\\"\$SSH_ORIGINAL_COMMAND\\\"\" $(cat "$T/ssh/userkey.pub")" >"$T/ssh/authorized_keys"
port=$(free_port)
cat >"$T/ssh/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $T/ssh/hostkey
AuthorizedKeysFile $T/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $T/ssh/sshd.pid
AcceptEnv MIG_FAULT
CONF
/usr/sbin/sshd -D -e -f "$T/ssh/sshd_config" 2>"$T/sshd.log" &
HOSTPIDS+=($!)
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
    sleep 0.05
done
SSHCMD="ssh -p $port -i $T/ssh/userkey -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o SendEnv=MIG_FAULT"

start_host a
start_host b
create_guest a g 256M "dirty=50M,pattern=hotset"
sleep 0.3
rc=0
"$XLML" --host "$(host_dir a)" --state-dir "$(host_dir a)" -s "$SSHCMD" \
    --receive-args "--host $(host_dir b) --state-dir $(host_dir b)" sim:g 127.0.0.1 \
    >"$T/migrate.out" 2>"$T/migrate.log" || rc=$?
[ "$rc" -eq 0 ] || fail "migration over ssh: exit $rc: $(tail -3 "$T/migrate.log")"
grep -q "domain runs on  ssh:127.0.0.1" "$T/migrate.out" || fail "report: $(cat "$T/migrate.out")"
wait_verified b g
assert_absent a g
echo "over ssh: $(grep -E 'total time|downtime' "$T/migrate.out" | tr -s ' ' | tr '\n' ';')"

# more than one channel over ssh is a usage error pointing to tls:
rc=0
"$XLML" --host "$(host_dir a)" -s "$SSHCMD" --parallel 2 sim:x 127.0.0.1 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "use tls:" "$T/err" || fail "--parallel over ssh: exit $rc $(cat "$T/err")"

# the receiver dies mid-copy: the source keeps running
create_guest a h 256M "dirty=50M"
rc=0
# (the source has no dest-* points; ssh carries MIG_FAULT to the receiver)
MIG_FAULT="dest-pages@0=exit" "$XLML" --host "$(host_dir a)" --state-dir "$(host_dir a)" \
    -s "$SSHCMD" \
    --receive-args "--host $(host_dir b) --state-dir $(host_dir b)" sim:h 127.0.0.1 \
    >"$T/migrate.out" 2>"$T/migrate.log" || rc=$?
[ "$rc" -eq 1 ] || fail "receiver killed: exit $rc, expected 1"
assert_running_on a h
assert_absent b h
