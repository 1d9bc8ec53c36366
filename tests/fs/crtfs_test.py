"""crtfs - shared helpers for the Python mounted-filesystem scenarios (TAP).

    import crtfs_test as ct
    tap = ct.Tap()
    with ct.Mount(tap) as m:           # private mount, stopped and checked at exit
        d = m.mkdir("x")
        tap.is_(ct.write(d + "/target", "sim:counter\\n"), 0, "target set")
    tap.done()

Every blocking client call goes through a deadline (`ct.T`, default 10 s):
reads and writes of streaming files run in a helper thread or with
poll()/alarm, so a hang fails the test instead of the run.  At exit the
daemon is stopped, the mount lazily unmounted, the temporary directory
removed, and the test fails when the daemon's stderr shows a GLib
critical/warning/error, a sanitizer report or a valgrind error.
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
# glibc's own aborts go to the daemon's stderr (the log), not the tty.
os.environ["LIBC_FATAL_STDERR_"] = "1"


def crtfs_binary():
    c = os.environ.get("CRTFS")
    if c:
        return os.path.abspath(c)
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", "..", "crtfs"), os.path.join(os.getcwd(), "crtfs")):
        if os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    return "crtfs"


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


class Mount:
    """A private crtfs mount.  `m.path`, `m.stop()` (SIGTERM, exit code).

    config: the text of the -o config= file ("" by default: no targets), or
    None for the embedded default (the demo target)."""

    def __init__(self, tap, *options, config="", mount_limit=5):
        self.tap = tap
        self.options = list(options)
        self.tmp = tempfile.mkdtemp(prefix="crtfs-test.")
        if config is not None:
            conf = os.path.join(self.tmp, "crtfs.conf")
            with open(conf, "w") as f:
                f.write(config)
            self.options += ["-o", "config=" + conf]
        self.path = os.path.join(self.tmp, "mnt")
        self.err_path = os.path.join(self.tmp, "crtfs.err")
        self.proc = None
        self.exit_code = None
        self.mount_limit = mount_limit
        tap.cleanups.append(self.cleanup)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def start(self):
        os.mkdir(self.path)
        cmd = [crtfs_binary(), "-f"] + self.options + [self.path]
        limit = self.mount_limit
        if os.environ.get("CRTFS_VALGRIND") == "1":
            cmd = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full", "--show-leak-kinds=definite",
                   "--errors-for-leak-kinds=definite"] + cmd
            limit = 30
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.err)
        deadline = time.monotonic() + limit
        while not self.mounted():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.tap.fail("crtfs mounts", self.log())
                raise RuntimeError("mount failed")
            time.sleep(0.02)

    def mounted(self):
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == self.path for line in f)

    def log(self):
        try:
            with open(self.err_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, limit=10):
        """Signal the daemon, wait; returns the exit code or None on a hang."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.exit_code = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_code = None
        return self.exit_code

    def wait(self, limit):
        try:
            self.exit_code = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def cleanup(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.stop(limit=5) is None:
                self.tap.diag("daemon did not exit on SIGTERM at cleanup")
        if self.mounted():
            subprocess.run(["fusermount3", "-u", "-z", self.path], stderr=subprocess.DEVNULL,
                           timeout=T)
        self.err.close()
        log = self.log()
        # a target's own errors (log domain crtfs-target) are what the
        # scenarios provoke
        bad = [l for l in log.splitlines()
               if BAD_LOG.search(l) and "crtfs-target-WARNING **" not in l]
        if not self.tap.ok(not bad, "daemon stderr has no warnings, criticals or sanitizer reports",
                           *log.splitlines()[-30:]):
            pass
        if os.environ.get("CRT_KEEP_LOG") == "1":
            self.tap.diag(log)
        self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mkdir(self, name):
        p = os.path.join(self.path, name)
        os.mkdir(p)
        return p


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


def write(path, data, flags=os.O_WRONLY | os.O_TRUNC):
    """One write(2) of data to path: 0 or the errno."""
    if isinstance(data, str):
        data = data.encode()

    def go():
        fd = os.open(path, flags)
        try:
            n = os.write(fd, data)
            return 0 if n == len(data) else errno.EIO
        except OSError as e:
            return e.errno
        finally:
            os.close(fd)

    return with_deadline(go)


def read(path, mode="t"):
    """The whole content of a (generated) file."""
    def go():
        with open(path, "rb") as f:
            return f.read()

    b = with_deadline(go)
    return b.decode() if mode == "t" else b


def state(d):
    """(state word, {key: value}) of a target directory."""
    text = read(os.path.join(d, "state"))
    lines = text.splitlines()
    fields = {}
    for l in lines[1:]:
        k, _, v = l.partition(": ")
        fields[k] = v
    return lines[0] if lines else "", fields


def stats(d):
    out = {}
    for l in read(os.path.join(d, "stats")).splitlines():
        k, v = l.split()
        out[k] = int(v)
    return out


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
