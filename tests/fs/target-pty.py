#!/usr/bin/env python3
"""Streaming from a pty (`/dev/pts/N raw`): bytes written on the master side
come out of `data` in order; an `input`-fed write stream reaches the master;
the tty's termios come back when the target is cleared."""
import errno
import fcntl
import os
import sys
import termios
import pty

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


def open_and_see(d, name, master, line):
    """Open d/name, write `line` on the master side, read until it shows:
    (fd, what was read)."""
    fd = os.open(os.path.join(d, name), os.O_RDONLY)
    ct.wait_until(lambda: ct.stats(d)["readers"] == 1)
    os.write(master, line)
    got = b""
    while line not in got:
        got += ct.read_fd(fd, 65536)
    return fd, got


def main(tap):
    with ct.Mount(tap) as m:
        master, slave = pty.openpty()
        name = os.ttyname(slave)
        before = termios.tcgetattr(slave)
        d = m.mkdir("tty")
        tap.is_(ct.write(d + "/target", "%s baud=9600 raw\n" % name), 0, "set %s raw" % name)
        tap.is_(ct.state(d)[1].get("target"), "%s baud=9600 raw" % name, "state target:")
        during = termios.tcgetattr(slave)
        tap.ok(not (during[3] & termios.ICANON), "raw: canonical mode is off while set")
        tap.is_(during[5], termios.B9600, "baud 9600 applied")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")

        fd = os.open(d + "/data", os.O_RDONLY)
        ct.wait_until(lambda: ct.stats(d)["readers"] == 1)
        want = b"".join(b"line %05d\n" % i for i in range(2000))
        # Write in pieces so the pty buffer never fills.
        got = b""
        for i in range(0, len(want), 1000):
            os.write(master, want[i:i + 1000])
            while len(got) < i + 1000 and len(got) < len(want):
                got += ct.read_fd(fd, 65536)
        tap.is_(got, want, "every byte written on the master arrives in order")
        tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")
        tap.is_(ct.read_fd(fd, 4096), b"", "the reader gets end of file after stop")
        os.close(fd)

        # A write stream: `input` -> the tty -> the master side.
        tap.is_(ct.write(d + "/config/type", "write"), 0, "type write")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start the write stream")
        for word in (b"alpha\n", b"beta\n", b"gamma\n"):
            tap.is_(ct.write(d + "/input", word, os.O_WRONLY), 0, "input %r" % word)
        out = b""
        while out.count(b"\n") < 3:
            out += ct.read_fd(master, 4096)
        tap.is_(out, b"alpha\nbeta\ngamma\n", "input buffers reach the tty in order")
        tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")

        # The same tty set again: our own lock must not refuse it (EBUSY).
        tap.is_(ct.write(d + "/config/type", "read"), 0, "type read")
        tap.is_(ct.write(d + "/target", "%s baud=19200 raw\n" % name), 0,
                "the same tty again while stopped, new baud")
        tap.is_(termios.tcgetattr(slave)[5], termios.B19200, "baud 19200 applied")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        fd, _ = open_and_see(d, "records", master, b"before\n")
        tap.is_(ct.write(d + "/target", "%s baud=38400 raw\n" % name), 0,
                "the same tty again while streaming, new baud")
        tap.is_(termios.tcgetattr(slave)[5], termios.B38400, "baud 38400 applied")
        word, fields = ct.state(d)
        tap.is_(fields.get("target"), "%s baud=38400 raw" % name, "state names the new spec")
        tap.is_(word, "stopped", "manual mode: stopped after the target is set again")
        ct.read_all_fd(fd)
        tap.pass_("the reader of the old stream gets end of file")
        os.close(fd)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start on the reopened tty")
        fd, got = open_and_see(d, "data", master, b"after\n")
        tap.is_(got, b"after\n", "the reopened tty streams")
        tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")
        os.close(fd)
        other = m.mkdir("tty2")
        tap.is_(ct.write(other + "/target", "%s raw\n" % name), errno.EBUSY,
                "another directory still gets EBUSY for the tty")
        os.rmdir(other)

        # The tty is locked against other programs (flock; TIOCEXCL does not
        # stop root, so flock is what a root test can see).
        fd2 = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            tap.fail("the tty is flock()ed while it is a target")
        except OSError as e:
            tap.is_(e.errno, errno.EWOULDBLOCK, "the tty is flock()ed while it is a target")
        finally:
            os.close(fd2)

        tap.is_(ct.write(d + "/target", "\n"), 0, "clear the target")
        after = termios.tcgetattr(slave)
        tap.is_(after, before, "termios are restored on clear")
        os.close(master)
        os.close(slave)
        os.rmdir(d)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
