#!/bin/bash
# Broadcast: two, then ten concurrent readers of `data` each get the
# complete stream (a second cat never steals bytes from the first).
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/bc
mkdir "$D"
seq 1 200000 >"$CRT_TMP/want"

readers_are() { [ "$(awk '$1=="readers"{print $2}' "$D/stats")" = "$1" ]; }

for n in 2 10; do
    ok "set exec:seq 1 200000" t sh -c "echo 'exec:seq 1 200000' > '$D/target'"
    pids=()
    for i in $(seq 1 $n); do
        t cat "$D/data" >"$CRT_TMP/out$n.$i" &
        pids+=($!)
    done
    ok "$n readers open" wait_for 5 readers_are $n
    ok "start" t sh -c "echo start > '$D/ctl'"
    for i in $(seq 1 $n); do
        wait "${pids[$((i - 1))]}"
        is $? 0 "reader $i of $n ends with end of file"
        ok "reader $i of $n got the complete stream" cmp -s "$CRT_TMP/out$n.$i" "$CRT_TMP/want"
    done
    ok "readers gone" wait_for 5 readers_are 0
    is "$(stat_of "$D" buffers_dropped)" 0 "nothing dropped"
done

# records and data at once: the same buffers
ok "set exec:seq 1 50000" t sh -c "echo 'exec:seq 1 50000' > '$D/target'"
t cat "$D/data" >"$CRT_TMP/d" &
p1=$!
t cat "$D/records" >"$CRT_TMP/r" &
p2=$!
ok "a data and a records reader open" wait_for 5 readers_are 2
ok "start" t sh -c "echo start > '$D/ctl'"
wait $p1
wait $p2
seq 1 50000 >"$CRT_TMP/want2"
ok "data complete" cmp -s "$CRT_TMP/d" "$CRT_TMP/want2"
# strip the headers: each header line is followed by LENGTH bytes
python3 - "$CRT_TMP/r" "$CRT_TMP/r.payload" <<'PY'
import sys, re
b = open(sys.argv[1], "rb").read(); out = bytearray(); pos = 0
h = re.compile(rb"(\d+) (\d+)\.(\d{9}) (\S+) (\d+)\n")
while pos < len(b):
    m = h.match(b, pos); n = int(m.group(5)); out += b[m.end():m.end() + n]; pos = m.end() + n
open(sys.argv[2], "wb").write(out)
PY
ok "records carries the same bytes" cmp -s "$CRT_TMP/r.payload" "$CRT_TMP/want2"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
