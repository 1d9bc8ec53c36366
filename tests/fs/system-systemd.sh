#!/bin/bash
# The systemd side: crtfs.service (doc/crtfs.service.in with this build's
# bindir) passes `systemd-analyze verify`, and the daemon speaks the
# sd_notify protocol a Type=notify unit needs: READY=1 once mounted with the
# configuration's targets up, RELOADING=1 then READY=1 around a SIGHUP
# reload, STOPPING=1 when it stops.
. "$(dirname "$0")/lib.sh"

UNIT_IN=$(dirname "$0")/../../doc/crtfs.service.in
UNIT=$CRT_TMP/crtfs.service
sed -e "s|@bindir@|$(dirname "$CRTFS")|g" "$UNIT_IN" >"$UNIT"
if command -v systemd-analyze >/dev/null; then
    out=$(t systemd-analyze verify --man=no "$UNIT" 2>&1)
    is $? 0 "systemd-analyze verify crtfs.service: exit 0"
    is "$out" "" "and nothing to complain about"
else
    echo "ok $((++_tap_n)) # SKIP systemd-analyze is not installed"
fi
grep -q '^Type=notify$' "$UNIT" && grep -q '^ExecReload=.*-HUP' "$UNIT"
is $? 0 "the unit is Type=notify and reloads with SIGHUP"

# sd_notify: a datagram socket as systemd's NOTIFY_SOCKET
NOTIFY=$CRT_TMP/notify.sock
t python3 - "$NOTIFY" "$CRT_TMP/notes" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(8)
with open(sys.argv[2], "w", buffering=1) as out:
    try:
        while True:
            msg = s.recv(4096).decode()
            out.write(msg.replace("\n", " ") + "\n")
            if "STOPPING=1" in msg:
                break
    except socket.timeout:
        pass
PY
LISTENER=$!
wait_for 5 test -S "$NOTIFY"
printf '[n]\ntarget=sim:records rate=5\nautostart=true\n' >"$CRT_TMP/n.conf"
NOTIFY_SOCKET=$NOTIFY crt_mount -o config="$CRT_TMP/n.conf" || exit 1
ok "READY=1 once mounted" wait_for 5 grep -qx 'READY=1' "$CRT_TMP/notes"
is "$(state_word "$MNT/n")" streaming "the configuration's target streams by then"
kill -HUP "$CRT_PID"
ok "RELOADING=1 on SIGHUP" wait_for 5 grep -qx 'RELOADING=1' "$CRT_TMP/notes"
ok "then READY=1 again" wait_for 5 sh -c "[ \$(grep -cx 'READY=1' '$CRT_TMP/notes') -ge 2 ]"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
wait "$LISTENER"
is "$(tr '\n' ' ' <"$CRT_TMP/notes")" "READY=1 RELOADING=1 READY=1 STOPPING=1 " \
    "the whole conversation, in order"
done_testing
