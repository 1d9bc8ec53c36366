#!/usr/bin/env python3
"""sim: targets through the filesystem: numbered text records (data and
records agree; headers are `SEQ SECONDS.NANOSECONDS STATUS LENGTH`), the
counter and zero generators, limit= ends the stream, and an injected error
completion is counted and reported while data readers get an unbroken
stream."""
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


def main(tap):
    with ct.Mount(tap) as m:
        d = m.mkdir("sim")
        # records: 32-byte text records, one per buffer (out_size 32)
        tap.is_(ct.write(d + "/config/out_size", "32"), 0, "out_size 32")
        tap.is_(ct.write(d + "/target", "sim:records limit=100"), 0, "sim:records limit=100")
        fd_r = os.open(d + "/records", os.O_RDONLY)
        fd_d = os.open(d + "/data", os.O_RDONLY)
        rr, rd = ct.Reader(fd_r), ct.Reader(fd_d)
        t0 = time.time_ns()
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        recs = ct.parse_records(rr.join_result())
        data = rd.join_result()
        t1 = time.time_ns()
        os.close(fd_r)
        os.close(fd_d)
        ok = [r for r in recs if r[2] == "ok"]
        tap.is_(len(ok), 100, "100 ok records before the end")
        tap.is_([r[0] for r in recs[:100]], list(range(1, 101)), "sequence numbers 1..100")
        tap.ok(all(t0 - 10**9 <= r[1] <= t1 + 10**9 for r in recs),
               "completion times are realtime, within the test's run")
        tap.ok(all(recs[i][1] <= recs[i + 1][1] for i in range(len(recs) - 1)),
               "completion times never go back")
        tap.ok(all(re.fullmatch(rb"%010d crtfs sim record \.*\n" % (i + 1), r[3])
                   for i, r in enumerate(ok)), "record payloads are the numbered records",
               repr(ok[0][3]) if ok else "none")
        tap.ok(all(len(r[3]) == 32 for r in ok), "each record 32 bytes")
        tap.is_(recs[-1][2], "ENODATA", "limit= ends with an ENODATA completion")
        tap.is_(data, b"".join(r[3] for r in ok), "data is the records' payloads, no headers")
        ct.wait_until(lambda: ct.state(d)[0] == "stopped")
        tap.is_(ct.state(d)[0], "stopped", "stopped at the end")

        # counter: uint64 LE counters continuing across reads and buffers
        tap.is_(ct.write(d + "/config/out_size", "4096"), 0, "out_size 4096")
        tap.is_(ct.write(d + "/target", "sim:counter limit=64"), 0, "sim:counter limit=64")
        fd = os.open(d + "/data", os.O_RDONLY)
        r = ct.Reader(fd)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        c = ct.counters(r.join_result())
        os.close(fd)
        tap.is_(len(c), 64 * 512, "64 buffers of 512 counters")
        tap.ok(c == list(range(c[0], c[0] + len(c))), "counters are consecutive",
               "first %s" % c[:4])

        # zero
        tap.is_(ct.write(d + "/target", "sim:zero limit=4"), 0, "sim:zero limit=4")
        fd = os.open(d + "/data", os.O_RDONLY)
        r = ct.Reader(fd)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        z = r.join_result()
        os.close(fd)
        tap.is_(z, bytes(4 * 4096), "four buffers of zeros")

        # fail=N: one error completion, counted, visible in records and
        # state, and the data stream goes on around it.
        tap.is_(ct.write(d + "/config/out_size", "32"), 0, "out_size 32")
        tap.is_(ct.write(d + "/target", "sim:records fail=5 errno=EIO limit=10"), 0,
                "sim:records fail=5 errno=EIO limit=10")
        fd_r = os.open(d + "/records", os.O_RDONLY)
        fd_d = os.open(d + "/data", os.O_RDONLY)
        rr, rd = ct.Reader(fd_r), ct.Reader(fd_d)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        recs = ct.parse_records(rr.join_result())
        data = rd.join_result()
        os.close(fd_r)
        os.close(fd_d)
        statuses = [r[2] for r in recs]
        tap.ok("EIO" in statuses, "records shows the EIO completion", statuses)
        eio = [r for r in recs if r[2] == "EIO"]
        tap.ok(eio and eio[0][3] == b"", "an error completion has no payload")
        seqs = [r[0] for r in recs]
        tap.is_(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "no sequence number missing")
        tap.is_(data, b"".join(r[3] for r in recs if r[2] == "ok"),
                "data readers get every ok payload, no gap, no error bytes")
        st = ct.stats(d)
        tap.ok(st["failed"] >= 1, "stats failed counts the error", st["failed"])

        # The same while the stream goes on (no end of file to overwrite the
        # report): state names the error completion.
        tap.is_(ct.write(d + "/target", "sim:records fail=3 errno=EIO rate=1000"), 0,
                "sim:records fail=3 errno=EIO rate=1000")
        fd_r = os.open(d + "/records", os.O_RDONLY)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        p = ct.RecordParser()
        while not (any(r[2] == "EIO" for r in p.records) and
                   [r[2] for r in p.records][-3:] == ["ok"] * 3 and
                   [r[2] for r in p.records].index("EIO") < len(p.records) - 3):
            p.feed(ct.read_fd(fd_r, 4096))
        tap.pass_("records shows EIO, and ok records after it: the stream goes on")
        word, fields = ct.state(d)
        tap.is_(word, "streaming", "still streaming after a non-fatal error")
        tap.like(fields.get("error"), "Input/output error|EIO",
                 "state error: reports the error completion")
        tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")
        os.close(fd_r)

        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
