#!/bin/bash
# `send` from the shell and from Python as users write it: a header with
# payload= waits for its payload, so bash's builtin printf (which may write the
# header and the payload separately) and a payload written in pieces make
# one request; Python's unbuffered binary file (the man page's example)
# does a round trip.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/s
mkdir "$D"
ok "an echo target" t sh -c "echo sim:echo > '$D/target'"

exec 3<>"$D/send"
printf 'write payload=%d\n' 5 >&3
printf '%s' hello >&3
IFS= read -r -t 5 reply <&3
is "$reply" "ok 5" "header, then payload: one request of 5 bytes"
printf 'write payload=11\n%s' "hello " >&3
printf '%s' world >&3
IFS= read -r -t 5 reply <&3
is "$reply" "ok 11" "a payload in two pieces"
printf 'read size=16\n' >&3
IFS= read -r -t 5 reply <&3
is "$reply" "ok 16" "read back what was written"
IFS= read -r -N 16 -t 5 data <&3
is "$data" "hellohello world" "the bytes, in order"
printf 'write payload=2\nabc' >&3 2>/dev/null
is "$?" 1 "more bytes than payload= is refused"
like "$(state_field "$D" error)" "(after a header with payload=2|where the request's payload= left 2)" "error: says so"
exec 3>&-

out=$(t python3 - "$D/send" <<'PY'
import sys
with open(sys.argv[1], "r+b", buffering=0) as f:   # the man page's example
    f.write(b"write payload=3\n")
    f.write(b"abc")
    print(f.readline().decode().strip())
    f.write(b"read size=3\n")
    print(f.readline().decode().strip(), f.read(3).decode())
PY
)
is "$out" "$(printf 'ok 3\nok 3 abc')" "Python: open(send, 'r+b', buffering=0), write, readline, read"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
