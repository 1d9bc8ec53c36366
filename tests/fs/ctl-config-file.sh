#!/bin/bash
# The mount-time config file (-o config=FILE, a GKeyFile): groups become
# target directories with their config keys, target and autostart; a bad
# file fails the mount with a non-zero exit and a message naming the key.
. "$(dirname "$0")/lib.sh"

C=$CRT_TMP/good.conf
cat >"$C" <<'CONF'
# two targets
[gps]
target=sim:records rate=200
out_size=32
framing=stream
overflow=drop-oldest
payload=hello\nworld
autostart=true

[meter]
target = sim:counter
requests=2
out_count=8
mode=manual
autostart=false
CONF
crt_mount -o config="$C" || exit 1
is "$(ls "$MNT" | tr '\n' ' ')" "gps meter metrics reload version " "both groups became directories (and no demo)"
is "$(state_word "$MNT/gps")" streaming "gps: autostart=true streams"
is "$(state_field "$MNT/gps" target)" "sim:records rate=200" "gps: target set"
is "$(t cat "$MNT/gps/config/out_size")" 32 "gps: out_size 32"
is "$(t cat "$MNT/gps/config/framing")" stream "gps: framing stream"
is "$(t cat "$MNT/gps/config/overflow")" drop-oldest "gps: overflow drop-oldest"
is "$(t cat "$MNT/gps/config/payload")" "$(printf 'hello\nworld')" "gps: payload with an escaped newline"
like "$(t head -c 32 "$MNT/gps/data")" '^[0-9]{10} crtfs sim record' "gps: data flows"
is "$(state_word "$MNT/meter")" stopped "meter: autostart=false stays stopped"
is "$(state_field "$MNT/meter" target)" "sim:counter" "meter: target set (blanks around = trimmed)"
is "$(t cat "$MNT/meter/config/requests")" 2 "meter: requests 2"
is "$(t cat "$MNT/meter/config/out_count")" 8 "meter: out_count 8"
ok "meter: start" t sh -c "echo start > '$MNT/meter/ctl'"
is "$(stat_of "$MNT/meter" out_pool_size)" 8 "meter: the engine uses out_count 8"
ok "targets from the file can be removed" rmdir "$MNT/meter"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"

# A target that cannot be opened at mount time: its directory stays with the
# reason in state, the mount goes on, and the groups after it are loaded.
C2=$CRT_TMP/late.conf
printf '[first]\ntarget=%s/missing-device\n\n[second]\ntarget=sim:zero\nautostart=1\n' "$CRT_TMP" >"$C2"
crt_mount -o config="$C2" || exit 1
ok "first: directory exists" test -d "$MNT/first"
like "$(state_field "$MNT/first" error)" 'missing-device' "first: error: names the device"
ok "second: the group after it exists" test -d "$MNT/second"
is "$(state_word "$MNT/second" 2>/dev/null)" streaming "second: streams"
like "$(cat "$CRT_ERR")" 'missing-device' "the log names the device"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
# that warning is expected: keep it out of the final log check
: >"$CRT_ERR"

# Bad files: the mount fails, non-zero, and says what is wrong.
bad_mount() { # NAME CONTENT PATTERN
    local f=$CRT_TMP/$1.conf m=$CRT_TMP/badmnt err st
    printf '%s' "$2" >"$f"
    mkdir -p "$m"
    err=$(timeout -k 1 5 "$CRTFS" -f -o config="$f" "$m" 2>&1)
    st=$?
    if _crt_is_mounted "$m"; then fusermount3 -u -z "$m"; fi
    ok "$1: the mount fails (exit $st)" test $st -ne 0 -a $st -ne 124
    like "$err" "$3" "$1: the message says why"
}
bad_mount unknown-key $'[a]\ntarget=sim:zero\nout_sise=32\n' 'out_sise'
bad_mount bad-number $'[a]\nout_size=12x\n' 'out_size'
bad_mount bad-word $'[a]\nframing=packed\n' 'framing'
bad_mount bad-bool $'[a]\nautostart=maybe\n' 'autostart'
bad_mount bad-spec $'[a]\ntarget=sim:bogus\n' 'target'
bad_mount bad-combination-is-late $'[a]\nrequests=0\n' 'requests'
bad_mount not-a-keyfile $'this is not\na key file\n' '.'
bad_mount bad-group-name $'[version]\ntarget=sim:zero\n' 'version'
err=$(timeout -k 1 5 "$CRTFS" -f -o config="$CRT_TMP/no-such.conf" "$CRT_TMP/badmnt" 2>&1)
st=$?
ok "missing file: the mount fails (exit $st)" test $st -ne 0 -a $st -ne 124
like "$err" 'no-such.conf' "missing file: the message names the file"
nok "nothing stayed mounted" _crt_is_mounted "$CRT_TMP/badmnt"
done_testing
