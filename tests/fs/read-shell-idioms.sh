#!/bin/bash
# The ways scripts and programs read a stream lose nothing: bash's `read`
# (which reads a block and seeks back over what it did not take), head, sed
# and grep -m handing the rest of a file descriptor to the next command, awk,
# Python, Node's readline, C stdio and `tail -n +1 -f`.  Each client reads a
# burst of many lines per buffer from a FIFO target until `stop` ends the
# stream, in record and stream framing, with 4 KiB and 64-byte buffers, and
# must put out every line once, in order, byte for byte.  Then `records`
# under the same idioms against a plain reader of the same stream, a seek
# back over large (zero-copy) buffers, and the errno of a read outside the
# retained window.
. "$(dirname "$0")/lib.sh"

: "${CRT_HELPERS:=$(dirname "$CRTFS")/tests/fs}"
FGETS=$CRT_HELPERS/fgets-lines
[ -x "$FGETS" ] || { echo "Bail out! no $FGETS (make check builds it)"; exit 1; }
command -v node >/dev/null || crt_skip_all "node is not installed (Debian: nodejs)"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/t
F=$CRT_TMP/fifo
mkfifo "$F"
mkdir "$D"
ok "set a FIFO target" wr "$D/target" "$F"

# 2500 lines of 3 to 45 bytes: many lines per 4 KiB buffer, and lines that
# straddle 64-byte buffers.
WANT=$CRT_TMP/want
awk 'BEGIN { for (i = 1; i <= 2500; i++) { s = i ":"; for (j = 0; j < i % 41; j++) s = s "x"; print s } }' >"$WANT"
WANT_BYTES=$(wc -c <"$WANT")

readers_are() { [ "$(stat_of "$D" readers)" = "$1" ]; }
# bytes_read counts over every stream of the directory: mark where a
# stream starts, then wait until the engine has read the burst.
mark_read() { READ_BASE=$(stat_of "$D" bytes_read); }
read_all() { [ "$(stat_of "$D" bytes_read)" = $((READ_BASE + WANT_BYTES)) ]; }

# stream_to_client NAME OUT CMD...: start the stream, run the client (it gets
# the data file as $1) in the background, write the burst once it reads,
# stop once the engine has read the burst, and wait for the client.
stream_to_client() {
    local name=$1 out=$2
    shift 2
    mark_read
    wr "$D/ctl" start || { fail "$name: start ($WERR)"; return 1; }
    t "$@" "$D/data" >"$out" 2>"$out.err" &
    local client=$!
    wait_for 5 readers_are 1 || diag "$name: readers $(stat_of "$D" readers), not 1"
    t sh -c "cat '$WANT' > '$F'" || fail "$name: write the burst"
    wait_for 10 read_all || diag "$name: the engine read $(($(stat_of "$D" bytes_read) - READ_BASE)) of $WANT_BYTES bytes"
    wr "$D/ctl" stop
    wait "$client"
    CLIENT_STATUS=$?
    wait_for 5 readers_are 0 || diag "$name: readers $(stat_of "$D" readers) after the client"
}

# check_client NAME CMD...: the client's output is the burst, exactly.
check_client() {
    local name=$1 out=$CRT_TMP/out
    shift
    stream_to_client "$name" "$out" "$@"
    if [ "$CLIENT_STATUS" = 0 ] && cmp -s "$out" "$WANT"; then
        pass "$name"
    else
        fail "$name"
        diag "exit $CLIENT_STATUS, $(wc -l <"$out") of 2500 lines, $(wc -c <"$out") of $WANT_BYTES bytes"
        diag "$(cmp "$out" "$WANT" 2>&1 | head -n 2)"
        diag "$(head -c 300 "$out.err")"
    fi
}

READ_R='while read -r line; do printf "%s\n" "$line"; done < "$1"'
READ_N7='while IFS= read -r -N 7 c || [ -n "$c" ]; do printf "%s" "$c"; done < "$1"'
HEAD_HEAD_CAT='{ head -n 3; head -n 4; cat; } < "$1"'
SED_CAT='{ sed -u 2q; cat; } < "$1"'
GREP_CAT='{ grep -m 2 :; cat; } < "$1"'
AWK='awk "{ print }" "$1"'
PYTHON='python3 -c "import sys
for line in open(sys.argv[1]):
    sys.stdout.write(line)" "$1"'
NODE='node -e "const rl = require(\"readline\").createInterface({
    input: require(\"fs\").createReadStream(process.argv[1]), crlfDelay: Infinity });
rl.on(\"line\", (l) => process.stdout.write(l + \"\\n\"));" "$1"'
FGETS_ALL='"$FGETS" < "$1"'
FGETS_HANDOFF='{ "$FGETS" 3; "$FGETS" 5; cat; } < "$1"'
export FGETS

for framing in record stream; do
    for size in 4096 64; do
        ok "framing=$framing out_size=$size" sh -c "echo $framing > '$D/config/framing' && echo $size > '$D/config/out_size'"
        cfg="$framing/$size"
        check_client "$cfg: while read -r" bash -c "$READ_R" sh
        check_client "$cfg: while IFS= read -r -N 7" bash -c "$READ_N7" sh
        check_client "$cfg: { head -n 3; head -n 4; cat; }" bash -c "$HEAD_HEAD_CAT" sh
        check_client "$cfg: { sed -u 2q; cat; }" bash -c "$SED_CAT" sh
        check_client "$cfg: { grep -m 2 :; cat; }" bash -c "$GREP_CAT" sh
        check_client "$cfg: awk" bash -c "$AWK" sh
        check_client "$cfg: python3 for line in open()" bash -c "$PYTHON" sh
        check_client "$cfg: node readline over fs.createReadStream" bash -c "$NODE" sh
        check_client "$cfg: C fgets on a FILE *" bash -c "$FGETS_ALL" sh
        check_client "$cfg: { fgets 3 lines; fflush(stdin); ...; cat; }" bash -c "$FGETS_HANDOFF" sh

        # tail -f never ends by itself: all of the burst, then nothing
        # more (a second poll round later), then it is stopped.
        mark_read
        wr "$D/ctl" start
        # timeout itself, not the t function: $! must be the process that
        # passes the kill on to tail.
        timeout -k 2 "$T" tail -n +1 -f "$D/data" >"$CRT_TMP/tail" 2>"$CRT_TMP/tail.err" &
        tailpid=$!
        wait_for 5 readers_are 1
        t sh -c "cat '$WANT' > '$F'"
        wait_for 10 read_all
        wr "$D/ctl" stop
        wait_for 10 sh -c "[ \$(wc -c < '$CRT_TMP/tail') -ge $WANT_BYTES ]"
        sleep 1.2
        kill "$tailpid" 2>/dev/null
        wait "$tailpid" 2>/dev/null
        ok "$cfg: tail is gone" wait_for 5 readers_are 0
        ok "$cfg: tail -n +1 -f" cmp -s "$CRT_TMP/tail" "$WANT"
    done
done

# `records`: a reader using the idioms sees the same bytes, header lines
# included, as a plain reader of the same stream (a broadcast).
ok "records: framing=stream out_size=256" sh -c "echo stream > '$D/config/framing' && echo 256 > '$D/config/out_size'"
mark_read
wr "$D/ctl" start
t cat "$D/records" >"$CRT_TMP/plain" &
plain=$!
t bash -c "$HEAD_HEAD_CAT" sh "$D/records" >"$CRT_TMP/idiom1" &
idiom1=$!
t bash -c "$READ_R" sh "$D/records" >"$CRT_TMP/idiom2" &
idiom2=$!
wait_for 5 readers_are 3
t sh -c "cat '$WANT' > '$F'"
wait_for 10 read_all
wr "$D/ctl" stop
wait $plain $idiom1 $idiom2
ok "records: the engine read the burst" read_all
ok "records: { head; head; cat; } = cat" cmp -s "$CRT_TMP/idiom1" "$CRT_TMP/plain"
ok "records: while read -r = cat" cmp -s "$CRT_TMP/idiom2" "$CRT_TMP/plain"
like "$(head -n 1 "$CRT_TMP/plain")" '^[0-9]+ [0-9]+\.[0-9]{9} ok [0-9]+$' "records starts with a header line"

# Large buffers go out zero-copy; a seek back replays them all the same.
# Offsets outside the window are ESPIPE with a reason in `state`, and the
# stream goes on from the position, losing nothing.
ok "zero-copy: framing=stream out_size=65536" sh -c "echo stream > '$D/config/framing' && echo 65536 > '$D/config/out_size'"
wr "$D/ctl" start
seq 1 200000 >"$CRT_TMP/big"
t python3 - "$D/data" "$CRT_TMP/big" "$F" "$D/state" <<'EOF' >"$CRT_TMP/py.out" 2>&1
import errno, os, sys, threading
data, big, fifo, state = sys.argv[1:]
want = open(big, "rb").read()
fd = os.open(data, os.O_RDONLY)
threading.Thread(target=lambda: open(fifo, "wb").write(want)).start()
def check(cond, what):
    print(("ok" if cond else "FAIL") + " " + what)
got = b""
while len(got) < 300000:
    got += os.read(fd, 131072)
check(got == want[:len(got)], "large reads: the bytes in order")
os.lseek(fd, -30000, os.SEEK_CUR)
again = os.read(fd, 131072)
check(again == got[-30000:], "a seek back 30000 bytes replays them")
pos = os.lseek(fd, 0, os.SEEK_CUR)
check(pos == len(got), "the offset is back at the position")
for off, what in ((0, "before the window"), (pos + 1, "after the position")):
    os.lseek(fd, off, os.SEEK_SET)
    try:
        os.read(fd, 4096)
        check(False, "a read %s fails" % what)
    except OSError as e:
        check(e.errno == errno.ESPIPE, "a read %s: ESPIPE (got %s)" % (what, e.strerror))
err = [l for l in open(state).read().splitlines() if l.startswith("error:")]
check(len(err) == 1 and "retained window" in err[0], "state says why: %s" % err)
os.lseek(fd, pos, os.SEEK_SET)
while len(got) < len(want):
    chunk = os.read(fd, 65536)
    if not chunk:
        break
    got += chunk
check(got == want, "after the failed reads the stream goes on, every byte once")
EOF
py_status=$?
wr "$D/ctl" stop
while IFS= read -r line; do
    case "$line" in
    ok\ *) pass "zero-copy: ${line#ok }" ;;
    *) fail "zero-copy: $line" ;;
    esac
done <"$CRT_TMP/py.out"
is "$py_status" 0 "zero-copy: the python client ran to its end"

ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
