#!/usr/bin/env python3
"""`send`: one request per write, completions read back in submission
order, for every type: read, write, ioctl with the sim codes (sleep, zero,
zero bytes), internal-ioctl (echo); timeout= gives `ETIMEDOUT 0`, `cancel`
gives `ECANCELED 0`, closing with a request pending cancels it and the
daemon stays healthy; bad headers fail the write with EINVAL."""
import errno
import os
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

SLEEP, ZERO, ZERO_BYTES = 0x53494D01, 0x53494D02, 0x53494D03


def u32(n):
    return struct.pack("<I", n)


def reply(fd, limit=None):
    """One completion: (status line, data)."""
    b = ct.read_fd(fd, 1 << 20, limit=limit)
    head, _, data = b.partition(b"\n")
    return head.decode(), data


def submit(fd, header, payload=b""):
    try:
        os.write(fd, header.encode() + b"\n" + payload)
        return 0
    except OSError as e:
        return e.errno


def main(tap):
    with ct.Mount(tap) as m:
        d = m.mkdir("snd")
        fd = os.open(d + "/send", os.O_RDWR)
        tap.is_(submit(fd, "read"), errno.EDESTADDRREQ, "send without a target: EDESTADDRREQ")
        tap.like(ct.state(d)[1].get("error"), "no target", "error: no target is set")
        tap.is_(ct.read_fd(fd, 4096), b"", "nothing submitted: read gives end of file")

        tap.is_(ct.write(d + "/target", "sim:echo"), 0, "sim:echo (not started)")
        # write, then read it back (echo)
        tap.is_(submit(fd, "write", b"hello crtfs"), 0, "write request")
        tap.is_(reply(fd), ("ok 11", b""), "write: ok 11, no data")
        tap.is_(submit(fd, "read size=64"), 0, "read request")
        tap.is_(reply(fd), ("ok 11", b"hello crtfs"), "read: ok 11 and the echoed bytes")

        # ioctl: sleep (echoes the input), zero, zero bytes
        tap.is_(submit(fd, "ioctl ioctl=0x%x" % SLEEP, u32(50)), 0, "ioctl sleep 50 ms")
        t0 = time.monotonic()
        tap.is_(reply(fd), ("ok 4", u32(50)), "sleep: ok 4 with the input copied")
        tap.ok(time.monotonic() - t0 >= 0.04, "sleep took its time")
        tap.is_(submit(fd, "ioctl ioctl=0x%x size=16" % ZERO, u32(10)), 0, "ioctl zero, size=16")
        tap.is_(reply(fd), ("ok 16", bytes(16)), "zero: ok 16 and 16 zero bytes")
        tap.is_(submit(fd, "ioctl ioctl=%d" % ZERO_BYTES), 0, "ioctl zero-bytes (decimal code)")
        tap.is_(reply(fd), ("ok 0", b""), "zero-bytes: ok 0")

        # internal-ioctl with another code: a transaction that echoes
        tap.is_(submit(fd, "internal-ioctl ioctl=0x1234 size=32", b"*IDN?"), 0, "internal-ioctl")
        tap.is_(reply(fd), ("ok 5", b"*IDN?"), "internal-ioctl echoes the payload")

        # submission order, whatever the completion order
        submit(fd, "ioctl ioctl=0x%x" % SLEEP, u32(300))
        submit(fd, "ioctl ioctl=0x%x" % ZERO_BYTES)
        submit(fd, "write", b"x")
        tap.is_([reply(fd)[0] for _ in range(3)], ["ok 4", "ok 0", "ok 1"],
                "completions are read in submission order")

        # a partial read of a reply: the rest comes next
        submit(fd, "internal-ioctl ioctl=7", b"0123456789")
        a = ct.read_fd(fd, 4)
        b = ct.read_fd(fd, 4096)
        tap.is_(a + b, b"ok 10\n0123456789", "a reply read in pieces joins up")

        # timeout
        tap.is_(submit(fd, "ioctl ioctl=0x%x timeout=100" % SLEEP, u32(10000)), 0,
                "sleep 10 s with timeout=100")
        t0 = time.monotonic()
        tap.is_(reply(fd, limit=5), ("ETIMEDOUT 0", b""), "ETIMEDOUT 0")
        tap.ok(time.monotonic() - t0 < 2, "the timeout fired in time (%.2f s)"
               % (time.monotonic() - t0))

        # cancel
        submit(fd, "ioctl ioctl=0x%x" % SLEEP, u32(30000))
        submit(fd, "ioctl ioctl=0x%x" % SLEEP, u32(30000))
        tap.ok(ct.wait_until(lambda: ct.stats(d)["requests_in_flight"] == 2),
               "two sleeps pending")
        tap.is_(submit(fd, "cancel"), 0, "the single line cancel is accepted")
        tap.is_([reply(fd, limit=5) for _ in range(2)], [("ECANCELED 0", b"")] * 2,
                "cancel: ECANCELED 0 for each pending request")
        tap.is_(ct.stats(d)["requests_in_flight"], 0, "nothing in flight")
        tap.is_(ct.read_fd(fd, 4096), b"", "all read: end of file")

        # sessions are separate
        fd2 = os.open(d + "/send", os.O_RDWR)
        submit(fd2, "internal-ioctl ioctl=1", b"two")
        submit(fd, "internal-ioctl ioctl=1", b"one")
        tap.is_(reply(fd2), ("ok 3", b"two"), "a second open file gets its own completion")
        tap.is_(reply(fd), ("ok 3", b"one"), "and the first its own")
        os.close(fd2)

        # close with a request pending: cancelled, daemon healthy
        fd3 = os.open(d + "/send", os.O_RDWR)
        submit(fd3, "ioctl ioctl=0x%x" % SLEEP, u32(60000))
        tap.ok(ct.wait_until(lambda: ct.stats(d)["requests_in_flight"] == 1), "a sleep pending")
        os.close(fd3)
        tap.ok(ct.wait_until(lambda: ct.stats(d)["requests_in_flight"] == 0, limit=5),
               "closing the file cancels its pending request")
        submit(fd, "internal-ioctl ioctl=1", b"still here")
        tap.is_(reply(fd), ("ok 10", b"still here"), "the daemon still answers")

        # bad headers: EINVAL, error: set, nothing submitted
        for bad in ("bogus", "read size=abc", "read size=99999999999", "ioctl ioctl=zz",
                    "read timeout=-1", "read extra", "", "READ"):
            tap.is_(submit(fd, bad), errno.EINVAL, "header %r: EINVAL" % bad)
        tap.like(ct.state(d)[1].get("error"), "^send: ", "error: names send")
        tap.is_(ct.read_fd(fd, 4096), b"", "nothing was submitted")

        # while streaming too
        tap.is_(ct.write(d + "/target", "sim:records rate=100"), 0, "sim:records rate=100")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        submit(fd, "internal-ioctl ioctl=1", b"during")
        tap.is_(reply(fd), ("ok 6", b"during"), "a transaction while streaming")
        submit(fd, "read size=32")
        st, data = reply(fd)
        tap.is_(st, "ok 32", "a read request while streaming: ok 32")
        tap.like(data.decode(), r"^\d{10} crtfs sim record", "a record")

        # purge_on_suspend: sends fail while suspended
        tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")
        tap.is_(ct.write(d + "/config/purge_on_suspend", "1"), 0, "purge_on_suspend 1")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start (the engine is rebuilt with it)")
        tap.is_(ct.write(d + "/ctl", "suspend"), 0, "suspend")
        tap.is_(submit(fd, "write", b"x"), errno.ESHUTDOWN, "a send while suspended: ESHUTDOWN")
        tap.is_(ct.write(d + "/ctl", "resume"), 0, "resume")
        tap.is_(submit(fd, "write", b"x"), 0, "sends work again")
        tap.is_(reply(fd), ("ok 1", b""), "ok 1")
        os.close(fd)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
