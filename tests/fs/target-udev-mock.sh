#!/bin/bash
# Targets by USB identity through the daemon, with the adapters emulated:
# the daemon runs under umockdev-run with a device description of two
# identical FTDI FT232R adapters (0403:6001, serials A12345 and B67890) and
# a dual-port FT2232 (0403:6010); umockdev shows them in /sys and makes
# their tty nodes, each backed by a pty.  Emulated: sysfs and the nodes.
# Real: the daemon, libudev, the resolution, the open and the FUSE mount.
# Checked: serial= picks its adapter and the daemon has that node's pty
# open and never the other's; the bare ids are ENOTUNIQ naming both;
# interface= picks a port; a serial nobody has is ENOENT; `state` names the
# node.  (Adding an adapter at run time needs libumockdev's API: that is
# tests/unit/test-target-udev-mock's wait case.  umockdev answers the
# ioctls on its nodes itself, so isatty() is false there and crtfs applies
# no termios and takes no tty lock: the busy-tty checks are in
# target-udev.sh, on the real ttyS0.)
. "$(dirname "$0")/lib.sh"

if ! command -v umockdev-run >/dev/null; then
    fail "umockdev-run is missing (Debian: umockdev)"
    done_testing
fi
DESC=$CRT_TMP/adapters.umockdev
adapter() { # port vid pid serial tty... : one usb_device, an interface and tty per tty
    local port=$1 vid=$2 pid=$3 serial=$4 i=0 base=/devices/pci0000:00/0000:00:14.0/usb1
    shift 4
    printf 'P: %s/%s\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nA: idVendor=%s\nA: idProduct=%s\nA: serial=%s\n\n' \
        "$base" "$port" "$vid" "$pid" "$serial"
    for tty; do
        printf 'P: %s/%s/%s:1.%d\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\nA: bInterfaceNumber=%02x\n\n' \
            "$base" "$port" "$port" "$i" "$i"
        printf 'P: %s/%s/%s:1.%d/%s\nN: %s\nE: SUBSYSTEM=tty\nE: DEVNAME=/dev/%s\nE: MAJOR=188\nE: MINOR=%s\nA: dev=188:%s\n\n' \
            "$base" "$port" "$port" "$i" "$tty" "$tty" "$tty" "${tty#ttyUSB}" "${tty#ttyUSB}"
        i=$((i + 1))
    done
}
{
    adapter 1-1 0403 6001 A12345 ttyUSB0
    adapter 1-2 0403 6001 B67890 ttyUSB1
    adapter 1-3 0403 6010 D11111 ttyUSB2 ttyUSB3
} >"$DESC"
REAL=$CRTFS
WRAP=$CRT_TMP/crtfs-under-umockdev
# The preload library comes before a sanitizer runtime: let ASan accept it.
printf '#!/bin/sh\nASAN_OPTIONS="verify_asan_link_order=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" exec umockdev-run -d "%s" -- "%s" "$@"\n' \
    "$DESC" "$REAL" >"$WRAP"
chmod +x "$WRAP"
CRTFS=$WRAP
crt_mount -o config="$CRT_EMPTY" || exit 1
DAEMON=$(pgrep -P "$CRT_PID" -x crtfs)
ok "the daemon runs under umockdev-run" test -n "$DAEMON"
UDIR=$(tr '\0' '\n' <"/proc/$DAEMON/environ" | sed -n 's/^UMOCKDEV_DIR=//p')
ok "it has a testbed" test -d "$UDIR/dev"
pty_of() { readlink "$UDIR/dev/$1"; }
holds() { ls -l "/proc/$DAEMON/fd" | grep -q " -> $(pty_of "$1")\$"; }

D=$MNT/ftdi
mkdir "$D"
wr "$D/target" 'usb:0403:6001 serial=B67890 baud=115200 raw'
is "$?" 0 "serial= picks one of two identical adapters ($WERR)"
is "$(state_field "$D" presence)" "present (/dev/ttyUSB1, matched usb:0403:6001 serial=B67890)" \
    "presence: names its node"
ok "the daemon has ttyUSB1's line open" holds ttyUSB1
nok "and not the other adapter's" holds ttyUSB0

mkdir "$MNT/other"
wr "$MNT/other/target" 'usb:0403:6001 baud=115200'
like "$WERR" "Name not unique on network" "the bare ids match both: ENOTUNIQ"
like "$(state_field "$MNT/other" error)" \
    "^2 ttys match usb:0403:6001: /dev/ttyUSB0, /dev/ttyUSB1; say which with serial=" \
    "error: names both candidates"
nok "neither was opened for it" holds ttyUSB0
wr "$MNT/other/target" 'usb:0403:6001 serial=Z99999'
like "$(state_field "$MNT/other" error)" "^no tty matches usb:0403:6001 serial=Z99999" \
    "a serial nobody has: ENOENT in words"
wr "$MNT/other/target" 'usb:0403:6010 interface=1 9600 8N1'
like "$(state_field "$MNT/other" error)" "unknown option \"9600\" for a udev target" \
    "a bad tty option is still a parse error, in words"
wr "$MNT/other/target" 'usb:0403:6010 interface=1 baud=9600 8N1'
is "$(state_field "$MNT/other" presence)" "present (/dev/ttyUSB3, matched usb:0403:6010 interface=1)" \
    "interface= picks the second port of the FT2232"
ok "the daemon has ttyUSB3's line open" holds ttyUSB3
nok "and not the first port's" holds ttyUSB2
ok "clear the targets" t sh -c "echo > '$D/target' && echo > '$MNT/other/target'"
nok "the lines are closed" holds ttyUSB1
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
