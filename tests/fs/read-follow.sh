#!/bin/bash
# Following a target across streams: `while :; do cat data; done` (the man
# page's answer to tail -f) gets every stream, in order; tail -f cannot
# follow a file whose size is 0 and says "file truncated" where a stream
# ends, as the man page says.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/f
mkdir "$D"
# limit= counts reads: with out_size the record size, each read is one
# record (a bigger buffer carries every record due, several on a loaded
# machine).
ok "one record a read" t sh -c "echo 32 > '$D/config/out_size'"
ok "a target of five records a stream" t sh -c "echo 'sim:records limit=5 rate=100 size=32' > '$D/target'"

timeout -k 2 "$T" bash -c "while :; do cat '$D/data'; done" >"$CRT_TMP/loop" &
loop=$!
timeout -k 2 "$T" tail -n +1 -f "$D/data" >"$CRT_TMP/tail" 2>"$CRT_TMP/tail.err" &
tailp=$!
ok "both readers are registered" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$D/stats') = 2 ]"
for i in 1 2 3; do
    ok "stream $i" t sh -c "echo start > '$D/ctl'"
    ok "stream $i ended" wait_for 5 sh -c "[ \"\$(sed -n 1p '$D/state')\" = stopped ]"
    ok "the loop has it" wait_for 5 sh -c "[ \$(wc -l < '$CRT_TMP/loop') -ge $((i * 5)) ]"
    ok "its reader is back" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$D/stats') -ge 1 ]"
    sleep 0.2
done
kill "$loop" "$tailp" 2>/dev/null
wait "$loop" "$tailp" 2>/dev/null
is "$(wc -l <"$CRT_TMP/loop")" 15 "the cat loop got the three streams: 15 records"
is "$(cut -c1-10 "$CRT_TMP/loop" | tr '\n' ' ')" \
    "$(for s in 1 2 3; do for r in 1 2 3 4 5; do printf '%010d ' $r; done; done)" \
    "each stream's records, in order"
is "$(wc -l <"$CRT_TMP/tail")" 5 "tail -n +1 -f read only the first stream"
like "$(cat "$CRT_TMP/tail.err")" 'file truncated' "and said file truncated (the man page says so)"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
