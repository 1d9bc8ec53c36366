#!/bin/bash
# Where the daemon's log goes once it runs in the background (-o log=):
# auto picks the systemd journal when its socket is there (native protocol:
# MESSAGE, PRIORITY, SYSLOG_IDENTIFIER), a file gets timestamped lines and
# is opened again at SIGHUP (logrotate), and with neither a journal nor
# /dev/log the mount says the log would be lost.  Runs in a private mount
# namespace (unshare -m) with a /run and /dev of its own, so the system's
# journal and syslog are not touched.
. "$(dirname "$0")/lib.sh"

if ! unshare -m true 2>/dev/null; then
    crt_skip_all "unshare -m is not allowed here"
fi
cat >"$CRT_TMP/inner.sh" <<'INNER'
set -u
crtfs=$1 tmp=$2
mnt=$tmp/lmnt dev=$tmp/dev
mkdir -p "$mnt"
. "$tmp/devices.sh"
crt_bind_devices "$dev" || exit 1
mount --rbind "$dev" /dev || exit 1            # a /dev without /dev/log
mount -t tmpfs crtfs-test-run /run || exit 1   # a /run without a journal
printf '[bad]\ntarget=sim:records fail=1 errno=EIO fatal\n[ok]\ntarget=sim:records rate=5\nautostart=true\n' \
    >"$tmp/l.conf"
events() { # make a few log lines: errors of `bad`
    for _ in 1 2; do echo start >"$mnt/bad/ctl" 2>/dev/null; sleep 0.1; done
}
wait_dir() { for _ in $(seq 100); do [ -d "$mnt/bad" ] && return 0; sleep 0.05; done; return 1; }

# 1. Nowhere to log: the mount says so.
timeout 10 "$crtfs" -o config="$tmp/l.conf" "$mnt" 2>"$tmp/nowhere.err" || exit 1
wait_dir || exit 1
timeout 10 fusermount3 -u "$mnt"
sleep 0.5

# 2. A file, and SIGHUP after logrotate moved it.
timeout 10 "$crtfs" -o config="$tmp/l.conf",log="$tmp/crtfs.log" "$mnt" || exit 1
wait_dir || exit 1
events
mv "$tmp/crtfs.log" "$tmp/crtfs.log.1"
pid=$(sed -n 's/.* crtfs\[\([0-9]*\)\]: .*/\1/p' "$tmp/crtfs.log.1" | head -n 1)
kill -HUP "$pid"
sleep 0.3
events
timeout 10 fusermount3 -u "$mnt"
sleep 0.5

# 3. The journal: a socket where journald's is.
mkdir -p /run/systemd/journal
python3 - /run/systemd/journal/socket "$tmp/journal.txt" <<'PY' &
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(15)
with open(sys.argv[2], "w", buffering=1) as out:
    try:
        while True:
            d = s.recv(65536)
            fields = {}
            while d:
                nl = d.index(b"\n")
                line, d = d[:nl], d[nl + 1:]
                if b"=" in line:
                    k, v = line.split(b"=", 1)
                else:  # KEY\n, 64-bit little-endian length, value, \n
                    k, (n,) = line, struct.unpack("<Q", d[:8])
                    v, d = d[8:8 + n], d[8 + n + 1:]
                fields[k.decode()] = v.decode(errors="replace")
            out.write("%s|%s|%s\n" % (fields.get("PRIORITY"), fields.get("SYSLOG_IDENTIFIER"),
                                       fields.get("MESSAGE", "").replace("\n", "\\n")))
    except socket.timeout:
        pass
PY
listener=$!
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
timeout 10 "$crtfs" -o config="$tmp/l.conf" "$mnt" 2>"$tmp/journal.err" || exit 1
wait_dir || exit 1
events
timeout 10 fusermount3 -u "$mnt"
sleep 1
kill $listener 2>/dev/null
wait
INNER
declare -f crt_bind_devices >"$CRT_TMP/devices.sh"
t unshare -m bash "$CRT_TMP/inner.sh" "$CRTFS" "$CRT_TMP" >"$CRT_TMP/inner.out" 2>&1
is $? 0 "the daemonized runs went through" || diag "$(cat "$CRT_TMP/inner.out")"

like "$(cat "$CRT_TMP/nowhere.err")" 'no systemd journal .* and no syslog .*: the daemon.s log goes nowhere; mount with -o log=FILE' \
    "with neither journal nor /dev/log the mount warns"

like "$(cat "$CRT_TMP/crtfs.log.1")" '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+[+-][0-9]{2}:[0-9]{2} crtfs\[[0-9]+\]: crtfs-target notice: ok: streaming' \
    "log=FILE: timestamped lines with pid, domain and level"
like "$(cat "$CRT_TMP/crtfs.log.1")" 'crtfs-target warning: bad: stream ended: Input/output error' "errors at warning"
ok "SIGHUP opened the file again after it was moved" test -s "$CRT_TMP/crtfs.log"
like "$(cat "$CRT_TMP/crtfs.log")" 'bad: stream ended: Input/output error' "and later lines go there"

like "$(cat "$CRT_TMP/journal.txt")" '5\|crtfs\|ok: streaming' "auto: the journal, a state change at priority 5 (notice)"
like "$(cat "$CRT_TMP/journal.txt")" '4\|crtfs\|bad: stream ended: Input/output error' "an error at priority 4 (warning)"
is "$(cat "$CRT_TMP/journal.err")" "" "with a journal the mount has nothing to warn about"
done_testing
