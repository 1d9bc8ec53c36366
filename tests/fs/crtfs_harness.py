"""crtfs - the mount harness: a private crtfs mount for the Python mounted
scenarios (TAP) and for the benchmarks (bench/fs, bench/soak).

A scenario:

    import crtfs_harness as ct
    tap = ct.Tap()
    with ct.Mount(tap) as m:           # private mount, stopped and checked at exit
        d = m.mkdir("x")
        tap.is_(ct.write(d + "/target", "sim:counter\\n"), 0, "target set")
    tap.done()

A benchmark (no TAP; it adds tests/fs to sys.path first):

    d = ct.Daemon("crtfs", prefix="crtfs-bench.")
    d.start([crtfs, "-f", "-o", "config=" + d.config_file("")])  # MountError
    ct.configure(d.mkdir("z"), "sim:zero", [("out_size", "4096")], start=True)
    ...
    d.close()                          # SIGTERM, lazy unmount, temp dir gone

`Daemon` is the daemon on its mount: started in the foreground with its
stdout and stderr in a log file, waited for in the mount table, stopped with
a signal (killed, optionally after a gdb backtrace, when it hangs), lazily
unmounted; `bad_log_lines` and `valgrind_report` judge its log.  `Mount` is a
Daemon bound to a Tap: at cleanup the test fails when the daemon's stderr
shows a GLib critical/warning/error, a sanitizer report or a valgrind error.

Every blocking client call goes through a deadline (`ct.T`, default 10 s):
reads and writes of streaming files run in a helper thread or with
poll()/alarm, so a hang fails the test instead of the run.
"""

import atexit
import errno
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

T = float(os.environ.get("T", "10"))
BAD_LOG = re.compile(
    r"CRITICAL|WARNING|ERROR|runtime error|AddressSanitizer|LeakSanitizer|Sanitizer|==[0-9]+=="
    r"|double free|corrupted|invalid pointer|stack smashing|Assertion .* failed")
# A target's own errors (log domain crtfs-target: a device failing, a stream
# ending) are what scenarios and the soak provoke; they are no bad lines.
TARGET_WARNING = "crtfs-target-WARNING **"
# Errors fail the daemon's exit status (99), definite leaks count as errors.
VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite"]
# glibc's own aborts go to the daemon's stderr (the log), not the tty.
os.environ["LIBC_FATAL_STDERR_"] = "1"


def crtfs_binary():
    """$CRTFS, else the build tree's crtfs (two levels up, or the working
    directory's), else `crtfs` from PATH."""
    c = os.environ.get("CRTFS")
    if c:
        return os.path.abspath(c)
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", "..", "crtfs"), os.path.join(os.getcwd(), "crtfs")):
        if os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return "crtfs"


def is_mounted(path):
    """Whether path is a mount point in this namespace's mount table (our
    paths have no characters the table escapes)."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def bad_log_lines(text):
    """The lines of a daemon's stderr that fail a test: warnings, criticals,
    sanitizer and valgrind reports, glibc aborts (a target's own warnings
    excepted)."""
    return [l for l in text.splitlines() if BAD_LOG.search(l) and TARGET_WARNING not in l]


def valgrind_report(text):
    """(errors, notices): valgrind's lines in a log, split by block.  Its
    report comes in blocks, a head line then indented lines; "Warning:"
    blocks (an ioctl it has no wrapper for, ...) are its own notices, every
    other block is an error.  Only the head lines of notices are returned."""
    errors, notices, block = [], [], None
    for line in text.splitlines():
        m = re.match(r"==\d+== ?(.*)", line)
        if not m:
            block = None
            continue
        body = m.group(1)
        if body and not body.startswith(" "):
            block = notices if body.startswith("Warning:") else errors
        (block if block is not None else errors).append(line)
    return ([l for l in errors if re.match(r"==\d+== ?\S", l)],
            [l for l in notices if "Warning:" in l])


class MountError(RuntimeError):
    """The daemon ended, or its mount did not appear in time."""


class Daemon:
    """A FUSE daemon running in the foreground on a private mount point.

    `path` is the mount point, `tmp` its temporary directory (made here
    unless given; then it is the caller's to remove), `proc` the process
    once started, `exit_code` what stop() or wait() saw."""

    def __init__(self, name="crtfs", tmp=None, prefix="crtfs-test."):
        self.name = name
        self.own_tmp = tmp is None
        self.tmp = tempfile.mkdtemp(prefix=prefix) if tmp is None else tmp
        self.path = os.path.join(self.tmp, "mnt")
        self.err_path = os.path.join(self.tmp, "daemon.err")
        self.proc = None
        self.exit_code = None
        os.mkdir(self.path)

    def config_file(self, text=""):
        """A configuration file with text in the temporary directory (the
        empty default has no targets): its path, for -o config=."""
        conf = os.path.join(self.tmp, "crtfs.conf")
        with open(conf, "w") as f:
            f.write(text)
        return conf

    def start(self, argv, limit=10, valgrind=False):
        """Run argv (program and options; the mount point is appended),
        under valgrind if asked, and wait up to limit seconds for the mount.
        Raises MountError when the daemon ends first or the time is up."""
        cmd = (VALGRIND if valgrind else []) + list(argv) + [self.path]
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + limit
        while not self.mounted():
            if self.proc.poll() is not None:
                raise MountError("%s exited with %d before the mount appeared: %s"
                                 % (self.name, self.proc.returncode, self.tail()))
            if time.monotonic() > deadline:
                raise MountError("no mount on %s after %g s: %s" % (self.path, limit, self.tail()))
            time.sleep(0.02)

    def mounted(self):
        return is_mounted(self.path)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """The daemon's stderr (and stdout) so far."""
        try:
            with open(self.err_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, n=8):
        """The last n lines of the log on one line, for a message."""
        return " | ".join(self.log().strip().splitlines()[-n:]) or "(no output)"

    def stop(self, sig=signal.SIGTERM, limit=10, backtrace=None):
        """Signal the daemon and wait up to limit seconds: the exit code, or
        None when it had to be killed (after writing every thread's
        backtrace to the file `backtrace`, when asked and gdb is there)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            return self.exit_code
        self.proc.send_signal(sig)
        try:
            self.exit_code = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            if backtrace and shutil.which("gdb"):
                try:
                    with open(backtrace, "w") as f:
                        subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-ex",
                                        "thread apply all bt"], stdout=f,
                                       stderr=subprocess.STDOUT, timeout=120)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self.proc.kill()
            self.proc.wait()
            self.exit_code = None
        return self.exit_code

    def wait(self, limit):
        """Wait up to limit seconds for the daemon to exit by itself (after
        an unmount): the exit code, or None."""
        try:
            self.exit_code = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def unmount(self):
        """Lazily unmount the mount point if it is still mounted; False when
        fusermount3 fails or hangs."""
        if not self.mounted():
            return True
        try:
            r = subprocess.run(["fusermount3", "-u", "-z", self.path], capture_output=True,
                               timeout=30)
            return r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def close(self, limit=10):
        """Stop the daemon (SIGTERM, limit seconds), unmount, and remove the
        temporary directory if it is ours.  Safe to call twice."""
        if self.alive():
            self.stop(limit=limit)
        self.unmount()
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def mkdir(self, name):
        """A new target directory: its path."""
        p = os.path.join(self.path, name)
        os.mkdir(p)
        return p


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.finished = False
        self.cleanups = []
        atexit.register(self._atexit)
        # A SIGTERM from the harness still cleans up.
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
        if os.geteuid() != 0 or not os.access("/dev/fuse", os.W_OK):
            print("1..0 # SKIP needs root and /dev/fuse", flush=True)
            self.finished = True
            sys.exit(0)
        # Never let the whole script hang: a watchdog well past any scenario.
        self._watchdog = threading.Timer(float(os.environ.get("CRT_SCRIPT_LIMIT", "120")),
                                         self._bail_out)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _bail_out(self):
        self.fail("script finished within its time limit")
        os.kill(os.getpid(), signal.SIGTERM)

    def ok(self, cond, desc, *diag):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, desc), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, desc), flush=True)
            for d in diag:
                self.diag(d)
        return bool(cond)

    def pass_(self, desc):
        return self.ok(True, desc)

    def fail(self, desc, *diag):
        return self.ok(False, desc, *diag)

    def is_(self, got, want, desc):
        return self.ok(got == want, desc, "got:      %r" % (got,), "expected: %r" % (want,))

    def like(self, got, pattern, desc):
        return self.ok(got is not None and re.search(pattern, got) is not None, desc,
                       "got:      %r" % (got,), "expected: /%s/" % pattern)

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            print("# " + line, flush=True)

    def done(self):
        self._finish()

    def _finish(self):
        for c in reversed(self.cleanups):
            try:
                c()
            except Exception as e:  # cleanup must go on
                self.fail("cleanup", repr(e))
        self.cleanups = []
        if not self.finished:
            self.finished = True
            print("1..%d" % self.n, flush=True)

    def _atexit(self):
        if not self.finished:
            if sys.exc_info()[0] is None and self.n == 0:
                self.fail("scenario ran")
            self._finish()
        sys.stdout.flush()
        os._exit(0 if self.failed == 0 else 1)


def run_tap(main):
    """Run main(tap); an exception is a failed test, not a lost plan."""
    tap = Tap()
    try:
        main(tap)
    except SystemExit:
        raise
    except BaseException:
        import traceback
        tap.fail("scenario ran to the end", *traceback.format_exc().splitlines())
    tap.done()
    sys.stdout.flush()
    os._exit(0 if tap.failed == 0 else 1)


class Mount(Daemon):
    """A private crtfs mount for a scenario: `m.path`, `m.stop()` (SIGTERM,
    exit code); cleaned up and its log judged when the test ends.

    config: the text of the -o config= file ("" by default: no targets), or
    None for the embedded default (the demo target)."""

    def __init__(self, tap, *options, config="", mount_limit=5):
        super().__init__("crtfs")
        self.tap = tap
        self.options = list(options)
        if config is not None:
            self.options += ["-o", "config=" + self.config_file(config)]
        self.mount_limit = mount_limit
        self.cleaned = False
        tap.cleanups.append(self.cleanup)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def start(self):
        valgrind = os.environ.get("CRTFS_VALGRIND") == "1"
        try:
            super().start([crtfs_binary(), "-f"] + self.options,
                          limit=30 if valgrind else self.mount_limit, valgrind=valgrind)
        except MountError:
            self.tap.fail("crtfs mounts", self.log())
            raise

    def cleanup(self):
        if self.proc is None or self.cleaned:
            return
        self.cleaned = True
        if self.alive() and self.stop(limit=5) is None:
            self.tap.diag("daemon did not exit on SIGTERM at cleanup")
        if not self.unmount():
            self.tap.diag("fusermount3 -u -z %s failed" % self.path)
        log = self.log()
        self.tap.ok(not bad_log_lines(log),
                    "daemon stderr has no warnings, criticals or sanitizer reports",
                    *log.splitlines()[-30:])
        if os.environ.get("CRT_KEEP_LOG") == "1":
            self.tap.diag(log)
        self.close()


# ---- client helpers (all bounded) -------------------------------------------

def with_deadline(fn, *args, limit=None):
    """Run fn(*args) in a thread; return (True, result) or (False, exc) or
    raise TimeoutError when it does not finish in time."""
    box = {}

    def run():
        try:
            box["r"] = fn(*args)
        except BaseException as e:
            box["e"] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(T if limit is None else limit)
    if th.is_alive():
        raise TimeoutError("%s did not return within %ss" % (getattr(fn, "__name__", fn),
                                                            T if limit is None else limit))
    if "e" in box:
        raise box["e"]
    return box.get("r")


def write_once(path, data, flags=os.O_WRONLY | os.O_TRUNC):
    """One open and one write(2) of data (str or bytes) to path, unbounded:
    0 or the write's errno (EIO for a short write); the open's error is
    raised."""
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, flags)
    try:
        n = os.write(fd, data)
        return 0 if n == len(data) else errno.EIO
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def write(path, data, flags=os.O_WRONLY | os.O_TRUNC):
    """write_once under the deadline: 0 or the errno."""
    return with_deadline(write_once, path, data, flags)


def read(path, mode="t"):
    """The whole content of a (generated) file."""
    def go():
        with open(path, "rb") as f:
            return f.read()

    b = with_deadline(go)
    return b.decode() if mode == "t" else b


def parse_state(text):
    """(state word, {key: value}) of the text of a `state` file."""
    lines = text.splitlines()
    fields = {}
    for l in lines[1:]:
        k, _, v = l.partition(": ")
        fields[k] = v
    return lines[0] if lines else "", fields


def parse_stats(text):
    """{key: int} of the text of a `stats` file."""
    out = {}
    for l in text.splitlines():
        k, v = l.split()
        out[k] = int(v)
    return out


def state(d):
    """(state word, {key: value}) of a target directory."""
    return parse_state(read(os.path.join(d, "state")))


def stats(d):
    """{key: int} of a target directory's stats."""
    return parse_stats(read(os.path.join(d, "stats")))


def metric_values(root, *names):
    """The values of unlabelled metrics in the root's `metrics` file, in the
    order asked (None for one that is not there, or all when it cannot be
    read).  Unbounded: call it under a deadline of your own."""
    found = {}
    try:
        with open(os.path.join(root, "metrics")) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name in names:
                    found[name] = int(value)
    except OSError:
        pass
    return [found.get(n) for n in names]


def configure(d, spec=None, config=(), start=False, write=write_once):
    """Set up the target directory d: config/KEY for each (KEY, VALUE) of
    config, then the target spec (when given), then `start` in ctl (when
    asked); each is one write through write(path, text) -> errno (raising
    OSError on a failed open).  Returns the refused writes as (file, text,
    errno), in order; format them with describe_refusals."""
    steps = [(os.path.join("config", k), str(v)) for k, v in config]
    if spec is not None:
        steps.append(("target", spec))
    if start:
        steps.append(("ctl", "start"))
    refused = []
    for name, text in steps:
        r = write(os.path.join(d, name), text)
        if r:
            refused.append((name, text, r))
    return refused


def describe_refusals(refused):
    """"config/KEY=VALUE: ENAME; target=SPEC: ENAME" for configure()'s
    refusals."""
    return "; ".join("%s=%s: %s" % (name, text, errno.errorcode.get(e, "E%d" % e))
                     for name, text, e in refused)


def wait_until(cond, limit=None, step=0.01):
    deadline = time.monotonic() + (T if limit is None else limit)
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def read_fd(fd, size, limit=None):
    """One read(2) on fd, bounded: bytes, or raises TimeoutError."""
    return with_deadline(os.read, fd, size, limit=limit)


def read_all_fd(fd, size=1 << 16, limit=None):
    """Read until end of file, bounded as a whole."""
    def go():
        chunks = []
        while True:
            b = os.read(fd, size)
            if not b:
                return b"".join(chunks)
            chunks.append(b)

    return with_deadline(go, limit=limit)


RECORD_HEADER = re.compile(rb"(\d+) (\d+)\.(\d{9}) (\S+) (\d+)\n")


def parse_records(blob):
    """[(seq, time_ns, status, payload)] from a `records` stream; raises on
    malformed input."""
    out = []
    pos = 0
    while pos < len(blob):
        m = RECORD_HEADER.match(blob, pos)
        if not m:
            raise ValueError("bad record header at %d: %r" % (pos, blob[pos:pos + 60]))
        n = int(m.group(5))
        start = m.end()
        payload = blob[start:start + n]
        if len(payload) != n:
            raise ValueError("short record at %d" % pos)
        out.append((int(m.group(1)), int(m.group(2)) * 10 ** 9 + int(m.group(3)),
                    m.group(4).decode(), payload))
        pos = start + n
    return out


def parse_records_prefix(blob):
    """The complete records at the start of blob (a partial one at the end
    is left out)."""
    out = []
    pos = 0
    while True:
        m = RECORD_HEADER.match(blob, pos)
        if not m:
            return out
        n = int(m.group(5))
        if m.end() + n > len(blob):
            return out
        out.append((int(m.group(1)), int(m.group(2)) * 10 ** 9 + int(m.group(3)),
                    m.group(4).decode(), blob[m.end():m.end() + n]))
        pos = m.end() + n


class RecordParser:
    """Incremental `records` parser: feed(bytes) -> the records completed."""

    def __init__(self):
        self.buf = b""
        self.records = []

    def feed(self, data):
        self.buf += data
        new = parse_records_prefix(self.buf)
        if new:
            used = 0
            for r in new:
                used = self.buf.index(b"\n", used) + 1 + len(r[3])
            self.buf = self.buf[used:]
            self.records += new
        return new


def read_records(fd, n, size=1 << 20):
    """At least n records from fd (each read bounded); fewer at end of file."""
    p = RecordParser()
    while len(p.records) < n:
        b = read_fd(fd, size)
        if not b:
            break
        p.feed(b)
    return p.records


def counters(blob):
    """The uint64 LE counters of a sim:counter stream."""
    import struct
    if len(blob) % 8:
        raise ValueError("counter stream of %d bytes" % len(blob))
    return list(struct.unpack("<%dQ" % (len(blob) // 8), blob))


class Reader(threading.Thread):
    """Reads fd in a thread until `want` bytes (or end of file when want is
    None).  r.join_result() -> bytes (raises TimeoutError on a hang)."""

    def __init__(self, fd, want=None, size=1 << 20, close=False):
        super().__init__(daemon=True)
        self.fd, self.want, self.size, self.close = fd, want, size, close
        self.data = bytearray()
        self.error = None
        self.eof = False
        self.start()

    def run(self):
        try:
            while self.want is None or len(self.data) < self.want:
                b = os.read(self.fd, self.size)
                if not b:
                    self.eof = True
                    break
                self.data += b
        except OSError as e:
            self.error = e
        finally:
            if self.close:
                os.close(self.fd)

    def join_result(self, limit=None):
        self.join(T if limit is None else limit)
        if self.is_alive():
            raise TimeoutError("reader did not finish")
        if self.error:
            raise self.error
        return bytes(self.data)


def in_thread(fn, *args):
    th = threading.Thread(target=fn, args=args, daemon=True)
    th.start()
    return th
