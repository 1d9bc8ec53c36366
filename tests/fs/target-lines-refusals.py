#!/usr/bin/env python3
"""The `lines` file where there are no modem lines: without a target
EDESTADDRREQ; on a pty and a FIFO ENOTTY on read and write with the reason
in `state`; a bad sequence EINVAL naming the word; waits over the 10 s
bound refused; waits alone run on any target and take their time; an
interrupted long wait returns at once and the daemon stays healthy;
on_open/on_close that fail leave the stream running, the reason in state."""
import errno
import os
import pty
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


def read_errno(path):
    """0 and the text, or the errno of reading path."""
    try:
        return 0, ct.read(path)
    except OSError as e:
        return e.errno, None


def error_line(d):
    return ct.state(d)[1].get("error", "")


def refusals_without_target(tap, m):
    d = m.mkdir("none")
    tap.is_(read_errno(d + "/lines")[0], errno.EDESTADDRREQ, "no target: read EDESTADDRREQ")
    tap.is_(ct.write(d + "/lines", "dtr=1"), errno.EDESTADDRREQ,
            "no target: write EDESTADDRREQ")
    tap.like(error_line(d), r"lines: no target is set", "state says why")
    st = os.stat(d + "/lines")
    tap.is_(oct(st.st_mode & 0o777), "0o644", "lines is rw for the owner, readable by all")
    os.rmdir(d)


def refusals_on_pty(tap, m, name):
    d = m.mkdir("pty")
    tap.is_(ct.write(d + "/target", "%s raw" % name), 0, "set the pty")
    tap.is_(read_errno(d + "/lines")[0], errno.ENOTTY, "pty: read ENOTTY")
    tap.like(error_line(d), r"lines: %s.*no modem lines" % name,
             "state names the pty and why")
    tap.is_(ct.write(d + "/lines", "dtr=0"), errno.ENOTTY, "pty: dtr=0 ENOTTY")
    tap.like(error_line(d), r'lines: word 1 "dtr=0": .*no modem lines', "word named")
    tap.is_(ct.write(d + "/lines", "wait=10ms rts=1"), errno.ENOTTY,
            "pty: a sequence fails at its rts= step")
    tap.like(error_line(d), r'word 2 "rts=1"', "the failing word is the second")
    tap.is_(ct.write(d + "/lines", "break=100ms"), errno.ENOTTY, "pty: break ENOTTY")
    tap.is_(ct.write(d + "/lines", "inject=framing"), errno.EOPNOTSUPP,
            "pty: inject is the simulator's only (EOPNOTSUPP)")
    tap.like(error_line(d), r"only the simulator's UART", "state says so")

    # Refused before anything runs: the parser's words.
    for text, pattern in (
            ("dtr=1 cts=0", r'word 2 "cts=0": CTS, DSR, DCD and RI are inputs'),
            ("dtr=yes", r'word 1 "dtr=yes": a line is set to 0 or 1'),
            ("frob", r'word 1 "frob": a word is KEY=VALUE'),
            ("wait=100", r'word 1 "wait=100": a duration'),
            ("wait=11s", r'word 1 "wait=11s"'),
            ("wait=6s wait=5s", r'word 2 "wait=5s": the waits and breaks add up to '
             r'11000 ms, over the 10000 ms'),
            ("send=\\q", r"an escape is")):
        tap.is_(ct.write(d + "/lines", text), errno.EINVAL, "%r: EINVAL" % text)
        tap.like(error_line(d), pattern, "%r: state names the word" % text)
    tap.is_(ct.write(d + "/lines", " ".join(["wait=1ms"] * 65)), errno.EINVAL,
            "65 words: EINVAL")
    tap.like(error_line(d), r"word 65 .*at most 64 words", "the 65th word is named")

    # Waits touch no line: they run on a pty and take their time.
    t0 = time.monotonic()
    tap.is_(ct.write(d + "/lines", "wait=150ms wait=150ms\n"), 0, "waits alone run")
    took = time.monotonic() - t0
    tap.ok(took >= 0.3, "the write returned after the waits (%.3f s)" % took)

    # Interrupted: a long wait ends at once with EINTR, the daemon is fine.
    t0 = time.monotonic()
    p = subprocess.run(["timeout", "-s", "INT", "0.5", "bash", "-c",
                        "echo wait=8s > '%s/lines'" % d],
                       stderr=subprocess.PIPE, timeout=ct.T)
    took = time.monotonic() - t0
    tap.ok(p.returncode != 0, "the interrupted writer did not succeed (exit %d)"
           % p.returncode)
    tap.ok(took < 5, "an interrupted wait=8s returns promptly (%.3f s)" % took)
    tap.is_(ct.state(d)[0], "stopped", "the daemon answers state after it")
    tap.is_(ct.write(d + "/lines", "wait=1ms"), 0, "and runs the next sequence")

    # on_open and on_close that fail: the stream runs anyway, state says why.
    tap.is_(ct.write(d + "/config/on_open", "dtr=1 rts=1"), 0, "on_open set")
    tap.is_(ct.read(d + "/config/on_open"), "dtr=1 rts=1\n", "config/on_open reads back")
    tap.is_(ct.write(d + "/config/on_close", "dtr=0"), 0, "on_close set")
    tap.is_(ct.write(d + "/config/on_open", "dtr=2"), errno.EINVAL,
            "a bad on_open is refused")
    tap.like(error_line(d), r'on_open: word 1 "dtr=2"', "naming its word")
    tap.is_(ct.read(d + "/config/on_open"), "dtr=1 rts=1\n", "the old one stays")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start with an on_open the pty refuses")
    tap.is_(ct.state(d)[0], "streaming", "it streams anyway")
    tap.like(error_line(d), r'on_open: word 1 "dtr=1 rts=1": .*no modem lines',
             "state shows on_open's failure")
    tap.is_(ct.write(d + "/ctl", "stop"), 0, "stop")
    tap.like(error_line(d), r'on_close: word 1 "dtr=0"', "and on_close's")
    tap.is_(ct.write(d + "/config/on_open", "\n"), 0, "on_open cleared")
    tap.is_(ct.read(d + "/config/on_open"), "\n", "it reads empty")
    tap.ok("line_changes" not in ct.stats(d), "no line_* counters without lines")
    tap.is_(ct.write(d + "/target", ""), 0, "clear the target")
    os.rmdir(d)


def refusals_on_fifo(tap, m):
    fifo = os.path.join(m.tmp, "fifo")
    os.mkfifo(fifo)
    d = m.mkdir("fifo")
    tap.is_(ct.write(d + "/target", fifo), 0, "set a FIFO")
    tap.is_(read_errno(d + "/lines")[0], errno.ENOTTY, "FIFO: read ENOTTY")
    tap.is_(ct.write(d + "/lines", "rts=0"), errno.ENOTTY, "FIFO: write ENOTTY")
    tap.is_(ct.write(d + "/target", ""), 0, "clear the target")
    os.rmdir(d)


def rmdir_stops_a_sequence(tap, m):
    d = m.mkdir("gone")
    tap.is_(ct.write(d + "/target", "sim:records"), 0, "a simulator target")
    p = subprocess.Popen(["timeout", "20", "bash", "-c",
                          "echo wait=9s > '%s/lines'" % d], stderr=subprocess.PIPE)
    time.sleep(0.3)
    t0 = time.monotonic()
    os.rmdir(d)
    took = time.monotonic() - t0
    err = p.communicate(timeout=ct.T)[1].decode()
    tap.ok(took < 5, "rmdir under a running wait=9s returns promptly (%.3f s)" % took)
    tap.ok(p.returncode != 0, "the writer fails: %s" % err.strip())


def main(tap):
    with ct.Mount(tap) as m:
        master, slave = pty.openpty()
        name = os.ttyname(slave)
        refusals_without_target(tap, m)
        refusals_on_pty(tap, m, name)
        refusals_on_fifo(tap, m)
        rmdir_stops_a_sequence(tap, m)
        os.close(master)
        os.close(slave)
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
