#!/usr/bin/env python3
"""Transactions whose reply comes in pieces, as real devices answer: an
internal-ioctl through `send` ends where its header says (until=, gap=,
len=OFFSET:WIDTH:ADJUST for Modbus TCP, exact=), whatever the pieces; the
bytes after the end go to the stream (a reader of `data` gets them), never
to the next request; the timeout bounds a reply that never ends; without an
end condition the first piece is the reply, as before.  The device is a
thread on the master side of a pty, replying with delays between pieces."""
import errno
import os
import pty
import sys
import threading
import time
import tty

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


class Device(threading.Thread):
    """Reads one request (a line), answers with the next script: a list of
    (delay in seconds, bytes)."""

    def __init__(self, master):
        super().__init__(daemon=True)
        self.master, self.scripts, self.requests = master, [], []
        self.lock = threading.Condition()

    def answer(self, *pieces):
        with self.lock:
            self.scripts.append(pieces)

    def run(self):
        buf = b""
        while True:
            try:
                buf += os.read(self.master, 4096)
            except OSError:
                return
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.requests.append(line)
                with self.lock:
                    pieces = self.scripts.pop(0) if self.scripts else ()
                for delay, data in pieces:
                    time.sleep(delay)
                    os.write(self.master, data)


def ask(fd, header, payload):
    os.write(fd, header.encode() + b"\n" + payload)
    b = ct.read_fd(fd, 1 << 16)
    head, _, data = b.partition(b"\n")
    return head.decode(), data


def main(tap):
    master, slave = pty.openpty()
    tty.setraw(master)
    dev = Device(master)
    dev.start()
    with ct.Mount(tap) as m:
        d = m.mkdir("modem")
        tap.is_(ct.write(d + "/target", os.ttyname(slave) + " raw"), 0, "a pty target")
        os.close(slave)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "streaming")
        stream = os.open(d + "/data", os.O_RDONLY | os.O_NONBLOCK)
        fd = os.open(d + "/send", os.O_RDWR)

        def stream_bytes():
            got = b""
            ct.wait_until(lambda: False, limit=0.3)  # let stray bytes arrive
            while True:
                try:
                    got += os.read(stream, 4096)
                except BlockingIOError:
                    return got

        # the case: two pieces 30 ms apart, then more for the stream
        dev.answer((0.0, b"RESP-PART1:"), (0.03, b"PART2:\nEXTRA"))
        tap.is_(ask(fd, "internal-ioctl until=\\n size=64 timeout=2000", b"A\n"),
                ("ok 18", b"RESP-PART1:PART2:\n"), "until=\\n: both pieces, up to the newline")
        tap.is_(stream_bytes(), b"EXTRA", "the bytes after the end went to the stream")

        dev.answer((0.0, b"AB"), (0.01, b"CD"))
        tap.is_(ask(fd, "internal-ioctl gap=80ms size=64 timeout=2000", b"B\n"),
                ("ok 4", b"ABCD"), "gap=80ms: pieces 10 ms apart are one reply")

        mbap = bytes([0, 1, 0, 0, 0, 5, 1, 3, 2, 0x12, 0x34])  # length 5 after offset 6
        dev.answer((0.0, mbap[:4]), (0.02, mbap[4:9]), (0.02, mbap[9:] + b"ZZ"))
        tap.is_(ask(fd, "internal-ioctl len=4:2:6 size=260 timeout=2000", b"C\n"),
                ("ok 11", mbap), "len=4:2:6 (Modbus TCP): exactly the frame, in three pieces")
        tap.is_(stream_bytes(), b"ZZ", "what followed the frame went to the stream")

        dev.answer((0.0, b"abc"), (0.02, b"defgXY"))
        tap.is_(ask(fd, "internal-ioctl exact=7 timeout=2000", b"D\n"),
                ("ok 7", b"abcdefg"), "exact=7: seven bytes (size raised to fit)")
        dev.answer((0.0, b"next\n"))
        tap.is_(ask(fd, "internal-ioctl until=\\n size=64 timeout=2000", b"E\n"),
                ("ok 5", b"next\n"), "the next request gets only its own reply, not XY")
        tap.is_(stream_bytes(), b"XY", "XY went to the stream")

        dev.answer((0.0, b"no end in sight"))
        t0 = time.monotonic()
        tap.is_(ask(fd, "internal-ioctl until=\\n size=64 timeout=300", b"F\n")[0],
                "ETIMEDOUT 0", "a reply that never ends: the timeout bounds it")
        tap.ok(time.monotonic() - t0 < 2, "within its timeout")
        stream_bytes()  # what it left

        dev.answer((0.0, b"one"), (0.05, b"two"))
        tap.is_(ask(fd, "internal-ioctl size=64 timeout=2000", b"G\n"),
                ("ok 3", b"one"), "no end condition: the first piece, as before")
        tap.is_(stream_bytes(), b"two", "the second went to the stream")

        for header, why in (("read until=\\n", "internal-ioctl only"),
                            ("internal-ioctl len=1:3:0", "bad header word"),
                            ("internal-ioctl until=", "bad header word"),
                            ("internal-ioctl gap=5x", "bad header word")):
            try:
                os.write(fd, header.encode() + b"\n")
                tap.fail("%s is refused" % header)
            except OSError as e:
                tap.is_(e.errno, errno.EINVAL, "%s: EINVAL" % header)
            tap.like(ct.state(d)[1].get("error"), why, "error: says %s" % why)
        os.close(fd)
        os.close(stream)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")
    os.close(master)


ct.run_tap(main)
