#!/bin/bash
# SIGHUP reads the configuration file again and applies the differences by
# target name: a new group appears, a removed one goes, a changed one is
# applied (restarted when its autostart started it), an unchanged one and a
# mkdir'ed directory stream on untouched (a reader of it sees no gap), and
# a file that does not check out changes nothing.
. "$(dirname "$0")/lib.sh"

CONF=$CRT_TMP/crtfs.conf
cat >"$CONF" <<'EOF'
[keep]
target=sim:records rate=200
autostart=true
[drop]
target=sim:records rate=10
autostart=true
[change]
target=sim:records rate=10
autostart=true
EOF
crt_mount -o config="$CONF" || exit 1
ok "the three groups are directories" test -d "$MNT/keep" -a -d "$MNT/drop" -a -d "$MNT/change"
mkdir "$MNT/mine"
wr "$MNT/mine/target" "sim:counter"
wr "$MNT/mine/ctl" start
is "$(state_word "$MNT/mine")" streaming "a mkdir'ed target streams"

# a reader of `keep` across the reload: its SEQ must go on without a gap
t python3 - "$MNT/keep/records" "$CRT_TMP/keep.seqs" <<'PY' &
import os, re, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
buf, seqs, end = b"", [], time.monotonic() + 4
while time.monotonic() < end:
    buf += os.read(fd, 65536)
    while True:
        m = re.match(rb"(\d+) \d+\.\d{9} (\S+) (\d+)\n", buf)
        if not m or len(buf) < m.end() + int(m.group(3)):
            break
        seqs.append(int(m.group(1)))
        buf = buf[m.end() + int(m.group(3)):]
open(sys.argv[2], "w").write(" ".join(map(str, seqs)))
PY
READER=$!
sleep 1
keep_ino=$(stat -c %i "$MNT/keep")

cat >"$CONF" <<'EOF'
[keep]
target=sim:records rate=200
autostart=true
[change]
target=sim:records rate=50 size=40
out_size=4096
autostart=true
[new]
target=sim:zero
autostart=true
EOF
kill -HUP "$CRT_PID"
ok "[new] appears" wait_for 5 test -d "$MNT/new"
ok "[drop] goes" wait_for 5 sh -c "! test -d '$MNT/drop'"
is "$(state_field "$MNT/change" target)" "sim:records rate=50 size=40" "[change] has its new spec"
is "$(state_word "$MNT/change")" streaming "and streams again (its autostart started it)"
is "$(state_word "$MNT/new")" streaming "[new] streams"
is "$(stat -c %i "$MNT/keep")" "$keep_ino" "[keep] is the same directory"
is "$(state_word "$MNT/mine")" streaming "the mkdir'ed target streams on"
wait "$READER"
is $? 0 "the reader of [keep] ran through the reload"
ok "its SEQ went on without a gap or a repeat" python3 -c '
import sys
s = list(map(int, open(sys.argv[1]).read().split()))
sys.exit(not (len(s) > 100 and s == list(range(s[0], s[0] + len(s)))))' "$CRT_TMP/keep.seqs"

# a bad file changes nothing
printf '[keep]\ntarget=sim:records rate=200\n[oops]\nrequests=lots\n' >"$CONF"
kill -HUP "$CRT_PID"
sleep 0.5
ok "after a bad file, [change] and [new] are still there" test -d "$MNT/change" -a -d "$MNT/new"
ok "no [oops]" test ! -d "$MNT/oops"
ok "the daemon is alive" kill -0 "$CRT_PID"
like "$(cat "$CRT_ERR")" "SIGHUP: .*requests.*nothing changed" "the reason is logged"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"

# without -o config= (the embedded default), SIGHUP only says so
crt_mount || exit 1
kill -HUP "$CRT_PID"
sleep 0.3
ok "embedded default: the daemon is alive after SIGHUP" kill -0 "$CRT_PID"
ok "and demo still streams" test "$(state_word "$MNT/demo")" = streaming
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
