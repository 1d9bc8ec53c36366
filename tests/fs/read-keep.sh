#!/bin/bash
# keep: what waits for the next reader while nobody reads.  A FIFO (not a
# live source) keeps everything by default; keep=none drains it and a
# reader sees only what comes after it opened; keep=last:N keeps the
# newest N buffers; a character device is a live source (auto = none).
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/k
F=$CRT_TMP/fifo
mkfifo "$F"
mkdir "$D"
is "$(t cat "$D/config/keep")" auto "keep defaults to auto"
ok "set a FIFO target" t sh -c "echo '$F' > '$D/target'"
is "$(state_field "$D" keep)" "all (auto: not a live source)" "a FIFO keeps all"
echo 64 >"$D/config/out_size"
ok "start" t sh -c "echo start > '$D/ctl'"

# Lines of 64 bytes, one buffer each; a writer holds the FIFO open between
# bursts so that the stream does not end.
exec 7<>"$F"
line() { printf '%063d\n' "$1" >&7; }
for i in 1 2 3 4 5; do line "$i"; done
ok "five buffers arrive with nobody reading" wait_for 5 sh -c "[ \"\$(awk '\$1==\"completed\"{print \$2}' '$D/stats')\" -ge 5 ]"
out=$(t head -c 320 "$D/data" | tr -d 0 | tr '\n' ' ')
is "$out" "1 2 3 4 5 " "keep=auto (all): a late reader gets them all"

ok "keep=none" t sh -c "echo none > '$D/config/keep'"
is "$(state_field "$D" keep)" none "state says keep: none"
is "$(state_word "$D")" streaming "changing keep does not stop the stream"
for i in 6 7 8; do line "$i"; done
ok "three more buffers arrive" wait_for 5 sh -c "[ \"\$(awk '\$1==\"completed\"{print \$2}' '$D/stats')\" -ge 8 ]"
ok "they were discarded, not dropped" wait_for 5 sh -c "[ \"\$(awk '\$1==\"buffers_discarded\"{print \$2}' '$D/stats')\" -ge 3 ]"
is "$(stat_of "$D" buffers_dropped)" 0 "buffers_dropped stays 0"
t head -c 64 "$D/data" >"$CRT_TMP/late" &
reader=$!
ok "a late reader is registered" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$D/stats') = 1 ]"
line 9
wait $reader
is "$(tr -d 0 <"$CRT_TMP/late")" 9 "keep=none: the late reader starts with what came after it opened"

ok "keep=last:2" t sh -c "echo last:2 > '$D/config/keep'"
for i in 10 11 12 13; do line "$i"; done
ok "four more buffers arrive" wait_for 5 sh -c "[ \"\$(awk '\$1==\"completed\"{print \$2}' '$D/stats')\" -ge 13 ]"
out=$(t head -c 128 "$D/data" | tr -d 0 | tr '\n' ' ')
is "$out" "12 13 " "keep=last:2: the newest two"
wr "$D/config/keep" last:0
like "$WERR" 'Invalid argument' "keep=last:0 is refused"
like "$(state_field "$D" error)" '^keep: "last:0" is not auto, all, none, last:N' "error: lists the forms"
exec 7>&-
ok "stop" t sh -c "echo stop-wait > '$D/ctl'"

# A character device is a live source.
ok "a character device target" t sh -c "echo auto > '$D/config/keep'; echo /dev/zero > '$D/target'"
is "$(state_field "$D" keep)" "none (auto: a live source)" "auto keeps nothing of a live source"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
