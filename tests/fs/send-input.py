#!/usr/bin/env python3
"""`input`-fed streams: each write to `input` is one input buffer.  A write
stream into a FIFO (the test reads the other end) and into sim:echo (read
back with a send `read`); `payload` feeds the stream when nothing was
written; an internal-ioctl stream turns inputs into responses on `data`;
input errors (EMSGSIZE, EINVAL for a read stream, EAGAIN when full); a
payload-fed write stream under overflow=block paced by a slow `records`
reader (no gap), and not paused when nobody reads."""
import errno
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


def main(tap):
    with ct.Mount(tap) as m:
        d = m.mkdir("in")
        tap.is_(ct.write(d + "/input", b"x", os.O_WRONLY), errno.EINVAL,
                "input on a read stream: EINVAL")
        tap.like(ct.state(d)[1].get("error"), "sends no input", "error: says why")

        # write stream into a FIFO
        fifo = os.path.join(m.tmp, "fifo")
        os.mkfifo(fifo)
        peer = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        tap.is_(ct.write(d + "/config/type", "write"), 0, "type write")
        tap.is_(ct.write(d + "/target", fifo), 0, "target: a FIFO")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        rfd = os.open(d + "/records", os.O_RDONLY)
        # overflow=block: the write stream waits for this reader, so it
        # reads while the inputs go in
        recs = []

        def read_100():
            while len(recs) < 100:
                recs.extend(ct.parse_records(ct.read_fd(rfd, 1 << 16)))

        reader = ct.in_thread(read_100)
        msgs = [b"message %03d\n" % i for i in range(100)]
        for i, msg in enumerate(msgs):
            r = ct.write(d + "/input", msg, os.O_WRONLY)
            if r:
                tap.fail("input write %d" % i, os.strerror(r))
                break
        else:
            tap.pass_("100 input writes (each blocks while the queue is full)")
        got = b""
        deadline = time.monotonic() + ct.T
        while len(got) < len(b"".join(msgs)) and time.monotonic() < deadline:
            try:
                got += os.read(peer, 65536)
            except BlockingIOError:
                time.sleep(0.01)
        tap.is_(got, b"".join(msgs), "the FIFO's reader got every input buffer, in order")
        reader.join(ct.T)
        tap.ok(len(recs) == 100 and all(r[2] == "ok" and r[3] == b"" for r in recs),
               "records: each write completion is `ok` with no data bytes",
               recs[:2])
        tap.ok(ct.stats(d)["bytes_written"] == len(got), "stats bytes_written")
        os.close(rfd)  # an idle open reader would pause the stream below

        # payload: sent when nothing was written to input.  Set while the
        # stream waits for input (live key): the waiting requests use it.
        def read_ticks():
            ticks = b""
            deadline = time.monotonic() + 2
            while len(ticks) < 64 and time.monotonic() < deadline:
                try:
                    ticks += os.read(peer, 65536)
                except BlockingIOError:
                    time.sleep(0.01)
            return ticks

        def is_ticks(b):
            return len(b) >= 64 and b.startswith(b"tick") and set(b.split(b"tick")) == {b""}

        tap.is_(ct.write(d + "/config/payload", "tick"), 0, "payload tick, set while streaming")
        ticks = read_ticks()
        tap.ok(is_ticks(ticks), "a stream waiting for input starts sending the new payload",
               ticks[:40])
        tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")
        read_ticks()
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start with the payload set")
        ticks = read_ticks()
        tap.ok(is_ticks(ticks), "with nothing written, the payload is sent (%d bytes)" % len(ticks),
               ticks[:40])
        tap.is_(ct.write(d + "/config/payload", ""), 0, "payload cleared")
        tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")
        os.close(peer)

        # over in_size
        tap.is_(ct.write(d + "/input", b"y" * 5000, os.O_WRONLY), errno.EMSGSIZE,
                "a write over in_size (4096): EMSGSIZE")
        tap.like(ct.state(d)[1].get("error"), "in_size", "error: names in_size")

        # full queue: O_NONBLOCK gives EAGAIN (stopped: nothing drains it)
        fd = os.open(d + "/input", os.O_WRONLY | os.O_NONBLOCK)
        n = 0
        err = None
        for _ in range(10):
            try:
                os.write(fd, b"q")
                n += 1
            except OSError as e:
                err = e.errno
                break
        os.close(fd)
        tap.is_((n, err), (4, errno.EAGAIN), "4 buffers queue (in_count 4), then EAGAIN")

        # sim:echo: the queued inputs are written at start, then read back
        d2 = m.mkdir("echo")
        tap.is_(ct.write(d2 + "/config/type", "write"), 0, "type write")
        tap.is_(ct.write(d2 + "/target", "sim:echo"), 0, "sim:echo")
        tap.is_(ct.write(d2 + "/ctl", "start"), 0, "start")
        for w in (b"one ", b"two ", b"three"):
            ct.write(d2 + "/input", w, os.O_WRONLY)
        ct.wait_until(lambda: ct.stats(d2)["bytes_written"] == 13)
        tap.is_(ct.write(d2 + "/ctl", "stop-wait"), 0, "stop-wait")
        sfd = os.open(d2 + "/send", os.O_RDWR)
        os.write(sfd, b"read size=100\n")
        tap.is_(ct.read_fd(sfd, 4096), b"ok 13\none two three",
                "a send read returns what the write stream wrote, in order")
        os.close(sfd)

        # internal-ioctl stream: each input is a question, each answer a buffer
        d3 = m.mkdir("txn")
        for k, v in (("type", "internal-ioctl"), ("ioctl", "0x1234"), ("requests", "1")):
            tap.is_(ct.write(d3 + "/config/" + k, v), 0, "%s %s" % (k, v))
        tap.is_(ct.write(d3 + "/target", "sim:echo"), 0, "sim:echo")
        dfd = os.open(d3 + "/data", os.O_RDONLY)
        tap.is_(ct.write(d3 + "/ctl", "start"), 0, "start")
        for q in (b"Q1?", b"Q2?", b"Q3?"):
            ct.write(d3 + "/input", q, os.O_WRONLY)
        out = b""
        while len(out) < 9:
            out += ct.read_fd(dfd, 4096)
        tap.is_(out, b"Q1?Q2?Q3?", "internal-ioctl stream: the responses come out of data")
        os.close(dfd)

        # a payload-fed write stream under overflow=block waits for its
        # slowest `records` reader: a slow reader loses no completion
        d4 = m.mkdir("paced")
        for k, v in (("type", "write"), ("payload", "p"), ("out_size", "0")):
            tap.is_(ct.write(d4 + "/config/" + k, v), 0, "%s %s" % (k, v))
        tap.is_(ct.write(d4 + "/target", "sim:zero"), 0, "sim:zero")
        rfd = os.open(d4 + "/records", os.O_RDONLY)
        tap.is_(ct.write(d4 + "/ctl", "start"), 0, "start")
        recs = []
        while len(recs) < 300:
            recs += ct.parse_records(ct.read_fd(rfd, 200))
            if len(recs) % 50 < 3:
                time.sleep(0.05)
        tap.is_(ct.write(d4 + "/ctl", "stop-wait"), 0, "stop-wait")
        recs += ct.parse_records(ct.read_all_fd(rfd))
        os.close(rfd)
        seqs = [r[0] for r in recs]
        tap.is_(seqs, list(range(1, len(seqs) + 1)),
                "a slow records reader of a write stream sees every completion (%d, no gap)"
                % len(seqs))
        tap.is_(ct.stats(d4)["buffers_dropped"], 0, "buffers_dropped 0")
        # with nobody reading, the stream does not pause for good
        tap.is_(ct.write(d4 + "/ctl", "start"), 0, "start with no reader")
        before = ct.stats(d4)["completed"]
        tap.ok(ct.wait_until(lambda: ct.stats(d4)["completed"] > before + 1000),
               "with no reader, the write stream goes on")
        tap.is_(ct.write(d4 + "/ctl", "stop-wait"), 0, "stop-wait")
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
