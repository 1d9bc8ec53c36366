#!/usr/bin/env python3
"""Target-side faults through the filesystem, with real targets: a sim
target failing with EIO mid-stream (fatal), a FIFO writer closing, a unix
socket peer closing, a TCP peer resetting, a pty master closing, an exec:
command exiting by itself and one killed with SIGKILL, a regular file and a
FIFO unlinked while open, a target stalling for 3 s, and request timeouts
(send timeout=, and a timeout completion of a stream).

For every fault: the completion status reaches `records` (or the stream
ends) and `stats`; readers of `data` and `records` opened before the fault
get every byte completed before it (numbered payloads, compared byte by
byte), then end of file or a clear error, never a hang; `state` says what
happened; and `echo start > ctl` works again once the target is usable
again (it opens a target whose stream ended by itself, or whose path now
names another file, again), and data flows; an exec: command's exit status
or signal shows in `presence:`.  Where the man page documents otherwise: a
FIFO writer leaving, or the FIFO's name being removed, does not end the
stream (FIFOs are opened read-write so writers may come and go; `wait`
follows the name), `start` on a dead pty fails with the open's error, and a
timed-out `send` is answered `ETIMEDOUT 0` without ending anything.
Writing the spec again revives a target too, and is checked as well.

Every read runs under a deadline: a reader still blocked after a fault is a
failed test, not a hung run (CRT_FAULT_END seconds, default 3, is how long
the end of a stream may take after the fault).  Each case runs in its own
directory; an exception in one case fails that case and the others still
run."""
import errno
import os
import pty
import re
import signal
import socket
import struct
import sys
import time
import traceback

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

END = float(os.environ.get("CRT_FAULT_END", "3"))
# Descriptors whose reader thread may still be blocked in read(2): closing
# them under the thread could let it read a reused descriptor, so they stay
# open until the daemon is gone (its exit ends every blocked read).
LEAKED = []


def lines(tag, first, last):
    """Numbered payload lines `TAG NNNNNN\\n`, first..last inclusive."""
    return b"".join(b"%s %06d\n" % (tag, i) for i in range(first, last + 1))


def sim_records(first, last, size=32):
    out = []
    for i in range(first, last + 1):
        head = b"%010d crtfs sim record " % i
        out.append(head + b"." * (size - len(head) - 1) + b"\n")
    return b"".join(out)


def diff(got, want):
    """A short description of how two byte strings differ."""
    if got == want:
        return "equal"
    n = min(len(got), len(want))
    i = next((k for k in range(n) if got[k] != want[k]), n)
    return "got %d bytes, want %d; first difference at %d: got %r, want %r" % (
        len(got), len(want), i, got[max(0, i - 16):i + 24], want[max(0, i - 16):i + 24])


def end_of(r):
    """How a Reader stands: eof, error ENAME, or hang (still blocked)."""
    if r.is_alive():
        return "hang"
    if r.error is not None:
        return "error " + errno.errorcode.get(r.error.errno, str(r.error.errno))
    return "eof" if r.eof else "stopped"


def parse_records(blob):
    """(records, leftover bytes) of a `records` stream."""
    p = ct.RecordParser()
    p.feed(blob)
    return p.records, p.buf


class Readers:
    """One reader of `data` and one of `records`, opened now (so they are
    registered before anything is produced); go() starts reading them in
    threads (later, to let completions wait in the pool first)."""

    def __init__(self, d, go=True):
        self.d = d
        self.fd_d = os.open(d + "/data", os.O_RDONLY)
        self.fd_r = os.open(d + "/records", os.O_RDONLY)
        self.rd = self.rr = None
        ct.wait_until(lambda: ct.stats(d)["readers"] >= 2, limit=5)
        if go:
            self.go()

    def go(self):
        self.rd = ct.Reader(self.fd_d)
        self.rr = ct.Reader(self.fd_r)

    def data(self):
        return bytes(self.rd.data)

    def records(self):
        return parse_records(bytes(self.rr.data))[0]

    def wait_data(self, n, limit=None):
        """Until the data reader has n bytes (or ended)."""
        return ct.wait_until(lambda: len(self.rd.data) >= n or not self.rd.is_alive(),
                             limit=T_DATA if limit is None else limit)

    def ended(self):
        return not self.rd.is_alive() and not self.rr.is_alive()

    def finish(self, limit=None):
        """Wait (bounded) for both readers to reach their end; a dict of what
        they got and how they ended.  Descriptors of readers that still
        block are left open (LEAKED)."""
        deadline = time.monotonic() + (END if limit is None else limit)
        for r in (self.rd, self.rr):
            r.join(max(0.0, deadline - time.monotonic()))
        recs, rest = parse_records(bytes(self.rr.data))
        res = {"data": bytes(self.rd.data), "recs": recs, "rest": rest,
               "data_end": end_of(self.rd), "rec_end": end_of(self.rr)}
        self.close()
        return res

    def close(self):
        for r, fd in ((self.rd, self.fd_d), (self.rr, self.fd_r)):
            if r is not None and r.is_alive():
                LEAKED.append(fd)
            else:
                os.close(fd)
        self.fd_d = self.fd_r = None


T_DATA = 5  # how long data written to a target may take to come out


def stat_delta(d, st0):
    st = ct.stats(d)
    return {k: st[k] - st0.get(k, 0) for k in ("completed", "failed", "cancelled")}, st


def wait_state(d, word, limit=None):
    ct.wait_until(lambda: ct.state(d)[0] == word, limit=END if limit is None else limit)
    return ct.state(d)


def check_end(tap, name, d, res, want, status_re, error_re, st0, failed=1):
    """The common properties after a fault that ends the stream."""
    tap.ok(res["data"] == want, "%s: data has every byte completed before the fault, in order"
           % name, diff(res["data"], want))
    tap.is_(res["data_end"], "eof", "%s: the data reader then gets end of file (no hang)" % name)
    recs = res["recs"]
    okp = b"".join(r[3] for r in recs if r[2] == "ok")
    tap.ok(okp == want, "%s: records' ok payloads are the same bytes" % name, diff(okp, want))
    tap.ok(not res["rest"], "%s: records is well formed (no partial record left)" % name,
           "leftover %r" % res["rest"][:80])
    errs = [r for r in recs if r[2] != "ok"]
    last = recs[-1][2] if recs else None
    tap.ok(errs and re.fullmatch(status_re, last or "") and
           all(re.fullmatch(status_re, r[2]) for r in errs),
           "%s: records ends with the fault's status header (%s)" % (name, status_re),
           "statuses after the last ok: %s" % [r[2] for r in recs if r[2] != "ok"],
           "last record: %r" % (recs[-1][:3] if recs else None,))
    tap.ok(not any(r[2] == "ok" for r in recs[recs.index(errs[0]):]) if errs else False,
           "%s: no ok record after the error status" % name)
    seqs = [r[0] for r in recs]
    tap.ok(seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False,
           "%s: record sequence numbers have no gap" % name, seqs[-8:])
    tap.is_(res["rec_end"], "eof", "%s: the records reader then gets end of file (no hang)" % name)
    word, fields = wait_state(d, "stopped")
    dl, st = stat_delta(d, st0)
    tap.diag("%s: observed: data %d bytes then %s; records %d ok then %s, then %s; state %s, "
             "error: %s; stats delta %s" % (
                 name, len(res["data"]), res["data_end"], sum(1 for r in recs if r[2] == "ok"),
                 [r[2] for r in errs] or "nothing", res["rec_end"], word, fields.get("error"), dl))
    nok = sum(1 for r in recs if r[2] == "ok")
    tap.is_(dl["completed"], nok, "%s: stats completed counts the %d ok completions" % (name, nok))
    if failed is None:
        tap.ok(dl["failed"] >= 1, "%s: stats failed counts the fault" % name, dl)
    else:
        tap.is_(dl["failed"], failed, "%s: stats failed counts the fault once" % name)
    tap.is_(word, "stopped", "%s: state says stopped" % name)
    tap.like(fields.get("error"), error_re, "%s: state error: says what happened" % name)
    return word, fields


def no_hang_start(tap, name, d):
    """start on a target that is still dead: accepted or refused, but no
    hang, and it ends up stopped again with a reason."""
    t0 = time.monotonic()
    try:
        rc = ct.write(d + "/ctl", "start")
    except TimeoutError:
        tap.fail("%s: start on the dead target returns" % name)
        return None
    tap.pass_("%s: start on the dead target returns (rc %s, %.2f s)" % (
        name, errno.errorcode.get(rc, rc), time.monotonic() - t0))
    word, fields = wait_state(d, "stopped")
    tap.is_(word, "stopped", "%s: a start on the dead target stops again by itself" % name)
    tap.diag("%s: after start on the dead target: %s, error: %s, stats %s" % (
        name, word, fields.get("error"), {k: v for k, v in ct.stats(d).items()
                                          if k in ("completed", "failed", "cancelled")}))
    return rc


def stop_if_streaming(d):
    if ct.state(d)[0] != "stopped":
        ct.write(d + "/ctl", "stop-wait")


def case(tap, name, fn, *args):
    """Run one case; an exception fails the case, not the run."""
    t0 = time.monotonic()
    try:
        fn(tap, *args)
    except Exception:
        tap.fail("%s: case ran to the end" % name, *traceback.format_exc().splitlines())
    tap.diag("%s: %.1f s" % (name, time.monotonic() - t0))


def accept(srv, limit):
    srv.settimeout(limit)
    try:
        c, _ = srv.accept()
        c.settimeout(ct.T)
        return c
    except socket.timeout:
        return None


# ---- (a) sim: EIO mid-stream -----------------------------------------------

def case_sim_eio(tap, m):
    name = "(a) sim EIO"
    d = m.mkdir("a-sim")
    tap.is_(ct.write(d + "/config/out_size", "32"), 0, "%s: out_size 32 (one record a buffer)" % name)
    tap.is_(ct.write(d + "/config/out_count", "256"), 0, "%s: out_count 256" % name)
    spec = "sim:records fail=41 errno=EIO fatal rate=400"
    tap.is_(ct.write(d + "/target", spec), 0, "%s: set %s" % (name, spec))
    rs = Readers(d)
    st0 = ct.stats(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    res = rs.finish(T_DATA)
    # Requests 1..40 were submitted before the failing one: each is a
    # numbered record, all of them come before the EIO.
    check_end(tap, name, d, res, sim_records(1, 40), r"EIO", r"stream ended: Input/output error",
              st0)

    # The device is still dead: start must not hang and must stop again.
    rs = Readers(d)
    no_hang_start(tap, name, d)
    res = rs.finish()
    tap.ok(res["data_end"] == "eof" and res["rec_end"] == "eof",
           "%s: readers of the restarted dead target get end of file" % name,
           "data %s, records %s" % (res["data_end"], res["rec_end"]))
    # Usable again: a fresh spec, then start, and data flows.
    spec = "sim:records limit=20"
    tap.is_(ct.write(d + "/target", spec), 0, "%s: set %s (a working device)" % (name, spec))
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start works again" % name)
    res = rs.finish(T_DATA)
    tap.ok(res["data"] == sim_records(1, 20) and res["data_end"] == "eof",
           "%s: after the restart data flows again (records 1..20, then end of file)" % name,
           diff(res["data"], sim_records(1, 20)), res["data_end"])


# ---- (b) FIFO writer closes ------------------------------------------------

def open_fifo_writer(path):
    """Open a FIFO for writing without waiting for a reader: (fd, None), or
    (None, errno name) (ENXIO: nobody has it open for reading)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        return None, errno.errorcode.get(e.errno, str(e.errno))
    os.set_blocking(fd, True)
    return fd, None


def write_all(fd, data):
    ct.with_deadline(lambda: [os.write(fd, data[i:i + 4096]) for i in range(0, len(data), 4096)])


def case_fifo_writer(tap, m):
    name = "(b) FIFO writer closes"
    f = os.path.join(m.tmp, "fifo-b")
    os.mkfifo(f)
    d = m.mkdir("b-fifo")
    tap.is_(ct.write(d + "/target", f), 0, "%s: set %s" % (name, f))
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    rs = Readers(d)
    st0 = ct.stats(d)
    p1 = lines(b"fifo-b", 1, 2000)
    w, err = open_fifo_writer(f)
    tap.ok(w is not None, "%s: a writer opens the FIFO" % name, err)
    write_all(w, p1)
    os.close(w)
    rs.wait_data(len(p1))
    time.sleep(0.5)  # time for a wrong end of stream to show
    tap.ok(rs.data() == p1, "%s: data has every byte the writer wrote" % name, diff(rs.data(), p1))
    # Documented (TARGET SPECS): FIFOs are opened read-write, writers may
    # come and go without ending the stream.
    tap.ok(not rs.rd.eof and rs.rd.is_alive() and rs.rr.is_alive(),
           "%s: the writer leaving does not end the readers' stream (documented)" % name)
    word, fields = ct.state(d)
    tap.is_(word, "streaming", "%s: state still streaming" % name)
    tap.is_(fields.get("error"), "none", "%s: state error: none" % name)
    dl, _ = stat_delta(d, st0)
    tap.is_(dl["failed"], 0, "%s: nothing failed" % name)
    p2 = lines(b"fifo-b", 2001, 3000)
    w, err = open_fifo_writer(f)
    write_all(w, p2)
    os.close(w)
    rs.wait_data(len(p1 + p2))
    tap.ok(rs.data() == p1 + p2, "%s: a new writer's bytes follow without a restart" % name,
           diff(rs.data(), p1 + p2))
    tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "%s: stop-wait" % name)
    res = rs.finish()
    tap.ok(res["data_end"] == "eof" and res["rec_end"] == "eof",
           "%s: stop ends both readers with end of file" % name, res["data_end"], res["rec_end"])
    tap.ok([r[2] for r in res["recs"]] == ["ok"] * len(res["recs"]) and
           b"".join(r[3] for r in res["recs"]) == p1 + p2,
           "%s: records: only ok completions, the same bytes" % name)
    dl, _ = stat_delta(d, st0)
    tap.is_(dl["completed"], len(res["recs"]), "%s: stats completed counts them" % name)
    # start again, a third writer, data flows
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start works again" % name)
    p3 = lines(b"fifo-b", 3001, 3100)
    w, err = open_fifo_writer(f)
    if w is not None:
        write_all(w, p3)
        os.close(w)
    rs.wait_data(len(p3))
    tap.ok(rs.data() == p3, "%s: after the restart data flows again" % name, diff(rs.data(), p3))
    ct.write(d + "/ctl", "stop-wait")
    rs.finish()


# ---- (c) unix socket peer closes, (d) TCP peer resets ---------------------

def socket_case(tap, m, name, dname, family, status_re, error_re, reset):
    if family == socket.AF_UNIX:
        addr = os.path.join(m.tmp, dname + ".sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(addr)
        spec = "unix:" + addr
    else:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        spec = "tcp:127.0.0.1:%d" % srv.getsockname()[1]
    srv.listen(4)
    d = m.mkdir(dname)
    tap.is_(ct.write(d + "/target", spec), 0, "%s: set %s" % (name, spec))
    peer = accept(srv, ct.T)
    tap.ok(peer is not None, "%s: the daemon connected" % name)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    rs = Readers(d)
    st0 = ct.stats(d)
    p1 = lines(dname.encode(), 1, 3000)
    peer.sendall(p1)
    # Only what the daemon completed before the fault is owed to readers.
    ct.wait_until(lambda: ct.stats(d)["bytes_read"] - st0["bytes_read"] >= len(p1), limit=T_DATA)
    if reset:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    res = rs.finish()
    check_end(tap, name, d, res, p1, status_re, error_re, st0)

    # The listener is still there: start should connect again.
    rs = Readers(d)
    t0 = time.monotonic()
    try:
        rc = ct.write(d + "/ctl", "start")
    except TimeoutError:
        rc = "hang"
    tap.is_(rc, 0, "%s: start after the fault is accepted" % name)
    peer = accept(srv, 2)
    tap.ok(peer is not None, "%s: start connects again (the listener gets a new connection)" % name,
           "no connection within 2 s; state %s, error: %s" % (ct.state(d)[0],
                                                              ct.state(d)[1].get("error")))
    p2 = lines(dname.encode(), 3001, 3100)
    if peer is not None:
        peer.sendall(p2)
    rs.wait_data(len(p2), limit=2 if peer is None else T_DATA)
    tap.ok(rs.data() == p2, "%s: after start data flows again" % name, diff(rs.data(), p2),
           "records seen: %s" % [(r[0], r[2], len(r[3])) for r in rs.records()][:6])
    stop_if_streaming(d)
    rs.finish()
    if peer is not None:
        peer.close()

    # Writing the spec again reconnects too.
    tap.is_(ct.write(d + "/target", spec), 0, "%s: set the spec again" % name)
    peer = accept(srv, ct.T)
    tap.ok(peer is not None, "%s: writing the spec again reconnects" % name)
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    if peer is not None:
        peer.sendall(p2)
    rs.wait_data(len(p2))
    tap.ok(rs.data() == p2, "%s: after writing the spec again data flows" % name,
           diff(rs.data(), p2))
    ct.write(d + "/ctl", "stop-wait")
    rs.finish()
    ct.write(d + "/target", "\n")
    if peer is not None:
        peer.close()
    srv.close()


# ---- (e) pty master closes -------------------------------------------------

def case_pty(tap, m):
    name = "(e) pty master closes"
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    d = m.mkdir("e-pty")
    tap.is_(ct.write(d + "/target", path + " raw"), 0, "%s: set %s raw" % (name, path))
    os.close(slave)  # the daemon holds the slave side now
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    rs = Readers(d)
    st0 = ct.stats(d)
    p1 = lines(b"pty", 1, 300)
    for i in range(0, len(p1), 1024):
        os.write(master, p1[i:i + 1024])
        ct.wait_until(lambda: ct.stats(d)["bytes_read"] - st0["bytes_read"] >= min(len(p1), i + 1024),
                      limit=T_DATA)
    os.close(master)
    res = rs.finish()
    check_end(tap, name, d, res, p1, r"EIO|ENODATA", r"stream ended: (Input/output error|end of file)",
              st0)

    # start opens the dead pty again: that fails, with the reason
    rc = ct.write(d + "/ctl", "start")
    tap.ok(rc in (errno.EIO, errno.ENOENT, errno.ENXIO),
           "%s: start on the dead pty fails (EIO/ENOENT/ENXIO)" % name, rc)
    tap.like(ct.state(d)[1].get("error"), path, "%s: error: names the pty" % name)

    # A new pty: set it, start, data flows.
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    tap.is_(ct.write(d + "/target", path + " raw"), 0, "%s: set the new pty %s" % (name, path))
    os.close(slave)
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start works again" % name)
    p2 = lines(b"pty", 301, 400)
    os.write(master, p2)
    rs.wait_data(len(p2))
    tap.ok(rs.data() == p2, "%s: data from the new pty flows" % name, diff(rs.data(), p2))
    ct.write(d + "/ctl", "stop-wait")
    rs.finish()
    ct.write(d + "/target", "\n")
    os.close(master)


# ---- (f) exec: exits by itself, killed ---------------------------------------

def proc_state(pid):
    """The /proc state letter of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def read_pid(path, limit=None):
    ct.wait_until(lambda: os.path.exists(path) and open(path).read().strip().isdigit(),
                  limit=T_DATA if limit is None else limit)
    try:
        return int(open(path).read().strip())
    except (OSError, ValueError):
        return None


def case_exec_exit(tap, m):
    name = "(f) exec exits by itself"
    pidf = os.path.join(m.tmp, "pid-f1")
    d = m.mkdir("f-exit")
    cmd = "exec:echo $$ > %s; seq -f 'exit %%06.0f' 1 3000; exit 3" % pidf
    tap.is_(ct.write(d + "/target", cmd), 0, "%s: set %s" % (name, cmd))
    rs = Readers(d)
    st0 = ct.stats(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    want = lines(b"exit", 1, 3000)
    res = rs.finish(T_DATA)
    word, fields = check_end(tap, name, d, res, want, r"ENODATA", r"stream ended: end of file", st0)
    tap.ok(ct.wait_until(lambda: re.search(r"^absent \(exited with status 3\b",
                                           ct.state(d)[1].get("presence", ""))),
           "%s: presence: says the command exited with status 3" % name,
           ct.state(d)[1].get("presence"))
    pid = read_pid(pidf)
    # The command stays a zombie while the target is set (its pid and
    # process group stay reserved for the kill at release); start or
    # clearing the target reaps it.
    tap.is_(proc_state(pid) if pid else None, "Z", "%s: kept as a zombie until released" % name)

    # start: the command runs again and its output flows.
    os.unlink(pidf)
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start after the exit is accepted" % name)
    res = rs.finish(T_DATA)
    tap.ok(read_pid(pidf, 1) is not None, "%s: start runs the command again" % name)
    tap.ok(pid and ct.wait_until(lambda: proc_state(pid) is None, limit=2),
           "%s: the old command is reaped at start" % name,
           "pid %s state %s" % (pid, proc_state(pid) if pid else None))
    tap.ok(res["data"] == want, "%s: after start its output flows again" % name,
           diff(res["data"], want), "records: %s" % [(r[0], r[2], len(r[3])) for r in res["recs"]][:6])
    tap.is_(res["data_end"], "eof", "%s: and ends with end of file" % name)

    # Writing the spec again runs it again too.
    respec_reads(tap, name, d, cmd, want, "spec", "the output flows")


def respec_reads(tap, name, d, spec, want, what, flows):
    """Stop, write `spec` to target again, start: readers get `want`, then
    end of file; the target is cleared afterwards."""
    stop_if_streaming(d)
    tap.is_(ct.write(d + "/target", spec), 0, "%s: set the %s again" % (name, what))
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    res = rs.finish(T_DATA)
    tap.ok(res["data"] == want and res["data_end"] == "eof",
           "%s: after writing the spec again %s" % (name, flows), diff(res["data"], want))
    ct.write(d + "/target", "\n")


def case_exec_kill(tap, m):
    name = "(f) exec killed"
    pidf = os.path.join(m.tmp, "pid-f2")
    d = m.mkdir("f-kill")
    cmd = "exec:echo $$ > %s; seq -f 'kill %%06.0f' 1 3000; exec sleep 30" % pidf
    tap.is_(ct.write(d + "/target", cmd), 0, "%s: set %s" % (name, cmd))
    rs = Readers(d)
    st0 = ct.stats(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    want = lines(b"kill", 1, 3000)
    rs.wait_data(len(want))
    pid = read_pid(pidf)
    tap.ok(pid, "%s: the command wrote its pid" % name)
    if pid:
        os.kill(pid, signal.SIGKILL)
    res = rs.finish()
    word, fields = check_end(tap, name, d, res, want, r"ENODATA|EPIPE|ECHILD",
                             r"stream ended: ", st0)
    tap.ok(ct.wait_until(lambda: re.search(r"^absent \(killed by signal 9 \(SIGKILL\)",
                                           ct.state(d)[1].get("presence", ""))),
           "%s: presence: says the command was killed by SIGKILL" % name,
           ct.state(d)[1].get("presence"))

    os.unlink(pidf)
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start after the kill is accepted" % name)
    pid2 = read_pid(pidf, 2)
    tap.ok(pid2 is not None, "%s: start runs the command again" % name)
    rs.wait_data(len(want), limit=2 if pid2 is None else T_DATA)
    tap.ok(rs.data() == want, "%s: after start its output flows again" % name,
           diff(rs.data(), want), "records: %s" % [(r[0], r[2], len(r[3])) for r in rs.records()][:6])
    stop_if_streaming(d)
    rs.finish()
    ct.write(d + "/target", "\n")


# ---- (g) a path target unlinked while open -----------------------------------

def case_unlink_file(tap, m):
    name = "(g) regular file unlinked"
    f = os.path.join(m.tmp, "file-g")
    want = lines(b"file", 1, 4000)
    with open(f, "wb") as fh:
        fh.write(want)
    d = m.mkdir("g-file")
    # 4 KiB buffers are shared, not copied (smaller ones would be copied on
    # arrival, up to 1 MiB, and the whole file would fit): the pool is the
    # bound, so the stream pauses mid-file.
    tap.is_(ct.write(d + "/config/out_size", "4096"), 0, "%s: out_size 4096" % name)
    tap.is_(ct.write(d + "/config/out_count", "4"), 0, "%s: out_count 4" % name)
    tap.is_(ct.write(d + "/target", f), 0, "%s: set %s" % (name, f))
    rs = Readers(d, go=False)  # registered, not reading: the stream pauses mid-file
    st0 = ct.stats(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    tap.ok(ct.wait_until(lambda: ct.stats(d)["out_pool_free"] == 0, limit=T_DATA),
           "%s: the stream pauses mid-file (pool full, nobody reads)" % name)
    os.unlink(f)
    rs.go()
    res = rs.finish(T_DATA)
    check_end(tap, name, d, res, want, r"ENODATA", r"stream ended: end of file", st0)

    # A new file at the same path; start should read it.
    want2 = lines(b"file", 4001, 4100)
    with open(f, "wb") as fh:
        fh.write(want2)
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start after the end is accepted" % name)
    res = rs.finish(T_DATA)
    tap.ok(res["data"] == want2, "%s: start reads the new file at the path" % name,
           diff(res["data"], want2), "records: %s" % [(r[0], r[2], len(r[3])) for r in res["recs"]][:6])
    tap.is_(res["data_end"], "eof", "%s: readers get end of file after it" % name)
    respec_reads(tap, name, d, f, want2, "path", "the new file flows")


def case_unlink_fifo(tap, m):
    name = "(g) FIFO unlinked"
    f = os.path.join(m.tmp, "fifo-g")
    os.mkfifo(f)
    d = m.mkdir("g-fifo")
    tap.is_(ct.write(d + "/target", f), 0, "%s: set %s" % (name, f))
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    rs = Readers(d)
    st0 = ct.stats(d)
    p1, p2 = lines(b"fifo-g", 1, 1000), lines(b"fifo-g", 1001, 2000)
    w, err = open_fifo_writer(f)
    write_all(w, p1)
    os.unlink(f)
    write_all(w, p2)  # the open writer still reaches the daemon
    os.close(w)
    ct.wait_until(lambda: ct.stats(d)["bytes_read"] - st0["bytes_read"] >= len(p1 + p2),
                  limit=T_DATA)
    # Without `wait`, a FIFO is held read-write: removing its name ends
    # nothing (a writer that still has it open may go on), the readers got
    # every byte and wait for more; `wait` (target-wait.py) follows the name.
    rs.wait_data(len(p1 + p2))
    tap.ok(rs.data() == p1 + p2, "%s: every byte written before and after the unlink "
           "arrives" % name, diff(rs.data(), p1 + p2))
    word, fields = ct.state(d)
    tap.is_((word, fields.get("error")), ("streaming", "none"),
            "%s: the stream goes on (streaming, no error)" % name)
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "%s: stop" % name)
    res = rs.finish()
    tap.ok(res["data_end"] == "eof" and res["rec_end"] == "eof",
           "%s: stop ends the readers" % name, "data %s, records %s" % (res["data_end"],
                                                                    res["rec_end"]))

    # The FIFO comes back: start sees the path names another file and opens it.
    stop_if_streaming(d)
    os.mkfifo(f)
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start after the FIFO came back" % name)
    w, err = open_fifo_writer(f)
    tap.ok(w is not None, "%s: start opens the new FIFO (a writer can open it)" % name,
           "open(O_WRONLY|O_NONBLOCK) of the new FIFO: %s" % err)
    p3 = lines(b"fifo-g", 2001, 2100)
    if w is not None:
        write_all(w, p3)
        os.close(w)
    rs.wait_data(len(p3), limit=2)
    tap.ok(rs.data() == p3, "%s: after start data flows again" % name, diff(rs.data(), p3))
    stop_if_streaming(d)
    rs.finish()
    tap.is_(ct.write(d + "/target", f), 0, "%s: set the path again" % name)
    rs = Readers(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    w, err = open_fifo_writer(f)
    tap.ok(w is not None, "%s: after writing the spec again a writer opens it" % name, err)
    if w is not None:
        write_all(w, p3)
        os.close(w)
    rs.wait_data(len(p3))
    tap.ok(rs.data() == p3, "%s: and data flows" % name, diff(rs.data(), p3))
    ct.write(d + "/ctl", "stop-wait")
    rs.finish()
    ct.write(d + "/target", "\n")


# ---- (h) a target that stalls 3 s ------------------------------------------------

def case_stall(tap, m):
    name = "(h) stall"
    f = os.path.join(m.tmp, "fifo-h")
    os.mkfifo(f)
    df = m.mkdir("h-fifo")
    de = m.mkdir("h-exec")
    tap.is_(ct.write(df + "/target", f), 0, "%s: set FIFO %s" % (name, f))
    cmd = "exec:seq -f 'stall %06.0f' 1 100; sleep 3; seq -f 'stall %06.0f' 101 200"
    tap.is_(ct.write(de + "/target", cmd), 0, "%s: set %s" % (name, cmd))
    rf, re_ = Readers(df), Readers(de)
    sf0, se0 = ct.stats(df), ct.stats(de)
    tap.is_(ct.write(df + "/ctl", "start"), 0, "%s: start the FIFO" % name)
    p1, p2 = lines(b"stall", 1, 100), lines(b"stall", 101, 200)

    def writer():
        w, _ = open_fifo_writer(f)
        os.write(w, p1)
        time.sleep(3)
        os.write(w, p2)
        os.close(w)

    wt = ct.in_thread(writer)
    tap.is_(ct.write(de + "/ctl", "start"), 0, "%s: start the exec" % name)
    rf.wait_data(len(p1))
    re_.wait_data(len(p1))
    time.sleep(1.5)  # in the middle of the stall
    for tag, d, r, s0 in (("FIFO", df, rf, sf0), ("exec", de, re_, se0)):
        tap.ok(r.data() == p1 and r.rd.is_alive() and r.rr.is_alive(),
               "%s: %s: during the stall readers have the first part and still wait" % (name, tag),
               diff(r.data(), p1))
        w, fl = ct.state(d)
        tap.ok(w == "streaming" and fl.get("error") == "none",
               "%s: %s: during the stall state streaming, error: none" % (name, tag), w, fl)
        tap.is_(stat_delta(d, s0)[0]["failed"], 0, "%s: %s: nothing failed during the stall" % (name, tag))
    wt.join(T_DATA)
    rf.wait_data(len(p1 + p2))
    tap.ok(rf.data() == p1 + p2, "%s: FIFO: the rest arrives after the stall" % name,
           diff(rf.data(), p1 + p2))
    tap.ok(rf.rd.is_alive(), "%s: FIFO: the stream goes on (no end of file)" % name)
    res = re_.finish(T_DATA)
    check_end(tap, name + " exec", de, res, p1 + p2, r"ENODATA", r"stream ended: end of file", se0)
    tap.is_(ct.state(df)[0], "streaming", "%s: FIFO: still streaming" % name)
    tap.is_(ct.write(df + "/ctl", "stop-wait"), 0, "%s: FIFO: stop-wait" % name)
    res = rf.finish()
    tap.ok(res["data_end"] == "eof" and [r[2] for r in res["recs"]] == ["ok"] * len(res["recs"]),
           "%s: FIFO: stop ends the readers; records only ok" % name, res["data_end"])
    ct.write(de + "/target", "\n")


# ---- (i) timeouts ----------------------------------------------------------------

def reply(fd, limit):
    b = ct.read_fd(fd, 1 << 16, limit=limit)
    head, _, data = b.partition(b"\n")
    return head.decode(errors="replace"), data


def case_timeouts(tap, m):
    name = "(i) send timeout"
    addr = os.path.join(m.tmp, "i.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(addr)
    srv.listen(4)
    d = m.mkdir("i-send")
    tap.is_(ct.write(d + "/target", "unix:" + addr), 0, "%s: set unix:%s" % (name, addr))
    peer = accept(srv, ct.T)
    tap.ok(peer is not None, "%s: the daemon connected" % name)
    st0 = ct.stats(d)
    sfd = os.open(d + "/send", os.O_RDWR)

    # A read nobody answers, target stopped.
    t0 = time.monotonic()
    os.write(sfd, b"read timeout=300 size=64\n")
    try:
        r = reply(sfd, 3)
    except TimeoutError:
        r = ("hang", b"")
    dt = time.monotonic() - t0
    tap.is_(r, ("ETIMEDOUT 0", b""), "%s: read timeout=300 on a silent peer: ETIMEDOUT 0" % name)
    tap.ok(0.25 <= dt <= 1.5, "%s: ... after about 300 ms (%.3f s)" % (name, dt))
    word, fields = ct.state(d)
    tap.is_(word, "stopped", "%s: state word unchanged (stopped)" % name)
    # The peer answers late: nothing lost, the next read gets it.
    peer.sendall(b"late 000001\n")
    os.write(sfd, b"read timeout=2000 size=64\n")
    try:
        r = reply(sfd, 4)
    except TimeoutError:
        r = ("hang", b"")
    tap.is_(r, ("ok 12", b"late 000001\n"), "%s: the next read gets the late bytes" % name)

    # A transaction the peer never answers.
    t0 = time.monotonic()
    os.write(sfd, b"internal-ioctl ioctl=1 timeout=300 size=64\nPING 000001\n")
    try:
        got = peer.recv(64)
    except socket.timeout:
        got = b""
    tap.is_(got, b"PING 000001\n", "%s: the peer receives the transaction's request" % name)
    try:
        r = reply(sfd, 3)
    except TimeoutError:
        r = ("hang", b"")
    dt = time.monotonic() - t0
    tap.is_(r, ("ETIMEDOUT 0", b""), "%s: unanswered internal-ioctl timeout=300: ETIMEDOUT 0" % name)
    tap.ok(0.25 <= dt <= 1.5, "%s: ... after about 300 ms (%.3f s)" % (name, dt))
    os.write(sfd, b"internal-ioctl ioctl=1 timeout=3000 size=64\nPING 000002\n")
    got = peer.recv(64)
    peer.sendall(b"PONG 000002\n")
    try:
        r = reply(sfd, 4)
    except TimeoutError:
        r = ("hang", b"")
    tap.is_((got, r), (b"PING 000002\n", ("ok 12", b"PONG 000002\n")),
            "%s: the next transaction is answered" % name)
    dl, st = stat_delta(d, st0)
    tap.is_(st["sends"] - st0["sends"], 4, "%s: stats sends counts the four requests" % name)

    # While streaming: a timed-out send does not disturb the stream.
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start streaming" % name)
    rs = Readers(d)
    p1 = lines(b"i-send", 1, 500)
    peer.sendall(p1)
    rs.wait_data(len(p1))
    t0 = time.monotonic()
    os.write(sfd, b"read timeout=300 size=64\n")
    try:
        r = reply(sfd, 3)
    except TimeoutError:
        r = ("hang", b"")
    tap.is_(r, ("ETIMEDOUT 0", b""), "%s: a read timing out while the stream runs: ETIMEDOUT 0" % name)
    p2 = lines(b"i-send", 501, 1000)
    peer.sendall(p2)
    rs.wait_data(len(p1 + p2))
    tap.ok(rs.data() == p1 + p2, "%s: the stream goes on undisturbed, every byte in order" % name,
           diff(rs.data(), p1 + p2))
    tap.is_(ct.state(d)[0], "streaming", "%s: still streaming" % name)
    ct.write(d + "/ctl", "stop-wait")
    res = rs.finish()
    tap.ok(res["data_end"] == "eof" and all(r[2] == "ok" for r in res["recs"]),
           "%s: records only ok, end of file after stop" % name)
    os.close(sfd)
    ct.write(d + "/target", "\n")
    peer.close()
    srv.close()

    # A streaming completion with ETIMEDOUT (sim errno=ETIMEDOUT): the man
    # page says timeouts never end a stream.
    name = "(i) stream timeout"
    d = m.mkdir("i-stream")
    tap.is_(ct.write(d + "/config/out_size", "32"), 0, "%s: out_size 32" % name)
    tap.is_(ct.write(d + "/config/out_count", "256"), 0, "%s: out_count 256" % name)
    spec = "sim:records fail=10 errno=ETIMEDOUT rate=100 limit=60"
    tap.is_(ct.write(d + "/target", spec), 0, "%s: set %s" % (name, spec))
    rs = Readers(d)
    st0 = ct.stats(d)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    seen = ct.wait_until(lambda: [r[2] for r in rs.records()].count("ok") >= 20, limit=T_DATA)
    tap.ok(seen and "ETIMEDOUT" in [r[2] for r in rs.records()],
           "%s: records shows the ETIMEDOUT completion, ok records after it" % name,
           [r[2] for r in rs.records()][:14])
    w, fl = ct.state(d)
    tap.is_(w, "streaming", "%s: the timeout does not end the stream" % name)
    tap.like(fl.get("error"), r"ETIMEDOUT|timed out", "%s: state error: reports it" % name)
    res = rs.finish(T_DATA)
    tap.ok(res["data"] == sim_records(1, 60), "%s: data has all 60 records, no gap" % name,
           diff(res["data"], sim_records(1, 60)))
    tap.is_([r[2] for r in res["recs"]].count("ETIMEDOUT"), 1, "%s: one ETIMEDOUT record" % name)
    tap.is_(res["data_end"], "eof", "%s: limit= then ends it with end of file" % name)
    dl, _ = stat_delta(d, st0)
    tap.is_(dl["failed"], 2, "%s: stats failed counts the timeout and the end" % name)


def main(tap):
    with ct.Mount(tap) as m:
        t0 = time.monotonic()
        case(tap, "(a)", case_sim_eio, m)
        case(tap, "(b)", case_fifo_writer, m)
        case(tap, "(c)", socket_case, m, "(c) unix peer closes", "c-unix", socket.AF_UNIX,
             r"ENODATA", r"stream ended: end of file", False)
        case(tap, "(d)", socket_case, m, "(d) tcp peer resets", "d-tcp", socket.AF_INET,
             r"ECONNRESET", r"stream ended: Connection reset by peer", True)
        case(tap, "(e)", case_pty, m)
        case(tap, "(f) exit", case_exec_exit, m)
        case(tap, "(f) kill", case_exec_kill, m)
        case(tap, "(g) file", case_unlink_file, m)
        case(tap, "(g) fifo", case_unlink_fifo, m)
        case(tap, "(h)", case_stall, m)
        case(tap, "(i)", case_timeouts, m)
        tap.diag("cases: %.1f s" % (time.monotonic() - t0))
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM after all the faults")
    for fd in LEAKED:
        try:
            os.close(fd)
        except OSError:
            pass


ct.run_tap(main)
