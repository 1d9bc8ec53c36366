#!/bin/bash
# What an admin reads to find out what is wrong: errnos that say what
# happened (a missing config key is ENOENT, reading a directory with no
# target fails at once with EDESTADDRREQ instead of waiting forever),
# `presence:` and crtfs_present following the target for kinds without
# `wait`, and `error:` with its time, cleared once the target streams again.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/diag
mkdir "$D"

# A config file that does not exist: ENOENT, not EPERM.
wr "$D/config/no_such_key" 5
is "$?" 1 "writing config/no_such_key fails"
like "$WERR" 'No such file or directory' "with ENOENT (No such file or directory)"
like "$(state_field "$D" error)" '^config/no_such_key: no such key' "error: names the key"
ok "no file was made" test ! -e "$D/config/no_such_key"
wr "$D/newfile" x
like "$WERR" 'Operation not permitted' "a new file outside config/ is still EPERM"

# Reading with no target set: an error at once, with words in state.
out=$(t cat "$D/data" 2>&1)
st=$?
isnt "$st" 124 "cat data with no target does not block"
is "$st" 1 "cat data with no target fails"
like "$out" 'Destination address required' "with EDESTADDRREQ"
like "$(state_field "$D" error)" '^read: no target is set' "error: says why"
like "$(state_field "$D" error_at)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+[+-][0-9]{2}:[0-9]{2}$' \
    "error_at: is an ISO 8601 time with its zone"

# A file target: there, then gone.
F=$CRT_TMP/dev
printf 'one\ntwo\n' >"$F"
ok "set a file target" t sh -c "echo '$F' > '$D/target'"
is "$(state_field "$D" error)" none "a new target clears the error"
is "$(state_field "$D" error_at)" none "and its time"
is "$(state_field "$D" presence)" present "presence: present"
like "$(t cat "$MNT/metrics")" 'crtfs_present\{target="diag"\} 1' "crtfs_present 1"
ok "start" t sh -c "echo start > '$D/ctl'"
is "$(t cat "$D/data")" "$(printf 'one\ntwo')" "the file's bytes, then end of file"
ok "the stream ended by itself" wait_for 5 sh -c "[ \"\$(sed -n 1p '$D/state')\" = stopped ]"
like "$(state_field "$D" presence)" '^absent \(stream ended: end of file' \
    "presence: absent once the stream ended by itself"
like "$(t cat "$MNT/metrics")" 'crtfs_present\{target="diag"\} 0' "crtfs_present 0"
rm -f "$F"
t bash -c "echo start > '$D/ctl'" 2>"$CRT_TMP/start.err"
is "$?" 1 "start after the file is gone fails"
like "$(cat "$CRT_TMP/start.err")" 'No such file or directory' "with ENOENT"
like "$(state_field "$D" presence)" "^absent \\(cannot open $F: No such file or directory" \
    "presence: says why start could not open it"
like "$(t cat "$MNT/metrics")" 'crtfs_present\{target="diag"\} 0' "crtfs_present still 0"
printf 'three\n' >"$F"
ok "start once it is back" t sh -c "echo start > '$D/ctl'"
like "$(state_field "$D" error)" '^(none|stream ended: end of file .*)$' \
    "the open error cleared: the target streamed again (and may have ended already)"
is "$(t cat "$D/data")" three "its bytes"
ok "clear the target" t sh -c "echo > '$D/target'"
is "$(state_field "$D" presence)" none "no target: presence none"

# The same tty in a second directory: the refusal names the directory
# that holds it and what to do.
t python3 -c 'import os, pty, sys, time
m, s = pty.openpty()
print(os.ttyname(s), flush=True)
time.sleep(60)' >"$CRT_TMP/pty" &
ptyholder=$!
ok "a pty" wait_for 5 test -s "$CRT_TMP/pty"
P=$(cat "$CRT_TMP/pty")
mkdir "$MNT/first" "$MNT/second"
ok "the first directory takes the tty" t sh -c "echo '$P raw' > '$MNT/first/target'"
t bash -c "echo '$P raw' > '$MNT/second/target'" 2>"$CRT_TMP/busy.err"
is "$?" 1 "the second directory is refused"
like "$(cat "$CRT_TMP/busy.err")" 'Device or resource busy' "with EBUSY"
like "$(state_field "$MNT/second" error)" "^$P raw is already the target of first/ in this mount: read first/data instead" \
    "error: names the directory that holds it and suggests reading its data"
like "$(state_field "$MNT/second" error)" 'add "shared"' "and the way to open it twice"
ok "release it" t sh -c "echo > '$MNT/first/target'"
ok "then the second may have it" t sh -c "echo '$P raw' > '$MNT/second/target'"
ok "release it again" t sh -c "echo > '$MNT/second/target'"
kill "$ptyholder" 2>/dev/null
wait "$ptyholder" 2>/dev/null

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
