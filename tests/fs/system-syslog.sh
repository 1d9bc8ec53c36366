#!/bin/bash
# Logs when daemonized: without -f, crtfs logs to syslog (facility daemon)
# with proper priorities: a target's state changes at notice, its errors at
# warning, at most five errors of a target in ten seconds and then a count.
# The scenario runs in a private mount namespace (unshare -m) whose /dev/log
# is a socket it listens on, so the system's syslog is not touched.
. "$(dirname "$0")/lib.sh"

if ! unshare -m true 2>/dev/null; then
    crt_skip_all "unshare -m is not allowed here"
fi
LOG=$CRT_TMP/syslog.txt
cat >"$CRT_TMP/inner.sh" <<'INNER'
# In the private mount namespace: a /dev of our own (the devices crtfs
# needs, bound from the real one, and a socket as /dev/log); nothing is
# created in the real /dev.
set -u
crtfs=$1 tmp=$2
mnt=$tmp/dmnt dev=$tmp/dev
mkdir -p "$mnt"
. "$tmp/devices.sh"
crt_bind_devices "$dev" || exit 1
python3 - "$dev/log" "$tmp/syslog.txt" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
with open(sys.argv[2], "w", buffering=1) as out:
    try:
        while True:
            out.write(s.recv(65536).decode(errors="replace").rstrip("\n") + "\n")
    except socket.timeout:
        pass
PY
listener=$!
for _ in $(seq 100); do [ -S "$dev/log" ] && break; sleep 0.05; done
mount --rbind "$dev" /dev || exit 1
printf '[bad]\ntarget=sim:records fail=1 errno=EIO fatal\n[ok]\ntarget=sim:records rate=5\nautostart=true\n' \
    >"$tmp/d.conf"
timeout 10 "$crtfs" -o config="$tmp/d.conf",log=syslog "$mnt" || exit 1 # daemonizes
for _ in $(seq 100); do [ -d "$mnt/bad" ] && break; sleep 0.05; done
for _ in $(seq 8); do
    echo start >"$mnt/bad/ctl"
    sleep 0.1
done
timeout 10 fusermount3 -u "$mnt"
sleep 1
kill $listener 2>/dev/null
wait
INNER
touch "$LOG"
declare -f crt_bind_devices >"$CRT_TMP/devices.sh"
t unshare -m bash "$CRT_TMP/inner.sh" "$CRTFS" "$CRT_TMP" >"$CRT_TMP/inner.out" 2>&1
is $? 0 "the daemonized run went through" || diag "$(cat "$CRT_TMP/inner.out")"
# <29> = daemon.notice, <28> = daemon.warning
like "$(cat "$LOG")" '<29>.*crtfs\[[0-9]+\]: ok: streaming' "a state change: daemon.notice"
like "$(cat "$LOG")" '<29>.*crtfs\[[0-9]+\]: ok: target sim:records rate=5' "a target set: daemon.notice"
is "$(grep -c '<28>.*crtfs\[[0-9]*\]: bad: stream ended: Input/output error' "$LOG")" 5 \
    "eight errors of one target: five lines at daemon.warning"
like "$(cat "$LOG")" '<29>.*stopping every target' "the daemon's own events: notice"
done_testing
