#!/bin/bash
# crtfs --check CONFIG says whether a file would mount (exit status, the
# reason); the root file `reload` and the metrics say what the last SIGHUP
# did; a reload that changes only keys that may change live (overflow,
# framing, payload, keep) leaves the stream running, its readers reading.
. "$(dirname "$0")/lib.sh"

GOOD=$CRT_TMP/good.conf BAD=$CRT_TMP/bad.conf
printf '[a]\ntarget=sim:records rate=100\nautostart=true\n[b]\ntarget=sim:zero\n' >"$GOOD"
printf '[a]\ntarget=sim:records\noverflow=sideways\n' >"$BAD"
out=$(t "$CRTFS" --check "$GOOD" 2>&1)
is "$?" 0 "--check of a good file exits 0"
is "$out" "$GOOD: ok, 2 targets: a, b" "and names its targets"
out=$(t "$CRTFS" --check "$BAD" 2>&1)
is "$?" 1 "--check of a bad file exits 1"
like "$out" "$BAD: .*overflow.*sideways" "and says which key and value"
out=$(t "$CRTFS" --check "$CRT_TMP/missing.conf" 2>&1)
is "$?" 1 "--check of a missing file exits 1"
like "$out" 'No such file or directory' "and says so"
t "$CRTFS" --check >/dev/null 2>&1
is "$?" 2 "--check without a file is a usage error (2)"

CONF=$CRT_TMP/crtfs.conf
printf '[a]\ntarget=sim:records rate=100\nautostart=true\n' >"$CONF"
crt_mount -o config="$CONF" || exit 1
is "$(t sed -n 1p "$MNT/reload")" none "reload: none before any SIGHUP"
like "$(t cat "$MNT/metrics")" 'crtfs_config_last_reload_successful 1' "the mount counts as applied"
ok "reload is not a target name" test ! -e "$MNT/reload/state"
t mkdir "$MNT/reload" 2>/dev/null
isnt "$?" 0 "mkdir reload is refused"

# A reader across a live-only change: it must not see end of file.
t cat "$MNT/a/data" >/dev/null &
reader=$!
ok "the reader is registered" wait_for 5 sh -c "[ \$(awk '\$1==\"readers\"{print \$2}' '$MNT/a/stats') = 1 ]"
printf '[a]\ntarget=sim:records rate=100\nautostart=true\noverflow=drop-oldest\nkeep=last:4\n' >"$CONF"
kill -HUP "$CRT_PID"
ok "reload says ok" wait_for 5 sh -c "[ \"\$(sed -n 1p '$MNT/reload')\" = ok ]"
is "$(t cat "$MNT/a/config/overflow")" drop-oldest "the new overflow applied"
is "$(t cat "$MNT/a/config/keep")" last:4 "the new keep applied"
is "$(state_word "$MNT/a")" streaming "still streaming"
sleep 0.3
ok "the reader is still reading (no end of file)" kill -0 "$reader"

# A key that cannot change live: the stream the file started restarts.
printf '[a]\ntarget=sim:records rate=100\nautostart=true\noverflow=drop-oldest\nkeep=last:4\nout_size=512\n' >"$CONF"
kill -HUP "$CRT_PID"
ok "the reader ends: the stream stopped for out_size" wait_for 5 sh -c "! kill -0 $reader 2>/dev/null"
is "$(t cat "$MNT/a/config/out_size")" 512 "out_size applied"
ok "and streams again" wait_for 5 sh -c "[ \"\$(sed -n 1p '$MNT/a/state')\" = streaming ]"

# A file that does not check out: nothing changes, and it shows.
printf '[a]\ntarget=sim:records rate=100\nautostart=true\nnosuchkey=1\n' >"$CONF"
kill -HUP "$CRT_PID"
ok "reload says failed" wait_for 5 sh -c "[ \"\$(sed -n 1p '$MNT/reload')\" = failed ]"
like "$(t sed -n 's/^result: //p' "$MNT/reload")" 'nosuchkey.*nothing changed' "result: names the key"
is "$(t sed -n 's/^file: //p' "$MNT/reload")" "$CONF" "file: names the file"
like "$(t sed -n 's/^time: //p' "$MNT/reload")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "time: when"
like "$(t cat "$MNT/metrics")" 'crtfs_config_last_reload_successful 0' "metrics: last reload failed"
is "$(state_word "$MNT/a")" streaming "the target streams on"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
