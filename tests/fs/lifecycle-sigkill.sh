#!/bin/bash
# The daemon killed with SIGKILL while readers block: every reader returns
# with an error (the kernel aborts the connection; the time it took is
# printed, not judged: a loaded machine makes any bound a coin toss; a
# reader that hung is stopped by its timeout, exit 124, and fails), and with
# -o auto_unmount the mount point is released.  Without auto_unmount the
# dead mount answers ENOTCONN until `fusermount3 -u`.
. "$(dirname "$0")/lib.sh"

# ms since the epoch
now_ms() { date +%s%3N; }

# kill_with_readers DIR: three blocked readers (data, records, a send
# reply), SIGKILL, then how long until all of them have returned (ms) in
# KILL_MS and their exit codes in KILL_CODES.
kill_with_readers() {
    local d=$1 pids=() p t0
    t cat "$d/data" >/dev/null 2>"$CRT_TMP/r1.err" &
    pids+=($!)
    t cat "$d/records" >/dev/null 2>"$CRT_TMP/r2.err" &
    pids+=($!)
    t python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"read timeout=60000 size=16\n")
os.read(fd, 100)
' "$d/send" 2>"$CRT_TMP/r3.err" &
    pids+=($!)
    wait_for 5 sh -c "[ \"\$(awk '\$1 == \"readers\" {print \$2}' '$d/stats')\" -ge 2 ]" ||
        diag "readers did not open in time"
    sleep 0.3 # all three parked
    t0=$(now_ms)
    kill -KILL "$CRT_PID"
    KILL_CODES=
    for p in "${pids[@]}"; do
        wait "$p"
        KILL_CODES="$KILL_CODES $?"
    done
    KILL_MS=$(($(now_ms) - t0))
    wait "$CRT_PID" 2>/dev/null
    CRT_PID=
}

# 1. with auto_unmount.  libfuse 3.14's helper unmounts only if opening the
# mount point fails with ENOTCONN; on a loaded machine it can look while
# the dying daemon's last threads still hold the device, get ECONNABORTED
# and leave the mount (documented in crtfs(8)).  So up to 8 tries, each on
# a fresh mount: auto_unmount must release one of them (a daemon that
# broke it, e.g. by closing the helper's socket, fails all eight).
released=
for try in 1 2 3 4 5 6 7 8; do
    crt_mount -o config="$CRT_EMPTY" -o auto_unmount || exit 1
    D=$MNT/k
    mkdir "$D"
    ok "try $try: a target that produces nothing" t sh -c "echo 'sim:echo' > '$D/target' && echo start > '$D/ctl'"
    kill_with_readers "$D"
    diag "try $try: all readers returned ${KILL_MS} ms after SIGKILL"
    ok "try $try: each with an error (exit codes:$KILL_CODES)" \
        sh -c "for c in $KILL_CODES; do [ \$c -ne 0 ] && [ \$c -ne 124 ] || exit 1; done"
    like "$(cat "$CRT_TMP/r1.err")" 'Transport endpoint is not connected|Software caused connection abort|No such device' \
        "try $try: cat says why"
    if wait_for 10 sh -c "! grep -q ' $MNT ' /proc/mounts"; then
        released=$MNT
        break
    fi
    diag "try $try: still mounted: $(grep " $MNT " /proc/mounts)"
    diag "fusermount3 helpers: $(ps -eo pid,ppid,stat,etime,args | grep '[f]usermount3')"
    t fusermount3 -u "$MNT"
done
ok "auto_unmount releases the mount point (try $try)" test -n "$released"
ok "the directory is usable again" t ls "$released"

# 2. without auto_unmount: the dead mount must be unmounted by hand
crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/k
mkdir "$D"
ok "a target that produces nothing" t sh -c "echo 'sim:echo' > '$D/target' && echo start > '$D/ctl'"
kill_with_readers "$D"
diag "without auto_unmount, the readers returned ${KILL_MS} ms after SIGKILL"
ok "each with an error (exit codes:$KILL_CODES)" \
    sh -c "for c in $KILL_CODES; do [ \$c -ne 0 ] && [ \$c -ne 124 ] || exit 1; done"
err=$(t cat "$MNT/version" 2>&1)
like "$err" 'Transport endpoint is not connected' "the dead mount answers ENOTCONN"
ok "fusermount3 -u releases it" t fusermount3 -u "$MNT"
done_testing
