#!/bin/bash
# Replay for late joiners: history= keeps the newest entries; a reader
# that opens data@N, data@DURATION, data@all (or records@...) starts that
# far back, then goes on live with no gap and no duplicate.  The names are
# looked up, not listed; a bad suffix is ENOENT with the reason in `state`;
# history memory shows in stats and counts in max_target_memory.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY",max_target_memory=3 || exit 1
D=$MNT/r
F=$CRT_TMP/fifo
mkfifo "$F"
mkdir "$D"
is "$(t cat "$D/config/history")" 0 "history defaults to 0"
is "$(t cat "$D/config/history_bytes")" 1048576 "history_bytes defaults to 1 MiB"
ok "set a FIFO target" t sh -c "echo '$F' > '$D/target'"
echo 64 >"$D/config/out_size"
echo none >"$D/config/keep"
ok "history=20" t sh -c "echo 20 > '$D/config/history'"
ok "start" t sh -c "echo start > '$D/ctl'"

# One 64-byte line a buffer (out_size 64), numbered as the hub numbers
# them; a writer holds the FIFO open so that the stream does not end.
exec 7<>"$F"
line() { printf '%063d\n' "$1" >&7; }
completed() { [ "$(stat_of "$D" completed)" -ge "$1" ]; }
nums() { sed 's/^0*//' | tr '\n' ' '; }

# A live reader, open all along: what it sees must not change.
timeout -k 2 120 cat "$D/data" >"$CRT_TMP/live" &
live=$!
ok "the live reader is registered" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$D/stats') = 1 ]"
for i in $(seq 1 10); do line "$i"; done
ok "ten buffers arrive" wait_for 5 completed 10

is "$(t head -n 5 "$D/data@5" | nums)" "6 7 8 9 10 " "data@5: the newest five"
is "$(t head -n 3 "$D/data@3" | nums)" "8 9 10 " "data@3: the newest three"
ok "data@5 is not listed" sh -c "! ls '$D' | grep -q @"
is "$(ls "$D" | tr '\n' ' ')" "config ctl data input lines records records.jsonl send state stats target " "ls shows the files only"

# The replay, then live: no gap, no duplicate.
t head -n 7 "$D/data@5" >"$CRT_TMP/cont" &
cont=$!
ok "the replay reader is registered" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$D/stats') = 2 ]"
line 11
line 12
wait $cont
is "$(nums <"$CRT_TMP/cont")" "6 7 8 9 10 11 12 " "data@5 then live: 6..10, then 11 and 12"

# records@5: the markers around the replay, the original numbers.
out=$(t head -n 12 "$D/records@5" | awk '{print $1, $3, $4}' | sed 's/ *$//' | tr '\n' ',')
is "$out" "0 replay:from=8 0,8 ok 64,$(printf '%063d' 8),9 ok 64,$(printf '%063d' 9),10 ok 64,$(printf '%063d' 10),11 ok 64,$(printf '%063d' 11),12 ok 64,$(printf '%063d' 12),0 live:from=13 0," \
    "records@5: replay:from=8, entries 8..12 with their numbers, live:from=13"
# records.jsonl@5: the same markers and numbers, one JSON object a line.
out=$(t head -n 7 "$D/records.jsonl@5" | t jq -r '"\(.seq) \(.status) \(.length)"' | tr '\n' ',')
is "$out" "0 replay:from=8 0,8 ok 64,9 ok 64,10 ok 64,11 ok 64,12 ok 64,0 live:from=13 0," \
    "records.jsonl@5: replay:from=8, entries 8..12, live:from=13 (jq)"
is "$(t head -n 2 "$D/records.jsonl@1" | sed -n 2p | t jq -r .text)" "$(printf '%063d' 12)" \
    "records.jsonl@1: the payload as text"

# data@DURATION: only what is younger.  Lines 1..12 are older than 3 s
# when 13 and 14 come; data@2s holds those two.
sleep 3
line 13
line 14
ok "two more arrive" wait_for 5 completed 14
is "$(t head -n 2 "$D/data@2s" | nums)" "13 14 " "data@2s: the entries of the last two seconds"
is "$(t head -n 14 "$D/data@all" | nums)" "1 2 3 4 5 6 7 8 9 10 11 12 13 14 " "data@all: everything held"
is "$(t head -n 14 "$D/data@1000" | nums)" "1 2 3 4 5 6 7 8 9 10 11 12 13 14 " "data@1000: more than is held gives what is held"
like "$(t head -n 1 "$D/records@all")" '^0 [0-9]+\.[0-9]{9} replay:from=1 0$' "records@all starts at 1"
# A block read that seeks back works on replayed bytes as on live ones:
# the first head reads all five at once (stream framing) and gives back
# what it did not use.
echo stream >"$D/config/framing"
got=$(t bash -c '{ head -n 2; echo "|"; head -n 3; } < "$1"' x "$D/data@5" | nums)
is "$got" "10 11 | 12 13 14 " "{ head -n 2; head -n 3; } < data@5: the seek back loses nothing"
echo record >"$D/config/framing"

# stats
is "$(stat_of "$D" history_entries)" 14 "stats: history_entries 14"
ok "stats: history_bytes counts them" sh -c "[ $(stat_of "$D" history_bytes) -gt $((14 * 64)) ]"
ok "stats: replays counted" sh -c "[ $(stat_of "$D" replays) -ge 8 ]"
ok "metrics name the history" sh -c "t() { timeout 10 \"\$@\"; }; t cat '$MNT/metrics' | grep -q 'history_entries'"

# Changing the history while streaming.
ok "history=5 while streaming" t sh -c "echo 5 > '$D/config/history'"
is "$(state_word "$D")" streaming "the stream goes on"
is "$(stat_of "$D" history_entries)" 5 "the oldest went at once"
is "$(t head -n 5 "$D/data@all" | nums)" "10 11 12 13 14 " "data@all: the five held"
ok "history=1min" t sh -c "echo 1min > '$D/config/history'"
is "$(t cat "$D/config/history")" 1min "history shows 1min"
wr "$D/config/history" 30x
like "$WERR" 'Invalid argument' "history=30x is refused"
like "$(state_field "$D" error)" '^history: "30x" is not 0 \(no history\), a count' "error: lists the forms"

# max_target_memory (3 MiB): the copies of small buffers take 1 MiB, the
# history 1 MiB; 2 MiB more does not fit.
wr "$D/config/history_bytes" 2097152
like "$WERR" 'Cannot allocate memory' "a history beyond max_target_memory is refused"
like "$(state_field "$D" error)" 'more than the 3145728 a target may have.*history_bytes' "error: says what to lower"
is "$(t cat "$D/config/history_bytes")" 1048576 "history_bytes unchanged"
ok "history_bytes=65536" t sh -c "echo 65536 > '$D/config/history_bytes'"

# Bad suffixes: ENOENT, the reason in state.
for bad in 'data@xyz' 'data@0' 'data@' 'data@5x' 'data@-1' 'records@all2'; do
    err=$(t cat "$D/$bad" 2>&1 >/dev/null)
    like "$err" 'No such file or directory' "$bad: ENOENT"
done
like "$(state_field "$D" error)" '"@all2" is not a replay: use @N' "state says why"
err=$(t cat "$D/state@5" 2>&1 >/dev/null)
like "$err" 'No such file or directory' "state@5: ENOENT"
like "$(state_field "$D" error)" 'only the stream files take a replay suffix' "state says why"

exec 7>&-
ok "stop" t sh -c "echo stop-wait > '$D/ctl'"
ok "the live reader ends with the stream" wait_for 5 sh -c "! kill -0 $live 2>/dev/null"
is "$(nums <"$CRT_TMP/live")" "1 2 3 4 5 6 7 8 9 10 11 12 13 14 " "the live reader got every entry once, in order"
ok "history=0" t sh -c "echo 0 > '$D/config/history'"
is "$(stat_of "$D" history_entries)" 0 "history=0 empties it"

# The simulator's numbered records: records@5 is the newest five with
# their numbers, then live, each once.
S=$MNT/s
mkdir "$S"
ok "sim:records" t sh -c "echo 'sim:records rate=50' > '$S/target'; echo 100 > '$S/config/history'; echo start > '$S/ctl'"
t head -n 20 "$S/data" >/dev/null
ok "entries are held" wait_for 5 sh -c "[ \$(awk '\$1==\"history_entries\"{print \$2}' '$S/stats') -ge 25 ]"
t head -n 16 "$S/records@5" >"$CRT_TMP/sim"
from=$(sed -n 's/^0 [^ ]* replay:from=\([0-9]*\) 0$/\1/p' "$CRT_TMP/sim")
liv=$(sed -n 's/^0 [^ ]* live:from=\([0-9]*\) 0$/\1/p' "$CRT_TMP/sim")
ok "records@5 has both markers" test -n "$from" -a -n "$liv"
is "$((liv - from))" 5 "live begins five after the replay's start"
want=$(seq "$from" $((from + 6)) | tr '\n' ' ')
is "$(awk '$3 == "ok" {print $1}' "$CRT_TMP/sim" | tr '\n' ' ')" "$want" "seqs run on without gap or duplicate"
ok "each payload is its record" sh -c "awk '\$3 == \"ok\" { s = \$1; getline; if (\$1 + 0 != s) exit 1 }' '$CRT_TMP/sim'"
is "$(t head -n 5 "$S/data@5" | awk '{print $1 + 0}' | awk 'NR > 1 && $1 != p + 1 {bad = 1} {p = $1} END {print bad ? "gap" : "consecutive"}')" consecutive "data@5 of the simulator: five consecutive records"
ok "stop the simulator" t sh -c "echo stop-wait > '$S/ctl'"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
