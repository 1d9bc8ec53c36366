#!/bin/bash
# Streaming from a FIFO: writers come and go, a reader of `data` gets every
# byte in order; stop ends the reader's cat with end of file.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/fifo
F=$CRT_TMP/fifo
mkfifo "$F"
mkdir "$D"
ok "set a FIFO target" t sh -c "echo '$F' > '$D/target'"
ok "start" t sh -c "echo start > '$D/ctl'"
is "$(state_word "$D")" streaming "streaming"

t cat "$D/data" >"$CRT_TMP/out" &
reader=$!
ok "the reader is registered" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$D/stats') = 1 ]"
ok "first writer" t sh -c "seq 1 5000 > '$F'"
ok "second writer (the stream survives writers leaving)" t sh -c "seq 5001 10000 > '$F'"
seq 1 10000 >"$CRT_TMP/want"
ok "the reader got all 10000 lines" wait_for 5 sh -c "[ \$(wc -l < '$CRT_TMP/out') -ge 10000 ]"
is "$(stat_of "$D" bytes_read)" "$(wc -c <"$CRT_TMP/want")" "stats bytes_read counts every byte"
ok "stop" t sh -c "echo stop > '$D/ctl'"
wait $reader
is $? 0 "cat data ends with end of file after stop"
ok "data is the writers' bytes, in order" cmp -s "$CRT_TMP/out" "$CRT_TMP/want"
is "$(stat_of "$D" failed)" 0 "no failed completions"

# Restart: the FIFO is read again.
ok "start again" t sh -c "echo start > '$D/ctl'"
t head -n 3 "$D/data" >"$CRT_TMP/out2" &
reader=$!
wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$D/stats') = 1 ]"
ok "a third writer" t sh -c "printf 'a\nb\nc\n' > '$F'"
wait $reader
is "$(cat "$CRT_TMP/out2")" "$(printf 'a\nb\nc')" "after a restart the next writer's lines arrive"
ok "stop-wait" t sh -c "echo stop-wait > '$D/ctl'"
ok "clear the target" t sh -c "echo > '$D/target'"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
