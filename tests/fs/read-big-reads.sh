#!/bin/bash
# Reads larger than 1 MiB: dd bs=4M gets data (whole blocks with
# iflag=fullblock), in both framings, and the bytes are the stream's.
. "$(dirname "$0")/lib.sh"

crt_mount -o config="$CRT_EMPTY" || exit 1
D=$MNT/big
mkdir "$D"
ok "out_size 1 MiB" t sh -c "echo 1048576 > '$D/config/out_size'"
ok "sim:counter" t sh -c "echo sim:counter > '$D/target'"
ok "start" t sh -c "echo start > '$D/ctl'"

for fr in record stream; do
    ok "framing $fr" t sh -c "echo $fr > '$D/config/framing'"
    t dd if="$D/data" of="$CRT_TMP/blk" bs=4M count=1 iflag=fullblock status=none
    is $? 0 "$fr: dd bs=4M count=1 iflag=fullblock succeeds"
    is "$(stat -c %s "$CRT_TMP/blk")" 4194304 "$fr: 4 MiB arrived"
    # consecutive little-endian uint64 counters
    ok "$fr: the bytes are consecutive counters" python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
c = struct.unpack("<%dQ" % (len(b) // 8), b)
sys.exit(0 if all(c[i + 1] == c[i] + 1 for i in range(len(c) - 1)) else 1)' "$CRT_TMP/blk"
    t dd if="$D/data" of="$CRT_TMP/one" bs=4M count=1 status=none
    is $? 0 "$fr: a single 4 MiB read succeeds"
    n=$(stat -c %s "$CRT_TMP/one")
    ok "$fr: a single 4 MiB read returns data ($n bytes)" test "$n" -gt 0
done
ok "dd of 64 MiB in 16 blocks" t dd if="$D/data" of=/dev/null bs=4M count=16 iflag=fullblock status=none

ok "stop-wait" t sh -c "echo stop-wait > '$D/ctl'"
ok "daemon stops" crt_stop_daemon
is "$CRT_EXIT" 0 "daemon exits 0"
done_testing
