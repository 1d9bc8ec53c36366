#!/bin/bash
# The kernel releases a file as soon as the reply to its last read is in,
# while the thread that answered may still be finishing: release must wait
# for it, for every kind of file (a target's state and the root's version
# alike).  Many short open-read-close rounds, then a clean exit.
. "$(dirname "$0")/lib.sh"

crt_mount -o config=/dev/null || exit 1
mkdir "$MNT/c"
bad=0
for i in $(seq 300); do
    t head -n 1 "$MNT/c/state" >/dev/null 2>&1 || bad=$((bad + 1))
    t cat "$MNT/version" >/dev/null 2>&1 || bad=$((bad + 1))
done
is "$bad" 0 "600 reads of state and version, each on a fresh open"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
