#!/bin/bash
# A tty is locked against programs that do not flock: crtfs takes and
# honours UUCP lock files (/var/lock/LCK..NAME), as the real ser2net from
# Debian does.  While crtfs holds the tty, ser2net refuses its port's
# clients; while ser2net has it open, setting it as a target fails with
# EBUSY naming ser2net's pid and its lock file; released, the other gets it.
. "$(dirname "$0")/lib.sh"

ok "ser2net is installed (scripts/deps.sh installs it)" command -v ser2net || exit 1
ok "/var/lock is writable (root on Debian)" test -w /var/lock || exit 1
crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/serial
mkdir "$D"
A=$CRT_TMP/ttyA B=$CRT_TMP/ttyB
socat pty,raw,echo=0,link="$A" pty,raw,echo=0,link="$B" &
sp=$!
ok "a pty pair" wait_for 5 test -e "$A" -a -e "$B"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'connection: &serial\n  accepter: tcp,127.0.0.1,%s\n  connector: serialdev,%s,9600n81,local\n' \
    "$PORT" "$A" >"$CRT_TMP/ser2net.yaml"
ser2net -n -c "$CRT_TMP/ser2net.yaml" -P "$CRT_TMP/ser2net.pid" 2>"$CRT_TMP/ser2net.err" &
s2n=$!
cleanup_tty() { kill "$s2n" "$sp" 2>/dev/null; wait "$s2n" "$sp" 2>/dev/null; rm -f /var/lock/LCK.._tmp_crtfs-test*; }
trap 'cleanup_tty; _crt_cleanup' EXIT
ok "ser2net listens" wait_for 5 sh -c "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $PORT)).close()' 2>/dev/null"
sleep 0.3 # that probe's connection goes away

LOCK=/var/lock/LCK..$(printf '%s' "$A" | tr / _) # ser2net's name for a path outside /dev
ok "crtfs takes the tty" t sh -c "echo '$A raw' > '$D/target'"
is "$(tr -d ' ' <"$LOCK" 2>/dev/null)" "$CRT_PID" "the UUCP lock file ser2net looks at holds crtfs's pid"
out=$( (echo hi; sleep 1) | timeout 5 socat - TCP:127.0.0.1:"$PORT" 2>&1)
like "$out" 'Device open failure' "ser2net refuses its client while crtfs holds the tty"
ok "crtfs releases it" t sh -c "echo > '$D/target'"
ok "and its lock file is gone" test ! -e "$LOCK"

(sleep 4) | timeout 6 socat - TCP:127.0.0.1:"$PORT" >/dev/null 2>&1 &
client=$!
ok "ser2net opens the tty for a client" wait_for 5 test -e "$LOCK"
t bash -c "echo '$A raw' > '$D/target'" 2>"$CRT_TMP/busy.err"
is "$?" 1 "crtfs is refused while ser2net has it"
like "$(cat "$CRT_TMP/busy.err")" 'Device or resource busy' "with EBUSY"
like "$(state_field "$D" error)" "locked by pid $s2n through the UUCP lock file $LOCK" \
    "error: names ser2net's pid and its lock file"
wait "$client"
ok "once ser2net's client is gone the lock goes" wait_for 5 test ! -e "$LOCK"
ok "and crtfs may have the tty" t sh -c "echo '$A raw' > '$D/target'"
ok "release" t sh -c "echo > '$D/target'"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
