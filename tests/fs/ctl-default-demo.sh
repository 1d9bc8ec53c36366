#!/bin/bash
# The embedded default: without -o config= the mount has a `demo` target
# streaming sequence-numbered records from the simulator (the README's main
# command); --help and --version.
. "$(dirname "$0")/lib.sh"

out=$(t "$CRTFS" --version 2>&1)
is $? 0 "--version exits 0"
like "$out" '^crtfs [0-9]' "--version names crtfs"
out=$(t "$CRTFS" --help 2>&1)
is $? 0 "--help exits 0"
like "$out" 'config=FILE' "--help documents -o config="
t "$CRTFS" >/dev/null 2>&1
isnt $? 0 "no mount point: non-zero exit"

crt_mount || exit 1
is "$(ls "$MNT" | tr '\n' ' ')" "demo metrics reload version " "the root has demo, metrics, reload and version"
is "$(t cat "$MNT/version")" "$(t "$CRTFS" --version | head -1)" "version matches --version"
is "$(state_word "$MNT/demo")" streaming "demo streams at once (autostart)"
like "$(state_field "$MNT/demo" target)" '^sim:records' "on a sim:records target"
lines=$(t head -n 3 "$MNT/demo/data")
is $? 0 "head -n 3 demo/data succeeds"
like "$lines" $'^[0-9]{10} crtfs sim record[^\n]*\n[0-9]{10} crtfs sim record[^\n]*\n[0-9]{10} crtfs sim record' \
    "three numbered records"
n1=$(sed -n 1p <<<"$lines" | cut -c1-10)
n3=$(sed -n 3p <<<"$lines" | cut -c1-10)
is $((10#$n3 - 10#$n1)) 2 "consecutive numbers"
rec=$(t head -n 2 "$MNT/demo/records")
like "$rec" $'^[0-9]+ [0-9]+\\.[0-9]{9} ok [0-9]+\n[0-9]{10} crtfs sim record' "records: header then record"
ok "demo can be stopped" t sh -c "echo stop > '$MNT/demo/ctl'"
is "$(state_word "$MNT/demo")" stopped "stopped"
ok "and removed" rmdir "$MNT/demo"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"

# In the background (no -f): the daemon forks; fusermount3 -u ends it.
M2=$CRT_TMP/bg
mkdir "$M2"
t "$CRTFS" "$M2"
is $? 0 "crtfs without -f returns 0 once mounted"
ok "mounted" wait_for 5 _crt_is_mounted "$M2"
like "$(t head -n 1 "$M2/demo/data")" '^[0-9]{10} crtfs sim record' "the background daemon streams"
ok "fusermount3 -u" t fusermount3 -u "$M2"
nok "unmounted" _crt_is_mounted "$M2"
ok "the background daemon exits after the unmount" wait_for 10 sh -c "! pgrep -f -- ' $M2\$' >/dev/null"
done_testing
