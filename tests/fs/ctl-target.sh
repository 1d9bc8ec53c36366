#!/bin/bash
# Set and clear the target; malformed specs fail the write and change
# nothing; automatic mode starts on set and stops on clear.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/tg
mkdir "$D"

is "$(t cat "$D/target")" "" "target reads empty when none is set"
ok "set sim:counter" t sh -c "echo sim:counter > '$D/target'"
is "$(t cat "$D/target")" "sim:counter" "target reads back the spec"
is "$(state_field "$D" target)" "sim:counter" "state shows target:"
ok "set without a newline, with blanks" t sh -c "printf '  sim:records size=16  ' > '$D/target'"
is "$(t cat "$D/target")" "sim:records size=16" "the spec is trimmed"

# Malformed or unopenable specs: $? = 1, error: set, the old target stays.
for bad in 'sim:bogus' 'sim:records rate=abc' 'tcp:nohost' 'unix:' 'exec:' 'foo:bar' \
    'relative/path' '/nonexistent/crtfs-test'; do
    t sh -c "echo '$bad' > '$D/target'" 2>/dev/null
    is $? 1 "target '$bad' is refused"
    isnt "$(state_field "$D" error)" none "error: explains '$bad'"
    is "$(t cat "$D/target")" "sim:records size=16" "the previous target stays after '$bad'"
done
like "$(state_field "$D" error)" 'nonexistent/crtfs-test' "error: names the path"

ok "an open that writes nothing" t sh -c ": > '$D/target'"
is "$(t cat "$D/target")" "sim:records size=16" "... changes nothing"
ok "clear with an empty line" t sh -c "echo > '$D/target'"
is "$(t cat "$D/target")" "" "target is empty"
is "$(state_field "$D" target)" none "state target: none"
ok "clearing twice is fine" t sh -c "echo > '$D/target'"

# Manual mode: set does not start; a new target while streaming stops.
ok "set" t sh -c "echo sim:counter > '$D/target'"
ok "start" t sh -c "echo start > '$D/ctl'"
is "$(state_word "$D")" streaming "streaming"
ok "replace the target while streaming" t sh -c "echo 'sim:zero' > '$D/target'"
is "$(t cat "$D/target")" "sim:zero" "new target in place"
ok "start on the new target" t sh -c "echo start > '$D/ctl'"
is "$(state_word "$D")" streaming "streaming on the new target"
ok "clear while streaming" t sh -c "echo > '$D/target'"
is "$(state_word "$D")" stopped "clearing stops streaming"

# Automatic mode: the seed's io-target set starts, clear stops.
ok "drop the buffers kept from sim:zero" crt_drain "$D"
ok "mode automatic" t sh -c "echo automatic > '$D/config/mode'"
ok "set in automatic mode" t sh -c "echo 'sim:records rate=100' > '$D/target'"
ok "automatic mode streams on set" wait_for 5 sh -c "[ \"\$(sed -n 1p '$D/state')\" = streaming ]"
like "$(t head -c 11 "$D/data")" '^[0-9]{10} $' "data flows"
ok "clear in automatic mode" t sh -c "echo > '$D/target'"
is "$(state_word "$D")" stopped "automatic mode stops on clear"
is "$(state_field "$D" mode)" automatic "state shows mode:"

# A regular file as a target: read to its end, then end of file.
printf 'hello from a file\n' >"$CRT_TMP/plain"
ok "drop the records kept for the next reader" crt_drain "$D"
ok "mode manual" t sh -c "echo manual > '$D/config/mode'"
ok "set a regular file" t sh -c "echo '$CRT_TMP/plain' > '$D/target'"
ok "start" t sh -c "echo start > '$D/ctl'"
is "$(t cat "$D/data")" "hello from a file" "data has the file's content, then end of file"
ok "the stream ended by itself" wait_for 5 sh -c "[ \"\$(sed -n 1p '$D/state')\" = stopped ]"
like "$(state_field "$D" error)" 'end of file' "error: says the stream ended"

ok "rmdir with a target set" rmdir "$D"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
