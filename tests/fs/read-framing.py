#!/usr/bin/env python3
"""framing=record: a read returns at most one buffer (the rest of a partly
read buffer comes next); framing=stream: a read packs as many whole or
partial buffers as fit.  Same on records, with headers."""
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

REC = 32  # bytes per buffer: out_size 32, sim records of 32 bytes


def fill(tap, d, n, name="data"):
    """Open `name`, run a sim:records limit=n stream to its end without
    reading, and return the fd: it then holds n buffers and the end."""
    fd = os.open(d + "/" + name, os.O_RDONLY)
    tap.is_(ct.write(d + "/target", "sim:records limit=%d" % n), 0, "sim:records limit=%d" % n)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start, not reading yet")
    ct.wait_until(lambda: ct.state(d)[0] == "stopped")
    tap.is_(ct.stats(d)["buffers_queued"], n + 1, "%d buffers and the end are queued" % n)
    return fd


def main(tap):
    with ct.Mount(tap) as m:
        d = m.mkdir("fr")
        tap.is_(ct.write(d + "/config/out_size", str(REC)), 0, "out_size %d" % REC)

        # record framing (the default)
        tap.is_(ct.read(d + "/config/framing"), "record\n", "framing defaults to record")
        fd = fill(tap, d, 10)
        sizes = [len(ct.read_fd(fd, 4096)) for _ in range(3)]
        tap.is_(sizes, [REC] * 3, "record: each 4096-byte read returns one 32-byte buffer")
        a = ct.read_fd(fd, 10)
        b = ct.read_fd(fd, 4096)
        tap.is_((len(a), len(b)), (10, REC - 10),
                "record: a short read takes part of a buffer, the next read the rest")
        tap.ok((a + b).startswith(b"0000000004 crtfs sim record"), "the split buffer is record 4",
               repr(a + b))
        rest = ct.read_all_fd(fd, 4096)
        tap.is_(len(rest), 6 * REC, "the other 6 buffers follow, then end of file")
        os.close(fd)

        # stream framing: one read packs everything kept
        tap.is_(ct.write(d + "/config/framing", "stream"), 0, "framing stream")
        fd = fill(tap, d, 10)
        first = ct.read_fd(fd, 4096)
        tap.is_(len(first), 10 * REC, "stream: one read returns all 10 buffers")
        tap.is_(ct.read_fd(fd, 4096), b"", "then end of file")
        os.close(fd)
        fd = fill(tap, d, 10)
        part = ct.read_fd(fd, 50)
        tap.is_(len(part), 50, "stream: a 50-byte read packs one and a half buffers")
        more = ct.read_fd(fd, 4096)
        tap.is_(len(part) + len(more), 10 * REC, "the rest follows, nothing lost")
        tap.ok((part + more).count(b"crtfs sim record") == 10, "ten whole records in all")
        os.close(fd)

        # records: record framing returns one header + buffer per read
        tap.is_(ct.write(d + "/config/framing", "record"), 0, "framing record")
        fd = fill(tap, d, 5, "records")
        r1 = ct.read_fd(fd, 4096)
        tap.is_(len(ct.parse_records(r1)), 1, "records/record: one header and buffer per read")
        rest = ct.read_all_fd(fd, 4096)
        tap.is_(len(ct.parse_records(rest)), 5, "the other 4 and the end follow")
        os.close(fd)
        tap.is_(ct.write(d + "/config/framing", "stream"), 0, "framing stream")
        fd = fill(tap, d, 5, "records")
        r1 = ct.read_fd(fd, 4096)
        tap.is_(len(ct.parse_records(r1)), 6, "records/stream: one read packs all headers and buffers")
        os.close(fd)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
