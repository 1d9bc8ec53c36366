#!/usr/bin/env python3
"""Backpressure: with nobody reading, a sim counter stream fills the output
pool and pauses; a reader that comes later gets every sequence number from
`records` with no gap and the counters without a hole.  Then: stopped with
the pool full, the kept buffers read while stopped, start streams again; and
a look-aside pool does not defeat backpressure."""
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


def main(tap):
    with ct.Mount(tap) as m:
        d = m.mkdir("bp")
        tap.is_(ct.write(d + "/target", "sim:counter"), 0, "sim:counter")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start with nobody reading")
        tap.ok(ct.wait_until(lambda: ct.stats(d)["out_pool_free"] == 0), "the pool fills")
        s1 = ct.stats(d)
        time.sleep(0.3)
        s2 = ct.stats(d)
        tap.is_(s2["last_seq"], s1["last_seq"], "streaming pauses (no completion in 0.3 s)")
        tap.is_(s2["buffers_queued"], s2["out_pool_size"], "the whole pool is kept for a reader")
        tap.is_(s2["buffers_dropped"], 0, "nothing dropped")
        tap.is_(ct.state(d)[0], "streaming", "still streaming (paused, not stopped)")

        fd = os.open(d + "/records", os.O_RDONLY)
        recs = ct.read_records(fd, 3000)
        seqs = [r[0] for r in recs]
        tap.is_(seqs[0], 1, "the late reader starts at sequence 1")
        tap.ok(seqs == list(range(1, len(seqs) + 1)), "every sequence number, no gap",
               "first gap at %s" % next((i for i in range(len(seqs) - 1)
                                          if seqs[i + 1] != seqs[i] + 1), None))
        tap.ok(all(r[2] == "ok" for r in recs), "every completion ok")
        c = ct.counters(b"".join(r[3] for r in recs))
        tap.ok(c == list(range(c[0], c[0] + len(c))), "the counters have no hole")

        # Stop with the pool full, read what was kept, start again.
        os.close(fd)
        tap.ok(ct.wait_until(lambda: ct.stats(d)["out_pool_free"] == 0), "the pool fills again")
        tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait with the pool full")
        kept = ct.stats(d)["buffers_queued"]
        # (A reader opened after the stream ended does not see that end: it
        # reads the kept buffers, then would block; O_NONBLOCK shows where.)
        fd = os.open(d + "/records", os.O_RDONLY | os.O_NONBLOCK)
        blob = b""
        try:
            while True:
                b = ct.read_fd(fd, 1 << 20)
                if not b:
                    break
                blob += b
        except BlockingIOError:
            pass
        os.close(fd)
        tap.is_(len(ct.parse_records(blob)), kept,
                "a reader after stop gets the %d kept buffers" % kept)
        tap.is_(ct.stats(d)["out_pool_free"], ct.stats(d)["out_pool_size"],
                "every buffer is back in the pool")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start again")
        fd = os.open(d + "/data", os.O_RDONLY)
        try:
            got = ct.read_fd(fd, 4096, limit=5)
            tap.ok(len(got) > 0, "the restarted stream delivers data")
        except TimeoutError:
            tap.fail("the restarted stream delivers data",
                     "no data within 5 s; stats: %s" % ct.stats(d))
        os.close(fd)
        tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")

        # Look-aside: the pool may grow on demand, but a stream nobody reads
        # must still pause instead of keeping buffers without bound.
        d2 = m.mkdir("la")
        tap.is_(ct.write(d2 + "/config/lookaside", "1"), 0, "lookaside 1")
        tap.is_(ct.write(d2 + "/target", "sim:counter"), 0, "sim:counter")
        tap.is_(ct.write(d2 + "/ctl", "start"), 0, "start with nobody reading")
        time.sleep(0.5)
        st = ct.stats(d2)
        tap.ok(st["buffers_queued"] <= 1024,
               "with lookaside, a stream nobody reads is bounded (kept %d buffers, %d MiB)"
               % (st["buffers_queued"], st["buffers_queued"] * 4096 >> 20))
        tap.is_(ct.write(d2 + "/ctl", "stop-wait"), 0, "stop-wait")
        os.rmdir(d2)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
