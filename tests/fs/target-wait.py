#!/usr/bin/env python3
"""Targets that come and go (`wait`): a FIFO created and removed five times
while a reader reads, a pty behind a symlink whose master closes and comes
back, a unix socket whose server closes connections and restarts, and a
target that is absent when the mount starts.  Every byte written while the
target was there arrives, in order; each loss and return is a header line in
`records` (ENOENT / ENODATA / EIO, then EISCONN), `state` says whether the
target is there; options and refusals."""
import os
import pty
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


class RecordsReader(threading.Thread):
    """Reads `records` until end of file or stop(); keeps the parsed list."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY)
        self.blob = b""
        self.error = None
        self.start()

    def run(self):
        try:
            while True:
                b = os.read(self.fd, 1 << 16)
                if not b:
                    return
                self.blob += b
        except OSError as e:
            self.error = e

    def records(self):
        return ct.parse_records_prefix(self.blob)

    def finish(self):
        self.join(ct.T)
        os.close(self.fd)
        return not self.is_alive()


def payload(recs):
    return b"".join(r[3] for r in recs if r[2] == "ok")


def statuses(recs):
    return [r[2] for r in recs if r[2] != "ok"]


def fifo_rounds(tap, m):
    d = m.mkdir("fifo")
    fifo = os.path.join(m.tmp, "fifo")
    tap.is_(ct.write(d + "/target", fifo + " wait"), 0, "an absent FIFO with wait: accepted")
    st = ct.state(d)[1]
    tap.like(st.get("presence"), r"^absent, waiting since .*No such file",
             "presence: absent, and why")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start while absent")
    tap.is_(ct.state(d)[0], "streaming", "streaming while absent")
    reader = RecordsReader(d + "/records")
    want = b""
    for i in range(5):
        os.mkfifo(fifo)
        chunk = b"".join(b"round %d line %03d\n" % (i, j) for j in range(200))
        w = ct.with_deadline(os.open, fifo, os.O_WRONLY)  # blocks until crtfs opens it
        ct.with_deadline(os.write, w, chunk)
        os.close(w)
        want += chunk
        os.unlink(fifo)  # with bytes unread: they still arrive
    ok = ct.wait_until(lambda: statuses(reader.records()).count("ENOENT") == 5)
    recs = reader.records()
    tap.ok(ok, "five removals seen", statuses(recs))
    tap.is_(payload(recs), want, "every byte written in the five rounds arrives, in order")
    tap.is_(statuses(recs), ["EISCONN", "ENOENT"] * 5,
            "records: EISCONN at each arrival, ENOENT at each removal, nothing else")
    seqs = [r[0] for r in recs]
    tap.is_(seqs, list(range(1, len(seqs) + 1)), "no gap in SEQ")
    tap.ok(all(r[3] == b"" for r in recs if r[2] != "ok"), "markers carry no data")
    st = ct.state(d)
    tap.is_(st[0], "streaming", "still streaming after the last removal")
    tap.like(st[1].get("presence"), r"^absent, .*\(lost 5, back 5\)", "presence counts")
    s = ct.stats(d)
    tap.is_((s.get("target_losses"), s.get("target_returns")), (5, 5),
            "stats: target_losses 5, target_returns 5")
    # `data` is not polluted by the markers
    dfd = os.open(d + "/data", os.O_RDONLY)
    os.mkfifo(fifo)
    w = ct.with_deadline(os.open, fifo, os.O_WRONLY)
    os.write(w, b"after\n")
    tap.is_(ct.read_fd(dfd, 4096), b"after\n", "data: only the bytes, no markers")
    tap.like(ct.state(d)[1].get("presence"), r"^present", "presence: present")
    os.close(w)
    os.unlink(fifo)
    tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")
    tap.ok(reader.finish(), "the records reader gets end of file at stop")
    os.close(dfd)


def pty_rounds(tap, m):
    d = m.mkdir("tty")
    link = os.path.join(m.tmp, "ttylink")
    master, slave = pty.openpty()
    os.symlink(os.ttyname(slave), link)
    os.close(slave)
    tap.is_(ct.write(d + "/target", link + " raw wait"), 0, "a pty link with wait")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    reader = RecordsReader(d + "/records")
    want = b""
    for i in range(3):
        msg = b"pty round %d\n" % i
        os.write(master, msg)
        want += msg
        ok = ct.wait_until(lambda: payload(reader.records()) == want)
        tap.ok(ok, "round %d arrives" % i)
        os.close(master)  # the slave reads EIO: lost
        ok = ct.wait_until(lambda: len(statuses(reader.records())) >= 2 * i + 1)
        tap.ok(ok, "round %d: the hang-up is seen" % i, statuses(reader.records()))
        os.unlink(link)
        master, slave = pty.openpty()
        os.symlink(os.ttyname(slave), link + ".new")
        os.rename(link + ".new", link)  # as `ln -sf` does
        os.close(slave)
        ok = ct.wait_until(lambda: len(statuses(reader.records())) >= 2 * i + 2)
        tap.ok(ok, "round %d: the new pty is taken" % i, statuses(reader.records()))
    os.write(master, b"last\n")
    want += b"last\n"
    tap.ok(ct.wait_until(lambda: payload(reader.records()) == want),
           "every byte written on the masters arrives in order")
    st = statuses(reader.records())
    # Between the hang-up and the new link, crtfs may open the old path once
    # more (a dead pty, or a reused pts number) and lose it again (ENOENT
    # when the link goes): extra pairs, never a broken alternation.
    pairs = list(zip(st[0::2], st[1::2]))
    tap.ok(len(st) % 2 == 0 and len(pairs) >= 3 and
           all(a in ("EIO", "ENODATA", "ENOENT") and b == "EISCONN" for a, b in pairs),
           "markers alternate: a loss (EIO, ENODATA or ENOENT), then EISCONN; "
           "at least three of each", st)
    tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")
    tap.ok(reader.finish(), "reader ends")
    tap.is_(ct.write(d + "/target", ""), 0, "target cleared")
    os.close(master)


def socket_server(tap, m):
    d = m.mkdir("sock")
    path = os.path.join(m.tmp, "srv.sock")
    tap.is_(ct.write(d + "/target", "unix:%s wait" % path), 0, "an absent socket with wait")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    reader = RecordsReader(d + "/records")
    want = b""
    for i in range(3):
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(ct.T)
        for j in range(2):  # two connections per server: a close, then a reconnect
            conn, _ = srv.accept()
            msg = b"server %d conn %d\n" % (i, j)
            conn.sendall(msg)
            want += msg
            ct.wait_until(lambda: payload(reader.records()) == want)
            conn.close()
        srv.close()
        os.unlink(path)
    tap.ok(ct.wait_until(lambda: payload(reader.records()) == want),
           "every byte of six connections to three servers arrives in order")
    tap.ok(ct.wait_until(lambda: ct.state(d)[1].get("presence", "").startswith("absent")),
           "presence: absent after the last server")
    st = statuses(reader.records())
    tap.is_(st[:1], ["EISCONN"], "the first connection is a return (absent at start)")
    # A reconnect can land in a closing server's backlog (the kernel accepts
    # it), and then end at once: at most one such extra per server.
    pairs = list(zip(st[0::2], st[1::2]))
    tap.ok(len(st) % 2 == 0 and all(a == "EISCONN" and b in ("ENODATA", "ECONNRESET")
                                    for a, b in pairs),
           "markers alternate: EISCONN at each connection, ENODATA/ECONNRESET at its end", st)
    tap.ok(6 <= len(pairs) <= 9, "six connections (plus at most one per server from the "
           "backlog): %d" % len(pairs), st)
    tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")
    tap.ok(reader.finish(), "reader ends")


def refusals(tap, m):
    d = m.mkdir("bad")
    for spec, why in (("sim: wait", "path and socket"), ("sim:records wait", "path and socket"),
                      ("unix:/x wait=1", "takes no value"), ("unix:/x foo", "only \"wait\""),
                      ("unix:/x shared", "path targets")):
        tap.is_(ct.write(d + "/target", spec), 22, "%r: EINVAL" % spec)
        tap.like(ct.state(d)[1].get("error"), why, "error: says why")
    tap.is_(ct.write(d + "/target", "/nonexistent-dir/x wait"), 0,
            "a path in a missing directory waits too")
    tap.like(ct.state(d)[1].get("presence"), "^absent", "and is absent")
    tap.is_(ct.write(d + "/target", "/etc/hostname wait"), 0, "a regular file with wait")
    tap.like(ct.state(d)[1].get("presence"), "^present", "is present")
    fd = os.open(d + "/data", os.O_RDONLY)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    with open("/etc/hostname", "rb") as f:
        tap.is_(ct.read_all_fd(fd), f.read(), "a regular file's end of file ends the stream")
    os.close(fd)


def absent_at_mount(tap):
    tmp = os.path.join("/tmp", "crtfs-wait-%d" % os.getpid())
    os.makedirs(tmp, exist_ok=True)
    fifo = os.path.join(tmp, "later")
    conf = "[later]\ntarget=%s wait\nautostart=true\n" % fifo
    try:
        with ct.Mount(tap, config=conf) as m:
            d = os.path.join(m.path, "later")
            tap.is_(ct.state(d)[0], "streaming", "absent at mount: the mount comes up, streaming")
            tap.like(ct.state(d)[1].get("presence"), "^absent", "and waits")
            fd = os.open(d + "/data", os.O_RDONLY)
            os.mkfifo(fifo)
            w = ct.with_deadline(os.open, fifo, os.O_WRONLY)
            os.write(w, b"late data\n")
            tap.is_(ct.read_fd(fd, 4096), b"late data\n", "data flows once it appears")
            os.close(w)
            os.close(fd)
            tap.is_(m.stop(), 0, "daemon exits 0")
    finally:
        if os.path.exists(fifo):
            os.unlink(fifo)
        os.rmdir(tmp)


def main(tap):
    with ct.Mount(tap) as m:
        fifo_rounds(tap, m)
        pty_rounds(tap, m)
        socket_server(tap, m)
        refusals(tap, m)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")
    absent_at_mount(tap)


ct.run_tap(main)
