#!/bin/bash
# The system's way: `mount -t fuse.crtfs CONFIG MOUNTPOINT -o ...` (through
# mount.fuse3, the source being the configuration file) and the matching
# fstab line (`mount -T FSTAB MOUNTPOINT`), both daemonized as the system
# mounts them; `umount` ends the daemon.  Also `crtfs CONFIG MOUNTPOINT` by
# hand, and the argument errors.  mount(8) finds the program by its name in
# /usr/local/sbin:...: the scenario links the crtfs under test there, unless
# another crtfs already is, and removes the link at the end.
. "$(dirname "$0")/lib.sh"

LINK=/usr/local/sbin/crtfs
if [ -e "$LINK" ] && [ "$(readlink -f "$LINK")" != "$CRTFS" ]; then
    crt_skip_all "$LINK is another crtfs; not replacing it"
fi
if [ ! -e "$LINK" ]; then
    mkdir -p /usr/local/sbin && ln -s "$CRTFS" "$LINK" && CRT_AT_EXIT+=("rm -f '$LINK'")
fi
CONF=$CRT_TMP/site.conf
printf '[meter]\ntarget=sim:records rate=20\nautostart=true\n' >"$CONF"
MP=$CRT_TMP/sys
mkdir -p "$MP"
CRT_AT_EXIT+=("umount -l '$MP' 2>/dev/null; pkill -TERM -f '(^|/)crtfs .*$MP( |$)' 2>/dev/null")

daemon_of() { pgrep -f "(^|/)crtfs .*$1( |$)" | head -n 1; }

# mount -t fuse.crtfs CONFIG MOUNTPOINT -o options
ok "mount -t fuse.crtfs CONFIG DIR -o allow_other,default_permissions" \
    t mount -t fuse.crtfs "$CONF" "$MP" -o allow_other,default_permissions
ok "it is mounted, as fuse.crtfs" sh -c "grep -q ' $MP fuse.crtfs ' /proc/mounts"
ok "the configuration's target streams" wait_for 5 sh -c "[ \"\$(sed -n 1p '$MP/meter/state')\" = streaming ]"
like "$(t head -c 60 "$MP/meter/data")" '0000000001 crtfs sim record' "and its data reads"
pid=$(daemon_of "$MP")
ok "the daemon runs in the background (pid ${pid:-none})" test -n "$pid"
ok "umount" t umount "$MP"
ok "umount ends the daemon" wait_for 5 sh -c "! kill -0 $pid 2>/dev/null"

# the fstab line, from a private fstab
printf '%s %s fuse.crtfs allow_other,default_permissions,nofail 0 0\n' "$CONF" "$MP" \
    >"$CRT_TMP/fstab"
ok "mount -T FSTAB DIR (the documented fstab line)" t mount -T "$CRT_TMP/fstab" "$MP"
ok "mounted from the fstab line" wait_for 5 test -d "$MP/meter"
pid=$(daemon_of "$MP")
ok "umount" t umount "$MP"
ok "the daemon ends" wait_for 5 sh -c "! kill -0 ${pid:-0} 2>/dev/null"

# by hand: crtfs CONFIG MOUNTPOINT, in the foreground
crt_mount "$CONF" || exit 1
ok "crtfs CONFIG MOUNTPOINT takes CONFIG as the configuration" test -d "$MNT/meter"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
err=$(t "$CRTFS" -f -o config="$CONF" "$CONF" "$CRT_TMP/x" 2>&1)
is $? 2 "CONFIG twice (-o config= and the argument): exit 2"
like "$err" "given twice" "and says so"
err=$(t "$CRTFS" -f a b c 2>&1)
is $? 2 "three arguments: exit 2"
like "$err" "too many arguments" "and says so"
done_testing
