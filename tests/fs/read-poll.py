#!/usr/bin/env python3
"""poll, select and epoll on `data` report POLLIN exactly when a read would
not block (data, or end of file after stop); O_NONBLOCK reads answer
EAGAIN; `send` polls readable when a completion is there."""
import errno
import os
import select
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


def main(tap):
    with ct.Mount(tap) as m:
        d = m.mkdir("pl")
        tap.is_(ct.write(d + "/target", "sim:records rate=50"), 0, "sim:records rate=50")
        fd = os.open(d + "/data", os.O_RDONLY | os.O_NONBLOCK)

        p = select.poll()
        p.register(fd, select.POLLIN)
        tap.is_(p.poll(200), [], "poll: nothing to read while stopped")
        try:
            os.read(fd, 4096)
            tap.fail("O_NONBLOCK read with nothing there fails")
        except OSError as e:
            tap.is_(e.errno, errno.EAGAIN, "O_NONBLOCK read with nothing there: EAGAIN")
        ep = select.epoll()
        ep.register(fd, select.EPOLLIN)
        tap.is_(ep.poll(0.2), [], "epoll: nothing while stopped")
        tap.is_(select.select([fd], [], [], 0.2)[0], [], "select: nothing while stopped")

        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        ev = p.poll(5000)
        tap.ok(ev and ev[0][1] & select.POLLIN, "poll wakes with POLLIN when data comes", ev)
        b = os.read(fd, 4096)
        tap.ok(len(b) > 0, "and the read returns data")
        # Drain, then wait for the next record with each API.
        for name, wait in (("poll", lambda: p.poll(5000)),
                           ("epoll", lambda: ep.poll(5)),
                           ("select", lambda: select.select([fd], [], [], 5)[0])):
            try:
                while os.read(fd, 4096):
                    pass
            except BlockingIOError:
                pass
            t0 = time.monotonic()
            ev = wait()
            dt = time.monotonic() - t0
            tap.ok(ev, "%s reports the next record (after %.3f s)" % (name, dt))
            try:
                tap.ok(len(os.read(fd, 4096)) > 0, "%s: the read then succeeds" % name)
            except BlockingIOError:
                tap.fail("%s: the read then succeeds" % name, "EAGAIN after POLLIN")

        # Edge-triggered epoll sees each new arrival.
        ep2 = select.epoll()
        ep2.register(fd, select.EPOLLIN | select.EPOLLET)
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass
        tap.ok(ep2.poll(5), "edge-triggered epoll reports a new record")

        # stop: POLLIN for the end of file, read returns 0.
        tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")
        got_eof = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not got_eof:
            ev = p.poll(1000)
            if not ev:
                break
            try:
                got_eof = os.read(fd, 4096) == b""
            except BlockingIOError:
                tap.fail("poll after stop reported POLLIN but the read would block")
                break
        tap.ok(got_eof, "after stop, poll reports POLLIN and the read returns end of file")
        ep.close()
        ep2.close()
        os.close(fd)

        # send: POLLIN once the pending completion is there, not before.
        sfd = os.open(d + "/send", os.O_RDWR | os.O_NONBLOCK)
        sp = select.poll()
        sp.register(sfd, select.POLLIN)
        os.write(sfd, b"ioctl ioctl=0x53494d01 size=4\n" + (300).to_bytes(4, "little"))
        tap.is_(sp.poll(100), [], "send: no POLLIN while the 300 ms sleep ioctl is pending")
        try:
            os.read(sfd, 4096)
            tap.fail("send: O_NONBLOCK read while pending gives EAGAIN")
        except BlockingIOError:
            tap.pass_("send: O_NONBLOCK read while pending gives EAGAIN")
        ev = sp.poll(5000)
        tap.ok(ev and ev[0][1] & select.POLLIN, "send: POLLIN when the completion is there")
        tap.like(os.read(sfd, 4096).decode("latin1"), r"^ok 4\n", "send: ok 4")
        os.close(sfd)

        # input: POLLOUT while the input queue has room.
        ifd = os.open(d + "/input", os.O_WRONLY | os.O_NONBLOCK)
        tap.is_(ct.write(d + "/config/type", "write"), 0, "type write (not started)")
        ip = select.poll()
        ip.register(ifd, select.POLLOUT)
        tap.ok(ip.poll(100), "input: POLLOUT while there is room")
        n = 0
        try:
            for _ in range(100):
                os.write(ifd, b"x")
                n += 1
        except BlockingIOError:
            pass
        tap.is_(n, 4, "input: 4 writes fill the queue (in_count 4), then EAGAIN")
        tap.is_(ip.poll(100), [], "input: no POLLOUT while full")
        os.close(ifd)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
