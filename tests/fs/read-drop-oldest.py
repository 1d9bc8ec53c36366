#!/usr/bin/env python3
"""overflow=drop-oldest with one stalled reader (open, not reading) and one
active reader: the active one loses nothing; the stalled one's drops are
counted in stats buffers_dropped and show as sequence gaps in its
`records`.  The same setup with overflow=block pauses the stream instead.

Buffers this small are copied on arrival (man page, DATA DELIVERY): what a
reader may fall behind is the copy queue (1 MiB, each entry's bookkeeping
included) plus the pool, so N exceeds what the queue holds."""
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

N = 20000
# The most 32-byte entries the copy queue can hold (an entry costs more than
# its 32 bytes), plus the pool.
COPY_BYTES = 1 << 20


def queue_bound(st):
    return st["out_pool_size"] + COPY_BYTES // 32


def main(tap):
    with ct.Mount(tap) as m:
        d = m.mkdir("drop")
        # stream framing and a 64-buffer pool let the active reader keep up
        # on a loaded machine (a reader 64 buffers behind is not "active").
        for k, v in (("out_size", "32"), ("out_count", "64"), ("framing", "stream"),
                     ("overflow", "drop-oldest")):
            tap.is_(ct.write(d + "/config/" + k, v), 0, "%s %s" % (k, v))
        tap.is_(ct.write(d + "/target", "sim:records rate=10000 limit=%d" % N), 0,
                "sim:records rate=10000 limit=%d (one 32-byte record a buffer)" % N)
        stalled = os.open(d + "/records", os.O_RDONLY)
        active = os.open(d + "/records", os.O_RDONLY)
        ct.wait_until(lambda: ct.stats(d)["readers"] == 2)
        rd = ct.Reader(active)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        recs = ct.parse_records(rd.join_result(limit=20))
        oks = [r for r in recs if r[2] == "ok"]
        aseq = [r[0] for r in oks]
        amiss = sorted(set(range(1, N + 1)) - set(aseq))
        tap.ok(aseq == list(range(1, N + 1)),
               "the active reader got every sequence number 1..%d" % N,
               "%d missing, first %s" % (len(amiss), amiss[:5]))
        tap.is_(recs[-1][2], "ENODATA", "then the end of the stream")
        st = ct.stats(d)
        dropped = st["buffers_dropped"]
        tap.ok(dropped > 0, "stats buffers_dropped counts drops (%d)" % dropped)

        # Now the stalled reader reads what it still has.
        blob = ct.read_all_fd(stalled)
        srecs = ct.parse_records(blob)
        sseq = [r[0] for r in srecs if r[2] == "ok"]
        missing = sorted(set(range(1, N + 1)) - set(sseq))
        tap.ok(len(sseq) < N and sseq == sorted(sseq),
               "the stalled reader got fewer buffers (%d), in order" % len(sseq))
        tap.ok(missing, "its records show gaps in SEQ (%d missing, first %s)"
               % (len(missing), missing[:3]))
        tap.is_(len(missing) + len(amiss), dropped, "every gap is a counted drop")
        tap.ok(len(sseq) <= queue_bound(st),
               "it kept at most the copy queue and the pool (%d, bound %d)"
               % (len(sseq), queue_bound(st)))
        tap.ok(not sseq or sseq[-1] == N, "what it kept is the newest (oldest dropped)",
               sseq[-3:])
        os.close(stalled)
        os.close(active)

        # block: the stalled reader pauses everyone instead.
        tap.is_(ct.write(d + "/config/overflow", "block"), 0, "overflow block")
        tap.is_(ct.write(d + "/target", "sim:records rate=50000"), 0, "sim:records rate=50000")
        stalled = os.open(d + "/records", os.O_RDONLY)
        active = os.open(d + "/records", os.O_RDONLY | os.O_NONBLOCK)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        ct.wait_until(lambda: ct.stats(d)["out_pool_free"] == 0)
        got = b""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                got += os.read(active, 65536)
            except BlockingIOError:
                time.sleep(0.01)
        n = len(ct.parse_records(got))
        tap.ok(n <= queue_bound(ct.stats(d)),
               "with block, the active reader is held back by the stalled one (%d buffers)" % n)
        tap.is_(ct.stats(d)["buffers_dropped"], dropped, "and nothing more is dropped")
        srecs = ct.parse_records_prefix(ct.read_fd(stalled, 1 << 20))
        sseq = [r[0] for r in srecs]
        tap.ok(len(sseq) > 1 and sseq == list(range(sseq[0], sseq[0] + len(sseq))),
               "the stalled reader then gets its buffers without a gap", sseq[:5])
        tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")
        os.close(stalled)
        os.close(active)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
