#!/bin/bash
# exec: targets: the command's whole output arrives, then end of file; the
# stream is kept while nobody reads (no loss when the reader comes late); a
# write stream feeds the command's stdin.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/ex
mkdir "$D"

ok "set exec:seq 1 10000" t sh -c "echo 'exec:seq 1 10000' > '$D/target'"
t cat "$D/data" >"$CRT_TMP/out" &
reader=$!
wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$D/stats') = 1 ]"
ok "start" t sh -c "echo start > '$D/ctl'"
wait $reader
is $? 0 "cat data ends by itself (end of file after the output)"
seq 1 10000 >"$CRT_TMP/want"
ok "the whole output of seq 1 10000 arrived, in order" cmp "$CRT_TMP/out" "$CRT_TMP/want"
ok "the target stops at the end of the output" wait_for 5 sh -c "[ \"\$(sed -n 1p '$D/state')\" = stopped ]"
like "$(state_field "$D" error)" 'end of file' "error: says the stream ended"

# A late reader: 100000 lines do not fit the pool, streaming waits for it.
ok "set exec:seq 1 100000" t sh -c "echo 'exec:seq 1 100000' > '$D/target'"
ok "start with nobody reading" t sh -c "echo start > '$D/ctl'"
ok "the pool fills" wait_for 5 sh -c "[ \$(awk '\$1==\"out_pool_free\"{print \$2}' '$D/stats') = 0 ]"
t cat "$D/data" >"$CRT_TMP/out"
is $? 0 "a late cat gets everything and end of file"
seq 1 100000 >"$CRT_TMP/want"
ok "nothing lost while nobody read" cmp "$CRT_TMP/out" "$CRT_TMP/want"

# records shows the end of file as the last completion
ok "restart seq 1 3" t sh -c "echo 'exec:seq 1 3' > '$D/target' && echo start > '$D/ctl'"
rec=$(t cat "$D/records")
like "$rec" $'^[0-9]+ [0-9]+\.[0-9]{9} ok 6\n1\n2\n3\n[0-9]+ [0-9]+\.[0-9]{9} ENODATA 0$' \
    "records: the output, then an ENODATA completion"

# A write stream into the command's stdin.
ok "stop-wait" t sh -c "echo stop-wait > '$D/ctl'"
ok "type write" t sh -c "echo write > '$D/config/type'"
ok "set exec:cat > FILE" t sh -c "echo 'exec:cat > $CRT_TMP/fed' > '$D/target'"
ok "start" t sh -c "echo start > '$D/ctl'"
for w in one two three; do
    ok "input $w" t sh -c "echo $w > '$D/input'"
done
ok "the command received the input buffers" wait_for 5 sh -c "[ \"\$(cat '$CRT_TMP/fed')\" = \"\$(printf 'one\ntwo\nthree')\" ]"
ok "clear (the command ends)" t sh -c "echo > '$D/target'"

# The command's stderr goes to the log and its last lines to presence:.
ok "stop-wait" t sh -c "echo stop-wait > '$D/ctl'"
ok "type read" t sh -c "echo read > '$D/config/type'"
ok "a command that complains" t sh -c "echo 'exec:echo out; echo \"no such sensor\" >&2; exec sleep 30 2>/dev/null' > '$D/target'"
ok "presence: shows its last stderr line" wait_for 5 sh -c "grep -q '^presence: running (pid [0-9]*); stderr: \"no such sensor\"' '$D/state'"
ok "and the log has it" wait_for 5 grep -q 'stderr: no such sensor' "$CRT_ERR"
ok "clear" t sh -c "echo > '$D/target'"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
