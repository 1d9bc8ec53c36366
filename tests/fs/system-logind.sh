#!/bin/bash
# Suspend and resume with the system: against a mock logind (python3-dbusmock's
# logind template) on a private bus given as the system bus, crtfs holds a
# delay inhibitor lock; PrepareForSleep(true) suspends (stops and drains)
# every streaming target with purge_on_suspend=1, leaves the others alone
# and releases the lock; PrepareForSleep(false) resumes them and takes a new
# lock.  Without the bus nothing of this happens (every other scenario).
. "$(dirname "$0")/lib.sh"

PY=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import dbusmock' 2>/dev/null; then
        PY=$p
        break
    fi
done
if [ -z "$PY" ] || ! command -v dbus-daemon >/dev/null || ! command -v gdbus >/dev/null; then
    crt_skip_all "needs python3-dbusmock, dbus-daemon and gdbus"
fi

# a private bus, as the system bus of crtfs and of the mock
t dbus-daemon --session --fork --print-address=3 --print-pid=4 \
    3>"$CRT_TMP/bus.addr" 4>"$CRT_TMP/bus.pid"
BUS_PID=$(cat "$CRT_TMP/bus.pid")
CRT_AT_EXIT+=("kill $BUS_PID 2>/dev/null")
export DBUS_SYSTEM_BUS_ADDRESS=$(head -n 1 "$CRT_TMP/bus.addr")
"$PY" -m dbusmock --system --template logind >"$CRT_TMP/mock.log" 2>&1 &
MOCK=$!
CRT_AT_EXIT+=("kill $MOCK 2>/dev/null")
login1() { t gdbus call --system --dest org.freedesktop.login1 --object-path /org/freedesktop/login1 "$@"; }
ok "the mock logind is on the bus" wait_for 10 sh -c \
    "gdbus call --system --dest org.freedesktop.login1 --object-path /org/freedesktop/login1 \
     --method org.freedesktop.login1.Manager.ListInhibitors >/dev/null 2>&1"
sleep_signal() {
    login1 --method org.freedesktop.DBus.Mock.EmitSignal org.freedesktop.login1.Manager \
        PrepareForSleep b "[<$1>]" >/dev/null
}
holds_lock() {
    login1 --method org.freedesktop.login1.Manager.ListInhibitors | grep -q "'crtfs'.*'delay'"
}
no_lock() { ! holds_lock; }

# drop-oldest: with nobody reading they stream on, so a pause shows
printf '[p]\ntarget=sim:records rate=50\npurge_on_suspend=1\noverflow=drop-oldest\nautostart=true\n[q]\ntarget=sim:records rate=50\noverflow=drop-oldest\nautostart=true\n' \
    >"$CRT_TMP/s.conf"
crt_mount -o config="$CRT_TMP/s.conf" || exit 1
ok "crtfs takes a delay inhibitor lock" wait_for 5 holds_lock
sleep_signal true
ok "PrepareForSleep(true): p (purge_on_suspend=1) is suspended" \
    wait_for 5 sh -c "[ \"\$(sed -n 1p '$MNT/p/state')\" = suspended ]"
is "$(state_word "$MNT/q")" streaming "q (purge_on_suspend=0) streams on"
ok "and the lock is released, so the system may sleep" wait_for 5 no_lock
before=$(stat_of "$MNT/p" completed)
sleep 0.3
is "$(stat_of "$MNT/p" completed)" "$before" "p does not stream while the system sleeps"
q_before=$(stat_of "$MNT/q" completed)
ok "q does" wait_for 5 sh -c "[ \$(awk '\$1 == \"completed\" {print \$2}' '$MNT/q/stats') -gt $q_before ]"
sleep_signal false
ok "PrepareForSleep(false): p streams again" \
    wait_for 5 sh -c "[ \"\$(sed -n 1p '$MNT/p/state')\" = streaming ]"
ok "and a new lock is taken" wait_for 5 holds_lock
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
ok "its lock went with it" wait_for 5 no_lock
done_testing
