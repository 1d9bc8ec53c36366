#!/bin/bash
# The daemon's end with readers blocked: SIGTERM and SIGINT end every
# blocked read (end of file) and exit 0; fusermount3 -u exits 0; a lazy
# unmount then SIGTERM, and a forced unmount, leave no hang.
. "$(dirname "$0")/lib.sh"

readers_are() { [ "$(awk '$1=="readers"{print $2}' "$1/stats")" = "$2" ]; }

# block_readers DIR: a blocked cat data, a blocked cat records, and a
# process that holds data open without reading (between two reads).
block_readers() {
    t cat "$1/data" >/dev/null 2>&1 &
    r1=$!
    t cat "$1/records" >/dev/null 2>&1 &
    r2=$!
    t python3 -c 'import os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); time.sleep(60)' "$1/data" &
    r3=$!
    wait_for 5 readers_are "$1" 3
}

for sig in TERM INT; do
    crt_mount -o config="$CRT_EMPTY" || exit 1
    mkdir "$MNT/a" "$MNT/b"
    t sh -c "echo sim:counter > '$MNT/a/target'"
    t sh -c "echo 'sim:records rate=100' > '$MNT/b/target' && echo start > '$MNT/b/ctl'"
    ok "SIG$sig: three readers blocked on a stopped target" block_readers "$MNT/a"
    t cat "$MNT/b/data" >/dev/null &
    r4=$!
    sleep 0.2
    t0=$(date +%s%3N)
    kill -$sig "$CRT_PID"
    wait $r1
    is $? 0 "SIG$sig: blocked cat data ends with end of file"
    wait $r2
    is $? 0 "SIG$sig: blocked cat records ends with end of file"
    wait $r4
    is $? 0 "SIG$sig: a streaming reader ends with end of file"
    ok "SIG$sig: daemon exits within 10 s" crt_wait_daemon 10
    ms=$(($(date +%s%3N) - t0))
    is "$CRT_EXIT" 0 "SIG$sig: daemon exits 0 (after ${ms} ms)"
    nok "SIG$sig: the mount is gone" crt_is_mounted
    ok "SIG$sig: no critical or warning in the daemon's log" crt_log_clean
    kill $r3 2>/dev/null
    wait $r3 2>/dev/null
done

# fusermount3 -u with targets streaming (nobody has a file open).
crt_mount -o config="$CRT_EMPTY" || exit 1
for n in 1 2 3; do
    mkdir "$MNT/t$n"
    t sh -c "echo 'sim:records rate=1000' > '$MNT/t$n/target' && echo start > '$MNT/t$n/ctl'"
done
ok "fusermount3 -u" t fusermount3 -u "$MNT"
ok "unmount: daemon exits within 10 s" crt_wait_daemon 10
is "$CRT_EXIT" 0 "unmount: daemon exits 0"
ok "unmount: no critical or warning in the daemon's log" crt_log_clean

# A lazy unmount with blocked readers: the kernel keeps the connection until
# they close; SIGTERM then ends them.
crt_mount -o config="$CRT_EMPTY" || exit 1
mkdir "$MNT/l"
t sh -c "echo sim:counter > '$MNT/l/target'"
ok "lazy: readers blocked" block_readers "$MNT/l"
ok "fusermount3 -u -z with blocked readers" t fusermount3 -u -z "$MNT"
nok "lazy: the mount is detached" crt_is_mounted
kill -TERM "$CRT_PID"
wait $r1
is $? 0 "lazy: blocked cat data ends"
wait $r2
is $? 0 "lazy: blocked cat records ends"
ok "lazy: daemon exits within 10 s" crt_wait_daemon 10
is "$CRT_EXIT" 0 "lazy: daemon exits 0"
ok "lazy: the file held open kept it for the grace, and it says so" grep -q "1 file still open after 2 s" "$CRT_ERR"
ok "lazy: no critical or warning in the daemon's log" crt_log_clean
kill $r3 2>/dev/null
wait $r3 2>/dev/null

# A lazy unmount with one streaming reader and nothing else open: once SIGTERM
# has ended its read and it has closed, the connection is gone and the
# daemon stops at once, without waiting out its two seconds of grace for
# releases that can no longer come.
crt_mount -o config="$CRT_EMPTY" || exit 1
mkdir "$MNT/z"
t sh -c "echo 'sim:records rate=100' > '$MNT/z/target' && echo start > '$MNT/z/ctl'"
t cat "$MNT/z/data" >/dev/null 2>&1 &
r1=$!
ok "lazy, one reader: it reads a stream" wait_for 5 readers_are "$MNT/z" 1
ok "lazy, one reader: fusermount3 -u -z" t fusermount3 -u -z "$MNT"
kill -TERM "$CRT_PID"
wait $r1
is $? 0 "lazy, one reader: its cat ends with end of file"
ok "lazy, one reader: daemon exits" crt_wait_daemon 10
is "$CRT_EXIT" 0 "lazy, one reader: daemon exits 0"
nok "lazy, one reader: it did not wait out the grace for lost releases" grep -q "still open after" "$CRT_ERR"

# A forced unmount (umount -f aborts the connection): readers return at
# once with an error, the daemon exits 0 by itself.
crt_mount -o config="$CRT_EMPTY" || exit 1
mkdir "$MNT/f"
t sh -c "echo sim:counter > '$MNT/f/target'"
ok "force: readers blocked" block_readers "$MNT/f"
t umount -f "$MNT" 2>/dev/null
wait $r1
isnt $? 124 "force: blocked cat data returns (no timeout)"
wait $r2
isnt $? 124 "force: blocked cat records returns"
ok "force: daemon exits within 10 s" crt_wait_daemon 10
is "$CRT_EXIT" 0 "force: daemon exits 0"
ok "force: no critical or warning in the daemon's log" crt_log_clean
kill $r3 2>/dev/null
wait $r3 2>/dev/null
crt_is_mounted && fusermount3 -u -z "$MNT"

done_testing
