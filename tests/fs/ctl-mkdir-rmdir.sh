#!/bin/bash
# mkdir/rmdir of 100 targets (half of them streaming); names and refusals;
# the max_targets limit.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1

t0=$(date +%s%3N)
fails=0
for i in $(seq 1 100); do mkdir "$MNT/t$i" || fails=$((fails + 1)); done
is $fails 0 "mkdir of 100 targets"
is "$(ls "$MNT" | grep -c '^t[0-9]*$')" 100 "ls shows 100 directories"
is "$(ls "$MNT" | grep -c '^version$')" 1 "and version"
fails=0
for i in $(seq 1 2 100); do
    t sh -c "echo 'sim:records rate=100' > '$MNT/t$i/target' && echo start > '$MNT/t$i/ctl'" || fails=$((fails + 1))
done
is $fails 0 "50 of them streaming"
n=0
for i in $(seq 1 2 100); do [ "$(state_word "$MNT/t$i")" = streaming ] && n=$((n + 1)); done
is $n 50 "50 report streaming"
ok "a streaming target delivers" sh -c "timeout $T head -c 11 '$MNT/t99/data' >/dev/null"
fails=0
for i in $(seq 1 100); do t rmdir "$MNT/t$i" || fails=$((fails + 1)); done
is $fails 0 "rmdir of 100 targets, streaming or not"
is "$(ls "$MNT" | tr '\n' ' ')" "metrics reload version " "only metrics, reload and version are left"
ms=$(($(date +%s%3N) - t0))
ok "all of it took ${ms} ms (< 15 s)" test $ms -lt 15000

# again: names are reusable, inodes fresh
for i in $(seq 1 100); do mkdir "$MNT/t$i"; done
is "$(ls "$MNT" | wc -l)" 103 "100 made again"
for i in $(seq 1 100); do rmdir "$MNT/t$i"; done
is "$(ls "$MNT" | tr '\n' ' ')" "metrics reload version " "and removed again"

# refusals
mkdir "$MNT/x"
nok "mkdir of an existing name" mkdir "$MNT/x" 2>/dev/null
nok "mkdir version" mkdir "$MNT/version" 2>/dev/null
nok "mkdir inside a target" mkdir "$MNT/x/sub" 2>/dev/null
nok "mkdir inside config/" mkdir "$MNT/x/config/sub" 2>/dev/null
nok "a regular file in the root" t touch "$MNT/file" 2>/dev/null
nok "a file in a target" t touch "$MNT/x/newfile" 2>/dev/null
nok "unlink a target's file" rm -f "$MNT/x/data" 2>/dev/null
nok "rename a target" mv "$MNT/x" "$MNT/y" 2>/dev/null
nok "rmdir a missing target" rmdir "$MNT/nosuch" 2>/dev/null
nok "rmdir config/" rmdir "$MNT/x/config" 2>/dev/null
nok "write version" t sh -c "echo 2 > '$MNT/version'" 2>/dev/null
long=$(printf 'n%.0s' $(seq 1 300))
nok "a name over NAME_MAX" mkdir "$MNT/$long" 2>/dev/null
ok "a name with blanks and dots" mkdir "$MNT/my target.1"
ok "works like any other" t sh -c "echo sim:zero > '$MNT/my target.1/target'"
ok "rmdir it" rmdir "$MNT/my target.1"
ok "rmdir x" rmdir "$MNT/x"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"

# -o max_targets
crt_mount -o config="$CRT_EMPTY" -o max_targets=5 || exit 1
for i in 1 2 3 4 5; do mkdir "$MNT/m$i"; done
err=$(mkdir "$MNT/m6" 2>&1)
is $? 1 "max_targets=5: the sixth mkdir fails"
like "$err" "No space left" "with ENOSPC"
ok "after an rmdir there is room" sh -c "rmdir '$MNT/m1' && mkdir '$MNT/m6'"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
