#!/usr/bin/env python3
"""Message framing (config/split): one message = one buffer = one record.
Against a pty at 115200 and at a 1 Mbaud-equivalent rate (writers paced at
the byte rate): idle gaps (gaps of 0.3x the threshold inside a message, 3x
between messages), idle=3.5char timed from the tty's baud (300), delimiters
(bursts of many messages in one write, one byte at a time), length, the
size and wait limits and their counters; framing=record reads of `data`
return one message each; bad values say why; a live change while
streaming.  Then a FIFO, a unix socket and an exec: command, framed by
delimiter (framing on targets that are not ttys)."""
import os
import pty
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

IDLE_MS = 100  # the idle threshold of the timing cases (a loaded machine delays
# a pty's delivery or the daemon by tens of ms: the gaps stay well clear)
UNDER = 0.3 * IDLE_MS / 1000  # a pause inside a message
OVER = 3 * IDLE_MS / 1000  # the silence between messages


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def paced(fd, msg, rate, chunk, log=None):
    """Write msg at `rate` bytes per second, `chunk` bytes at a time.  With
    `log`, append (offset in msg, start, end) of every write: when each
    piece could have reached the daemon."""
    t0 = time.monotonic()
    for i in range(0, len(msg), chunk):
        start = time.monotonic()
        write_all(fd, msg[i:i + chunk])
        if log is not None:
            log.append((i, start, time.monotonic()))
        delay = t0 + (i + chunk) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def stalls(log, base, threshold):
    """Offsets (from `base`) where the writer itself fell silent for up to
    `threshold` or longer inside a message (descheduled on a loaded
    machine): a cut there is right, not a framing error.  The daemon may
    see the longest silence between one write's start and the next one's
    end."""
    return {base + log[k + 1][0] for k in range(len(log) - 1)
            if log[k + 1][2] - log[k][1] >= threshold}


class Collect(threading.Thread):
    """Reads `n` records from d/records (opened before anything is
    written: a tty keeps nothing for later readers)."""

    def __init__(self, d, n, nbytes=None):
        super().__init__(daemon=True)
        self.fd = os.open(d + "/records", os.O_RDONLY)
        ct.wait_until(lambda: ct.stats(d)["readers"] == 1)
        self.n = n
        self.nbytes = nbytes  # or read until this many payload bytes came
        self.parser = ct.RecordParser()
        self.start()

    def run(self):
        while not self.done():
            try:
                b = os.read(self.fd, 1 << 20)
            except OSError:
                return
            if not b:
                return
            self.parser.feed(b)

    def done(self):
        if self.nbytes is not None:
            return sum(len(r[3]) for r in self.parser.records) >= self.nbytes
        return len(self.parser.records) >= self.n

    def result(self):
        """The records' payloads (those read within the time limit)."""
        self.join(ct.T)
        if self.is_alive():  # short of records: a read stays blocked
            return list(r[3] for r in self.parser.records)
        os.close(self.fd)
        return [r[3] for r in self.parser.records]


def exact(tap, what, got, want):
    """Every record is one message: print the counts and check them."""
    same = sum(1 for a, b in zip(got, want) if a == b)
    tap.diag("%s: %d messages, %d records, %d exact" % (what, len(want), len(got), same))
    tap.ok(len(got) == len(want) and same == len(want),
           "%s: every record is exactly one message" % what,
           "first differences: %r" % [(a, b) for a, b in zip(got, want) if a != b][:3])


def set_key(d, key, value):
    return ct.write(d + "/config/" + key, value)


ATTEMPTS = 3  # a timing case runs again when the machine got in its way


def idle_case(tap, d, master, tty, baud, rate, chunk, split="idle=%dms" % IDLE_MS):
    """Messages paced at the line's byte rate, a pause of 0.3x the
    threshold inside some, 3x between them.  Time on a loaded machine is
    not the test's to command: the pty's flush or the daemon can be late
    by more than a gap (records then merge or split where the writer did
    neither), so a case that fails runs again, up to ATTEMPTS times; a
    framing fault fails every time."""
    rng = random.Random(baud)
    msgs = [bytes(rng.randrange(256) for _ in range(rng.randrange(8, 300))) for _ in range(25)]
    what = "%s at %d baud (%d bytes/s)" % (split, baud, rate)
    tap.is_(ct.write(d + "/target", "%s baud=%d raw" % (tty, baud)), 0, "pty at %d baud" % baud)
    tap.is_(set_key(d, "split", split), 0, "split %s" % split)
    for attempt in range(1, ATTEMPTS + 1):
        good, why = idle_attempt(d, master, msgs, rate, chunk, crt_idle_s(split, baud))
        tap.diag("%s, attempt %d: %s" % (what, attempt, why))
        if good:
            break
    tap.ok(good, "%s: every record is one message (or a part cut where the writer "
           "itself stalled)" % what)


def idle_attempt(d, master, msgs, rate, chunk, threshold):
    """One run of an idle case: (exact, what was seen)."""
    if ct.write(d + "/ctl", "start") != 0:
        return False, "start failed"
    c = Collect(d, len(msgs), sum(len(m) for m in msgs))
    allowed = set()  # (message, offset): cuts the writer's own stalls make right
    for i, m in enumerate(msgs):
        log = []
        if i % 3 == 1:  # a pause well under the threshold inside the message
            half = len(m) // 2
            paced(master, m[:half], rate, chunk, log)
            time.sleep(UNDER)
            part = []
            paced(master, m[half:], rate, chunk, part)
            log += [(half + o, a, b) for o, a, b in part]
        else:
            paced(master, m, rate, chunk, log)
        allowed |= {(i, o) for o in stalls(log, 0, threshold * 0.7)}
        time.sleep(OVER)
    got = c.result()
    if ct.write(d + "/ctl", "stop") != 0:
        return False, "stop failed"
    return judge(got, msgs, allowed)


def crt_idle_s(split, baud):
    """The idle threshold of an idle= split, in seconds."""
    v = split[len("idle="):]
    if v.endswith("ms"):
        return float(v[:-2]) / 1000
    return float(v[:-len("char")]) * 10 / baud  # 8N1: 10 bits a character


def judge(got, msgs, allowed):
    """Every byte in order, a record end at every message's end, and a cut
    inside a message only where the writer was silent (`allowed`)."""
    ends, stall_at, start = set(), set(), 0
    for i, m in enumerate(msgs):
        stall_at |= {start + o for (j, o) in allowed if j == i}
        start += len(m)
        ends.add(start)
    cuts, pos = set(), 0
    for r in got:
        pos += len(r)
        cuts.add(pos)
    same = sum(1 for a, b in zip(got, msgs) if a == b)
    good = b"".join(got) == b"".join(msgs) and ends <= cuts and cuts <= ends | stall_at
    why = "%d messages, %d records, %d exact, the writer stalled at %d places" % (
        len(msgs), len(got), same, len(stall_at))
    if not good:
        why += "; cuts not at a message end or a stall: %r; ends not cut: %r" % (
            sorted(cuts - ends - stall_at)[:5], sorted(ends - cuts)[:5])
    return good, why


def delim_case(tap, d, master):
    lines = [b"line %05d %s\n" % (i, b"x" * (i % 50)) for i in range(300)]
    tap.is_(set_key(d, "split", "delim=\\n"), 0, "split delim=\\n")
    tap.is_(ct.read(d + "/config/split"), "delim=\\n\n", "config/split reads back delim=\\n")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    c = Collect(d, len(lines))
    write_all(master, b"".join(lines))
    exact(tap, "delim: a burst of 300 lines in one write", c.result(), lines)

    # paced at a 1 Mbaud line's byte rate, in pieces that straddle lines
    paced_lines = [b"paced %04d %s\n" % (i, b"y" * (i % 70)) for i in range(400)]
    c = Collect(d, len(paced_lines))
    paced(master, b"".join(paced_lines), 100000, 64)
    exact(tap, "delim: paced at 100000 bytes/s in 64-byte pieces", c.result(), paced_lines)

    slow = [b"slow %d\n" % i for i in range(15)]
    c = Collect(d, len(slow))
    for b in b"".join(slow):
        os.write(master, bytes([b]))
    exact(tap, "delim: one byte per write", c.result(), slow)

    # framing=record (the default): each read of data is one message
    tap.is_(ct.read(d + "/config/framing"), "record\n", "framing record")
    fd = os.open(d + "/data", os.O_RDONLY)
    ct.wait_until(lambda: ct.stats(d)["readers"] == 1)
    write_all(master, b"".join(lines[:50]))
    reads = [ct.read_fd(fd, 65536) for _ in range(50)]
    os.close(fd)
    exact(tap, "delim: framing=record reads of data", reads, lines[:50])
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")


def length_case(tap, d, master):
    rng = random.Random(16)
    blob = bytes(rng.randrange(256) for _ in range(16 * 40))
    want = [blob[i:i + 16] for i in range(0, len(blob), 16)]
    tap.is_(set_key(d, "split", "length=16"), 0, "split length=16")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    c = Collect(d, len(want))
    pos = 0
    while pos < len(blob):  # pieces that straddle the message boundaries
        n = rng.randrange(1, 40)
        write_all(master, blob[pos:pos + n])
        pos += n
        time.sleep(0.001)
    exact(tap, "length=16: pieces of 1 to 39 bytes", c.result(), want)
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")


def limits_case(tap, d, master):
    before = ct.stats(d)
    tap.is_(set_key(d, "split", "delim=\\n"), 0, "split delim=\\n")
    tap.is_(set_key(d, "split_max", "8"), 0, "split_max 8")
    tap.is_(set_key(d, "split_wait", "100ms"), 0, "split_wait 100ms")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    c = Collect(d, 3)
    write_all(master, b"0123456789\n")
    time.sleep(0.05)
    write_all(master, b"tail")  # no newline: max_wait ends it
    exact(tap, "split_max cuts, split_wait ends a message", c.result(),
          [b"01234567", b"89\n", b"tail"])
    after = ct.stats(d)
    tap.is_(after["messages"] - before["messages"], 3, "stats: 3 messages")
    tap.is_(after["messages_cut_size"] - before["messages_cut_size"], 1,
            "stats: one cut by split_max")
    tap.is_(after["messages_cut_wait"] - before["messages_cut_wait"], 1,
            "stats: one cut by split_wait")
    metrics = ct.read(os.path.dirname(d) + "/metrics").splitlines()
    for name, key in (("crtfs_messages_total", "messages"),
                      ("crtfs_messages_cut_size_total", "messages_cut_size"),
                      ("crtfs_messages_cut_wait_total", "messages_cut_wait")):
        lines = [l for l in metrics if l.startswith(name + "{") and '"tty"' in l]
        tap.ok(len(lines) == 1 and lines[0].split()[-1] == str(after[key]),
               "metrics: %s is stats' %s" % (name, key), lines)
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")
    tap.is_(set_key(d, "split_max", "0"), 0, "split_max back to 0")
    tap.is_(set_key(d, "split_wait", "1s"), 0, "split_wait back to 1s")


def errors_case(tap, d):
    def echo(key, value):
        p = subprocess.run(["timeout", "10", "bash", "-c",
                            "echo '%s' > '%s/config/%s'" % (value, d, key)],
                           capture_output=True, text=True)
        return p.returncode, p.stderr.strip(), ct.state(d)[1].get("error", "")

    for key, value, says in (
            ("split", "lines", 'split: "lines" is not a split (none, idle=DURATION'),
            ("split", "idle=500us", 'split: "idle=500us" is not an idle gap from 1ms to 60s'),
            ("split", "delim=", 'split: "delim=" is not a delimiter: it is empty'),
            ("split", "delim=\\q", "is not a delimiter: the escapes are"),
            ("split_max", "8192", "split_max: 8192 is more than out_size (4096)"),
            ("split_wait", "0ms", 'split_wait: "0ms" is not a duration from 1ms to 1h'),
            ("split_wait", "2h", "from 1ms to 1h")):
        rc, err, why = echo(key, value)
        tap.ok(rc == 1 and "Invalid argument" in err and says in why,
               "echo %s > config/%s: EINVAL, error: says why" % (value, key), rc, err, why)
    tap.is_(ct.read(d + "/config/split"), "delim=\\n\n", "split unchanged after bad values")


def live_case(tap, d, master):
    tap.is_(set_key(d, "split", "delim=\\n"), 0, "split delim=\\n")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    before = ct.stats(d)["messages"]
    c = Collect(d, 6)
    write_all(master, b"a\nbb\n")
    tap.ok(ct.wait_until(lambda: ct.stats(d)["messages"] >= before + 2),
           "two lines read before the change")
    tap.is_(set_key(d, "split", "length=3"), 0, "split length=3 while streaming")
    tap.is_(ct.state(d)[0], "streaming", "still streaming")
    write_all(master, b"xyz123")
    time.sleep(0.1)
    tap.is_(set_key(d, "split", "none"), 0, "split none while streaming")
    time.sleep(0.05)
    write_all(master, b"rest\n")
    time.sleep(0.1)
    write_all(master, b"end")
    exact(tap, "live change of split", c.result(),
          [b"a\n", b"bb\n", b"xyz", b"123", b"rest\n", b"end"])
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")


def fifo_case(tap, m, tmp):
    d = m.mkdir("fifo")
    path = os.path.join(tmp, "fifo")
    os.mkfifo(path)
    lines = [b"fifo %03d\n" % i for i in range(100)]
    tap.is_(ct.configure(d, path, [("split", "delim=\\n")], start=True), [], "FIFO, delim")
    w = os.open(path, os.O_WRONLY)
    c = Collect(d, len(lines) + 5)
    write_all(w, b"".join(lines))
    for b in b"".join(lines[:5]):
        os.write(w, bytes([b]))
    os.close(w)
    exact(tap, "FIFO delim=\\n", c.result(), lines + lines[:5])
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")


def socket_case(tap, m, tmp):
    d = m.mkdir("sock")
    path = os.path.join(tmp, "s.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    msgs = [b"\x02frame %d\x03" % i for i in range(60)]
    go = threading.Event()

    def serve():
        conn, _ = srv.accept()
        go.wait(ct.T)
        conn.sendall(b"".join(msgs))
        go.clear()
        go.wait(ct.T)
        conn.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    tap.is_(ct.configure(d, "unix:" + path, [("split", "delim=0x03")], start=True), [],
            "unix socket, delim=0x03")
    tap.is_(ct.read(d + "/config/split"), "delim=\\x03\n", "delim=0x03 reads back as \\x03")
    c = Collect(d, len(msgs))
    go.set()
    exact(tap, "unix socket delim=0x03", c.result(), msgs)
    go.set()
    th.join(ct.T)
    srv.close()
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")


def exec_case(tap, m):
    d = m.mkdir("exec")
    tap.is_(ct.configure(d, "exec:printf 'one;two;;three;tail'", [("split", "delim=;")],
                         start=True), [], "exec: command, delim=;")
    ct.wait_until(lambda: ct.state(d)[0] == "stopped")
    fd = os.open(d + "/records", os.O_RDONLY)
    recs = ct.parse_records(ct.read_all_fd(fd))
    os.close(fd)
    got = [r[3] for r in recs if r[2] == "ok"]
    exact(tap, "exec: delim=; (the partial tail at the end of output)", got,
          [b"one;", b"two;", b";", b"three;", b"tail"])
    tap.ok(recs and recs[-1][2] != "ok", "then the end of the stream", repr(recs[-1:]))


def main(tap):
    with ct.Mount(tap) as m, tempfile.TemporaryDirectory() as tmp:
        master, slave = pty.openpty()
        tty = os.ttyname(slave)
        d = m.mkdir("tty")
        tap.is_(ct.read(d + "/config/split"), "none\n", "split defaults to none")
        tap.is_(ct.read(d + "/config/split_max"), "0\n", "split_max defaults to 0")
        tap.is_(ct.read(d + "/config/split_wait"), "1s\n", "split_wait defaults to 1s")
        tap.is_(set_key(d, "out_count", "64"), 0, "out_count 64")

        idle_case(tap, d, master, tty, 115200, 11520, 16)
        idle_case(tap, d, master, tty, 1000000, 100000, 64)
        # 3.5 characters of 10 bits at 300 baud: 116.7 ms, timed from the
        # tty (at the 9600 of a non-tty it would be 3.6 ms and the pauses
        # inside the messages would split them).
        idle_case(tap, d, master, tty, 300, 100000, 64, split="idle=3.5char")
        tap.is_(ct.read(d + "/config/split"), "idle=3.5char\n", "idle=3.5char reads back")
        delim_case(tap, d, master)
        length_case(tap, d, master)
        limits_case(tap, d, master)
        errors_case(tap, d)
        live_case(tap, d, master)
        tap.is_(ct.write(d + "/target", "\n"), 0, "clear the pty target")
        os.close(master)
        os.close(slave)

        fifo_case(tap, m, tmp)
        socket_case(tap, m, tmp)
        exec_case(tap, m)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")

    # The configuration file: split_max may come before out_size, and the
    # file's escapes double the backslash.
    config = "[cf]\nsplit_max = 8192\nout_size = 8192\nsplit = delim=\\\\r\\\\n\n"
    with ct.Mount(tap, config=config) as m:
        d = m.path + "/cf"
        tap.is_(ct.read(d + "/config/split"), "delim=\\r\\n\n",
                "config file: split = delim=\\\\r\\\\n is delim=\\r\\n")
        tap.is_(ct.read(d + "/config/split_max"), "8192\n",
                "config file: split_max before out_size is fine")
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
