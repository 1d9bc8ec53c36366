#!/bin/bash
# Every ctl command and state transition, with the state word on the first
# line of `state`; bad commands fail the write (echo's $? = 1) and set error:.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/c
ok "mkdir a target" mkdir "$D"
is "$(state_word "$D")" stopped "a new target is stopped"
is "$(state_field "$D" target)" none "with no target"
is "$(state_field "$D" error)" none "and no error"
like "$(t cat "$MNT/version")" '^crtfs [0-9]' "version names the package"

# head -n 1 is how an admin reads the state word.
out=$(t head -n 1 "$D/state" 2>&1)
st=$?
is "$st:$out" "0:stopped" "head -n 1 state prints the state word, no error (state must be seekable)"

t sh -c "echo start > '$D/ctl'" 2>/dev/null
is $? 1 "start without a target fails"
like "$(state_field "$D" error)" 'no target' "error: says no target is set"

ok "set a sim target" t sh -c "echo 'sim:records rate=1000' > '$D/target'"
is "$(state_word "$D")" stopped "setting a target in manual mode does not start"
ok "start" t sh -c "echo start > '$D/ctl'"
is "$(state_word "$D")" streaming "start -> streaming"
t sh -c "echo start > '$D/ctl'" 2>/dev/null
is $? 1 "start while streaming fails"
like "$(state_field "$D" error)" 'already streaming' "error: already streaming"
is "$(state_word "$D")" streaming "still streaming"

ok "suspend" t sh -c "echo suspend > '$D/ctl'"
is "$(state_word "$D")" suspended "suspend -> suspended"
t sh -c "echo suspend > '$D/ctl'" 2>/dev/null
is $? 1 "suspend twice fails"
like "$(state_field "$D" error)" 'already suspended' "error: already suspended"
ok "resume" t sh -c "echo resume > '$D/ctl'"
is "$(state_word "$D")" streaming "resume -> streaming"
t sh -c "echo resume > '$D/ctl'" 2>/dev/null
is $? 1 "resume while not suspended fails"
like "$(state_field "$D" error)" 'not suspended' "error: not suspended"

ok "stop" t sh -c "echo stop > '$D/ctl'"
like "$(state_word "$D")" '^(stopped|stopping)$' "stop -> stopping or stopped"
ok "stopping ends in stopped" wait_for 5 sh -c "[ \"\$(sed -n 1p '$D/state')\" = stopped ]"
ok "stop when stopped is harmless" t sh -c "echo stop > '$D/ctl'"
ok "start again" t sh -c "echo start > '$D/ctl'"
is "$(state_word "$D")" streaming "streaming again"
ok "stop-wait" t sh -c "echo stop-wait > '$D/ctl'"
is "$(state_word "$D")" stopped "stop-wait -> stopped at once"

# suspend/resume of a stopped target, and with purge_on_suspend
ok "suspend a stopped target" t sh -c "echo suspend > '$D/ctl'"
is "$(state_word "$D")" suspended "suspended"
ok "resume it" t sh -c "echo resume > '$D/ctl'"
is "$(state_word "$D")" stopped "resume of a stopped target -> stopped"
ok "purge_on_suspend=1" t sh -c "echo 1 > '$D/config/purge_on_suspend'"
ok "start" t sh -c "echo start > '$D/ctl'"
ok "suspend (purge)" t sh -c "echo suspend > '$D/ctl'"
is "$(state_word "$D")" suspended "purged suspend -> suspended"
t sh -c "echo start > '$D/ctl'" 2>/dev/null
is $? 1 "start while suspended with purge fails"
ok "resume (purge)" t sh -c "echo resume > '$D/ctl'"
is "$(state_word "$D")" streaming "resume restarts streaming"
ok "stop-wait" t sh -c "echo stop-wait > '$D/ctl'"

# bad commands: the write fails, nothing changes
for bad in bogus 'start now' '' 'STOP'; do
    t sh -c "printf '%s\n' '$bad' > '$D/ctl'" 2>/dev/null
    is $? 1 "ctl '$bad' fails"
done
like "$(state_field "$D" error)" 'unknown command' "error: unknown command"
is "$(state_word "$D")" stopped "still stopped"
# without newline, with blanks
ok "ctl without a newline" t sh -c "printf start > '$D/ctl'"
is "$(state_word "$D")" streaming "started"
ok "ctl with blanks" t sh -c "printf '  stop-wait  \n' > '$D/ctl'"
is "$(state_word "$D")" stopped "stopped"

# ctl is write-only, state read-only
nok "ctl cannot be read" t cat "$D/ctl" 2>/dev/null
nok "state cannot be written" t sh -c "echo x > '$D/state'" 2>/dev/null

ok "rmdir" rmdir "$D"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
