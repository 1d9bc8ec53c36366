#!/usr/bin/env python3
"""Modem lines on the simulator's UART (`sim:uart`, RTS looped to CTS, DTR
to DSR and DCD): `lines` read with cat, bash `read` and awk; dtr=/rts= and
the looped-back inputs; a timed sequence; break; injected errors; every
event an entry without data in `records`, in order, with its word, and
nothing of them in `data`; the line_* counters in stats and metrics;
on_open/on_close (lines and send=); an interrupted long sequence."""
import errno
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

ALL_UP = "dtr=1 rts=1 cts=1 dsr=1 dcd=1 ri=0\n"


def sh(cmd):
    """A shell client under timeout: (exit status, stdout, stderr)."""
    p = subprocess.run(["timeout", "-k", "2", str(int(ct.T)), "bash", "-c", cmd],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class Records:
    """An open `records` reader; events() returns the entries that came."""

    def __init__(self, d):
        self.fd = os.open(d + "/records", os.O_RDONLY | os.O_NONBLOCK)
        self.parser = ct.RecordParser()

    def take(self, n, limit=5):
        """At least n more entries (waiting up to `limit` s)."""
        got = []
        deadline = time.monotonic() + limit
        while len(got) < n and time.monotonic() < deadline:
            try:
                b = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            got += self.parser.feed(b)
        return got

    def close(self):
        os.close(self.fd)


def words(entries):
    return [status for _, _, status, _ in entries]


def reading(tap, d):
    tap.is_(ct.read(d + "/lines"), ALL_UP, "cat lines: both outputs up, looped back")
    rc, out, _ = sh("IFS=' =' read -r _ dtr _ rts _ cts _ dsr _ dcd _ ri < '%s/lines'; "
                    "echo \"$cts $ri\"" % d)
    tap.is_((rc, out), (0, "1 0\n"), "bash read takes the line apart (the man page's way)")
    rc, out, _ = sh("awk -v RS='[ \\n]' -F= '$1 == \"dcd\" { print $2 }' '%s/lines'" % d)
    tap.is_((rc, out), (0, "1\n"), "awk picks one line's level")


def set_lines(tap, d, rec):
    rc, _, err = sh("echo rts=0 > '%s/lines'" % d)
    tap.is_(rc, 0, "echo rts=0 > lines " + err)
    tap.is_(ct.read(d + "/lines"), "dtr=1 rts=0 cts=0 dsr=1 dcd=1 ri=0\n",
            "rts=0: CTS follows")
    tap.is_(ct.write(d + "/lines", "dtr=0\n"), 0, "dtr=0")
    tap.is_(ct.read(d + "/lines"), "dtr=0 rts=0 cts=0 dsr=0 dcd=0 ri=0\n",
            "dtr=0: DSR and DCD follow")
    got = rec.take(3)
    tap.is_(words(got), ["line:cts=0", "line:dsr=0", "line:dcd=0"],
            "records: one entry per input change, in order")
    tap.ok(all(len(p) == 0 for _, _, _, p in got), "the entries have no data")


def timed_sequence(tap, d, rec):
    # Enter a bootloader: hold RTS, pulse DTR, let RTS go.
    t0 = time.monotonic()
    rc, _, err = sh("echo 'dtr=0 rts=1 wait=100ms dtr=1 wait=150ms rts=0' > '%s/lines'" % d)
    took = time.monotonic() - t0
    tap.is_(rc, 0, "a timed sequence in one write " + err)
    tap.ok(took >= 0.25, "the write returns after its waits (%.3f s for 250 ms)" % took)
    got = rec.take(4)
    tap.is_(words(got), ["line:cts=1", "line:dsr=1", "line:dcd=1", "line:cts=0"],
            "the events come in the sequence's order")
    if len(got) == 4:
        gap1 = (got[1][1] - got[0][1]) / 1e9
        gap2 = (got[3][1] - got[1][1]) / 1e9
        tap.ok(gap1 >= 0.09 and gap2 >= 0.14,
               "their times show the waits (%.3f s, %.3f s)" % (gap1, gap2))
    else:
        tap.fail("their times show the waits")
    tap.is_(ct.read(d + "/lines"), "dtr=1 rts=0 cts=0 dsr=1 dcd=1 ri=0\n",
            "the lines as the sequence left them")


def breaks_and_errors(tap, d, rec):
    t0 = time.monotonic()
    tap.is_(ct.write(d + "/lines", "break=250ms"), 0, "break=250ms")
    took = time.monotonic() - t0
    tap.ok(took >= 0.24, "the write lasts the break (%.3f s)" % took)
    tap.is_(words(rec.take(1)), ["line:break+1"], "a break sent is a break received")
    tap.is_(ct.write(d + "/lines", "inject=framing*3 inject=parity inject=overrun*2 "
                     "inject=break"), 0, "inject errors and a break")
    got = rec.take(4)
    tap.is_(words(got), ["line:framing+3", "line:parity+1", "line:overrun+2",
                         "line:break+1"], "records: each with its count")
    seqs = [s for s, _, _, _ in got]
    tap.ok(seqs == sorted(seqs) and len(set(seqs)) == len(seqs),
           "numbered in arrival order: %s" % seqs)


def counters(tap, m, d):
    st = ct.stats(d)
    want = {"line_changes": 7, "line_breaks": 2, "line_framing": 3, "line_parity": 1,
            "line_overruns": 2}
    tap.is_({k: st.get(k) for k in want}, want, "stats: the line_* counters")
    tap.is_(st.get("tty_framing"), 3, "and the UART's own tty_framing")
    text = ct.read(m.path + "/metrics")
    for name, value in (("crtfs_line_changes_total", 7), ("crtfs_line_framing_total", 3),
                        ("crtfs_line_overruns_total", 2)):
        tap.ok(re.search(r'^%s\{target="uart"\} %d$' % (name, value), text, re.M),
               "metrics: %s = %d" % (name, value))
    tap.like(text, r"# TYPE crtfs_line_breaks_total counter", "a counter family")


def data_and_events(tap, d, rec):
    """Streaming: a send= goes through the engine; `data` gets its bytes and
    nothing of the events around it, `records` both in order."""
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    data = os.open(d + "/data", os.O_RDONLY)
    ct.wait_until(lambda: ct.stats(d)["readers"] == 2)
    tap.is_(ct.write(d + "/lines", "rts=1 send=hello\\x20uart\\r\\n wait=50ms rts=0"), 0,
            "rts=1 send=... rts=0 while streaming")
    got = b""
    while b"\n" not in got:
        got += ct.read_fd(data, 4096)
    tap.is_(got, b"hello uart\r\n", "data: the bytes sent, no trace of the events")
    entries = []
    while not entries or entries[-1][2] != "line:cts=0":
        more = rec.take(1)
        if not more:
            break
        entries += more
    st = words(entries)
    middle = entries[1:-1]
    tap.ok(st[:1] == ["line:cts=1"] and st[-1:] == ["line:cts=0"] and middle and
           all(w == "ok" for w in st[1:-1]) and
           b"".join(p for _, _, _, p in middle) == b"hello uart\r\n",
           "records: the change, the bytes, the change, in order: %s" % st)
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")
    ct.read_all_fd(data)
    os.close(data)
    rec.take(0)


def hooks(tap, m, d):
    """on_open sets lines and says hello on the wire; on_close tidies up."""
    tap.is_(ct.write(d + "/config/on_open", "dtr=0 rts=1 wait=20ms send=booted\\n"), 0,
            "on_open set")
    tap.is_(ct.write(d + "/config/on_close", "rts=0 dtr=1"), 0, "on_close set")
    data = os.open(d + "/data", os.O_RDONLY)
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start runs on_open")
    tap.is_(ct.read(d + "/lines"), "dtr=0 rts=1 cts=1 dsr=0 dcd=0 ri=0\n",
            "on_open's lines are set")
    got = b""
    while b"\n" not in got:
        got += ct.read_fd(data, 4096)
    tap.is_(got, b"booted\n", "on_open's send= came back on the looped line")
    tap.is_(ct.state(d)[1].get("error"), "none", "no error")
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop runs on_close")
    tap.is_(ct.read(d + "/lines"), "dtr=1 rts=0 cts=0 dsr=1 dcd=1 ri=0\n",
            "on_close's lines are set")
    os.close(data)
    # A new target ends the stream too: on_close runs on the old one.
    tap.is_(ct.write(d + "/config/on_close", "rts=1"), 0, "on_close rts=1")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start again")
    tap.is_(ct.write(d + "/lines", "rts=0"), 0, "rts=0 while streaming")
    tap.is_(ct.write(d + "/target", "sim:uart"), 0, "a new target")
    tap.is_(ct.state(d)[1].get("error"), "none", "no error")
    tap.ok(ct.wait_until(lambda: "uart: on_close: rts=1" in m.log()),
           "the log says on_close ran on the old target")
    tap.is_(ct.write(d + "/config/on_open", "\n"), 0, "on_open cleared")
    tap.is_(ct.write(d + "/config/on_close", "\n"), 0, "on_close cleared")


def interrupted(tap, d):
    t0 = time.monotonic()
    rc, _, err = sh("timeout -s INT 0.5 bash -c \"echo 'rts=1 wait=8s rts=0' > '%s/lines'\""
                    % d)
    took = time.monotonic() - t0
    tap.ok(rc != 0, "the interrupted writer fails (exit %d)" % rc)
    tap.ok(took < 5, "an interrupted wait=8s returns promptly (%.3f s)" % took)
    tap.is_(ct.read(d + "/lines"), ALL_UP, "the steps before the wait stay done, the rest "
            "never runs")
    # EINTR goes out first; the sequence notices the cancel a moment later.
    tap.ok(ct.wait_until(lambda: re.search(r'word 2 "wait=8s": interrupted',
                                           ct.state(d)[1].get("error", ""))),
           "state: where it stopped (%s)" % ct.state(d)[1].get("error"))
    tap.is_(ct.write(d + "/lines", "rts=0 wait=10ms rts=1"), 0,
            "the next sequence runs at once")


def one_liners(tap, d):
    """The man page's one-liners, as an admin types them."""
    rc, _, err = sh("echo 'dtr=0 wait=100ms dtr=1' > '%s/lines'" % d)
    tap.is_(rc, 0, "reset a board: echo 'dtr=0 wait=100ms dtr=1' > lines " + err)
    rc, _, err = sh("echo 'dtr=0 rts=1 wait=100ms dtr=1 rts=0 wait=50ms dtr=0' > '%s/lines'"
                    % d)
    tap.is_(rc, 0, "the ESP32 bootloader sequence " + err)
    rc, out, _ = sh("cat '%s/lines'" % d)
    tap.is_(out, "dtr=0 rts=0 cts=0 dsr=0 dcd=0 ri=0\n", "cat lines after it")


def config_file(tap):
    """on_open in a configuration file: GKeyFile's escapes come first, so
    the sequence's \\r is written \\\\r there."""
    conf = ("[board]\ntarget=sim:uart\non_open=rts=0 send=hi\\\\r\\\\n\n"
            "on_close=dtr=0\nautostart=true\n")
    with ct.Mount(tap, config=conf) as m:
        d = m.path + "/board"
        tap.is_(ct.state(d)[0], "streaming", "the configured target streams")
        tap.is_(ct.read(d + "/lines"), "dtr=1 rts=0 cts=0 dsr=1 dcd=1 ri=0\n",
                "on_open from the file ran")
        fd = os.open(d + "/data", os.O_RDONLY)
        got = b""
        while b"\n" not in got:
            got += ct.read_fd(fd, 4096)
        tap.is_(got, b"hi\r\n", "its send= escapes came through the file")
        os.close(fd)
        tap.is_(ct.read(d + "/config/on_open"), "rts=0 send=hi\\r\\n\n",
                "config/on_open shows the sequence")
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


def main(tap):
    config_file(tap)
    with ct.Mount(tap) as m:
        d = m.mkdir("uart")
        tap.is_(ct.write(d + "/target", "sim:uart"), 0, "target sim:uart")
        rec = Records(d)
        ct.wait_until(lambda: ct.stats(d)["readers"] == 1)
        reading(tap, d)
        set_lines(tap, d, rec)
        timed_sequence(tap, d, rec)
        breaks_and_errors(tap, d, rec)
        counters(tap, m, d)
        data_and_events(tap, d, rec)
        rec.close()
        hooks(tap, m, d)
        interrupted(tap, d)
        one_liners(tap, d)
        tap.is_(ct.write(d + "/config/on_close", "rts=1 dtr=1 send=bye"), 0,
                "on_close for the rmdir")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        os.rmdir(d)
        tap.ok(ct.wait_until(lambda: "uart: on_close: rts=1 dtr=1 send=bye" in m.log()),
               "rmdir ran on_close before the target went")
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
