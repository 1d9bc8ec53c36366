#!/bin/bash
# crtfsctl against a real mount: status as a table and as JSON (parsed by
# jq and by Python's json), start/stop/restart with the reason of a
# failure, send with the reply's bytes and its exit status, follow across
# streams, check; and its bash completion names commands and targets.
. "$(dirname "$0")/lib.sh"

CTL=$(dirname "$CRTFS")/crtfsctl
[ -x "$CTL" ] || CTL=$(command -v crtfsctl)
crt_mount -o config="$CRT_EMPTY" || exit 1
mkdir "$MNT/gps" "$MNT/echo" "$MNT/idle"
ok "targets" t sh -c "echo 'sim:records rate=200' > '$MNT/gps/target'; echo sim:echo > '$MNT/echo/target'"
ctl() { t "$CTL" -m "$MNT" "$@"; }

ok "start gps" ctl start gps
is "$(state_word "$MNT/gps")" streaming "it streams"
out=$(ctl status)
is "$?" 0 "status exits 0"
like "$(echo "$out" | sed -n 1p)" '^NAME +STATE +PRESENCE +READERS +BYTES/S +ERROR' "a header line"
like "$out" $'\ngps +streaming +present +0 +[1-9][0-9]* ' "gps streams, present, at a rate above 0"
like "$out" $'\nidle +stopped +none ' "idle has no target"
json=$(ctl status --json)
is "$(printf '%s' "$json" | jq -r '.[] | select(.name == "gps") | .state')" streaming "jq reads the JSON"
is "$(printf '%s' "$json" | python3 -c 'import json, sys; print(sorted(d["name"] for d in json.load(sys.stdin)))')" \
    "['echo', 'gps', 'idle']" "so does Python's json"
is "$(ctl status --json idle | jq -r '.[0].presence')" none "status NAME limits it"

"$CTL" -m "$MNT" start idle 2>"$CRT_TMP/err"
is "$?" 1 "start without a target exits 1"
like "$(cat "$CRT_TMP/err")" 'idle start: Destination address required: start: no target is set' \
    "with the errno and the reason from state"
ok "restart gps" ctl restart gps
is "$(state_word "$MNT/gps")" streaming "streaming again"
ok "stop gps" ctl stop gps
is "$(state_word "$MNT/gps")" stopped "stopped"

ok "send a write" ctl send echo write hello
is "$(ctl send echo "read size=5")" hello "send read prints the reply's bytes"
printf 'from stdin' | t "$CTL" -m "$MNT" send echo write - >/dev/null
is "$?" 0 "a payload from standard input"
is "$(ctl send echo "read size=10")" "from stdin" "arrives whole"
"$CTL" -m "$MNT" send echo "read size=4 timeout=100" 2>"$CRT_TMP/err" >/dev/null
is "$?" 1 "a reply with an error exits 1"
like "$(cat "$CRT_TMP/err")" 'ETIMEDOUT' "and says which"
"$CTL" -m "$MNT" send echo "bogus" 2>"$CRT_TMP/err"
is "$?" 1 "a bad header exits 1"

ok "gps stops after 3 records a stream" t sh -c "echo 'sim:records limit=3 rate=100' > '$MNT/gps/target'"
timeout -k 2 "$T" "$CTL" -m "$MNT" follow gps >"$CRT_TMP/follow" &
fp=$!
ok "its reader is there" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$MNT/gps/stats') = 1 ]"
ok "a stream" ctl start gps
ok "three records" wait_for 5 sh -c "[ \$(wc -l < '$CRT_TMP/follow') -ge 3 ]"
ok "the stream ended" wait_for 5 sh -c "[ \"\$(sed -n 1p '$MNT/gps/state')\" = stopped ]"
ok "back for the next stream" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$MNT/gps/stats') = 1 ]"
ok "another stream" ctl start gps
ok "three more" wait_for 5 sh -c "[ \$(wc -l < '$CRT_TMP/follow') -ge 6 ]"
kill "$fp"
wait "$fp" 2>/dev/null
like "$(sed -n 1p "$CRT_TMP/follow")" '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}\.[0-9]{3} 1 ok [0-9]+: 0000000001 crtfs sim record' \
    "follow: time, seq, status, length, text"

printf '[a]\ntarget=sim:zero\n' >"$CRT_TMP/good.conf"
is "$(t "$CTL" check "$CRT_TMP/good.conf")" "$CRT_TMP/good.conf: ok, 1 target: a" "check runs crtfs --check"
"$CTL" bogus 2>/dev/null
is "$?" 2 "a usage error exits 2"

# bash completion
comp() { # comp WORDS...: what completes the last word
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _crtfsctl; echo "${COMPREPLY[*]}"' \
        comp "$CRT_SRCDIR/doc/bash-completion/crtfsctl" "$@"
}
is "$(comp crtfsctl -m "$MNT" st)" "status start stop" "completion: commands"
is "$(comp crtfsctl -m "$MNT" restart g)" "gps" "completion: target names"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
