#!/bin/bash
# Targets by identity through the daemon, against this machine's real sysfs
# and real libudev (nothing emulated): a udev: spec that matches exactly one
# tty (/dev/ttyS0, by the kernel's uevent properties) opens it and state's
# presence: names it; setting it again with other line settings lets the
# own lock go; another directory asking for the same tty by identity is told
# who has it; no match is ENOENT and several ENOTUNIQ, with words in error:;
# usb:0403:6001 finds no adapter here, and with `wait` it waits, saying why.
# The USB adapters themselves are emulated in tests/unit/udev-mock.sh.
. "$(dirname "$0")/lib.sh"

if [ ! -c /dev/ttyS0 ] || [ ! -e /sys/class/tty/ttyS0 ]; then
    fail "this scenario needs the real tty /dev/ttyS0 and its sysfs entry"
    done_testing
fi
crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/ident
mkdir "$D"

wr "$D/target" 'udev:DEVNAME=/dev/ttyS0 baud=9600 raw'
is "$?" 0 "a udev: spec matching one tty is accepted ($WERR)"
is "$(state_field "$D" presence)" "present (/dev/ttyS0, matched udev:DEVNAME=/dev/ttyS0)" \
    "presence: names the node it resolved to"
is "$(state_field "$D" target)" "udev:DEVNAME=/dev/ttyS0 baud=9600 raw" "target: is the spec as written"
ok "the daemon has /dev/ttyS0 open" sh -c "ls -l /proc/$CRT_PID/fd | grep -q ' -> /dev/ttyS0\$'"
wr "$D/target" 'udev:MAJOR=4,MINOR=64 baud=19200 raw'
is "$?" 0 "the same tty by another identity and other settings replaces its own lock ($WERR)"
is "$(state_field "$D" presence)" "present (/dev/ttyS0, matched udev:MAJOR=4,MINOR=64)" \
    "presence: follows"

mkdir "$MNT/other"
wr "$MNT/other/target" 'udev:DEVNAME=/dev/ttyS0'
isnt "$?" 0 "a second directory cannot take the same tty by identity"
like "$(state_field "$MNT/other" error)" "^udev:DEVNAME=/dev/ttyS0 is already the target of ident/ in this mount" \
    "and error: says which directory has it"

wr "$MNT/other/target" 'udev:DEVNAME=/dev/ttyNOSUCH9 baud=9600'
like "$WERR" "No such file or directory" "no match is ENOENT"
like "$(state_field "$MNT/other" error)" "no tty matches udev:DEVNAME=/dev/ttyNOSUCH9" \
    "error: says nothing matched"

wr "$MNT/other/target" 'udev:DEVNAME=/dev/tty1*'
like "$WERR" "Name not unique on network" "several matches are ENOTUNIQ"
like "$(state_field "$MNT/other" error)" \
    "11 ttys match udev:DEVNAME=/dev/tty1\\*: /dev/tty1, /dev/tty10, .*, /dev/tty19; say which" \
    "error: names the candidates"
nok "none of them was opened" sh -c "ls -l /proc/$CRT_PID/fd | grep -q ' -> /dev/tty1[0-9]*\$'"

wr "$MNT/other/target" 'usb:0403:6001 serial=A12345 baud=115200'
like "$(state_field "$MNT/other" error)" "no tty matches usb:0403:6001 serial=A12345" \
    "no FTDI adapter here: ENOENT in words"
wr "$MNT/other/target" 'usb:0403:6001 serial=A12345 baud=115200 wait'
is "$?" 0 "with wait the spec is accepted ($WERR)"
like "$(state_field "$MNT/other" presence)" \
    "^absent, waiting since .*: no tty matches usb:0403:6001 serial=A12345 \\(lost 0, back 0\\)\$" \
    "presence: says what it waits for"

ok "clear the targets" t sh -c "echo > '$D/target' && echo > '$MNT/other/target'"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
