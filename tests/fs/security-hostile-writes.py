#!/usr/bin/env python3
"""Hostile writes: every writable file of a STREAMING target (ctl, target,
input, send and every file of config/) gets random and adversarial bytes:
huge and negative numbers, signs, hex, floats, empty and blank writes, NUL
bytes inside and at the end, non-UTF-8 bytes, a 1 MiB line, a 1 MiB blob
without a newline, many lines in one write, CR LF, overlong keywords,
writes at offsets (pwrite at 1, 4096, 2**40, 2**62), a command split over
two write(2) calls on one descriptor, O_APPEND and O_TRUNC, and a few
hundred seeded random byte strings per file (the seed is printed; set
CRT_HOSTILE_SEED to replay a run, CRT_HOSTILE_COUNT for how many random
strings per file, default 300).

Meanwhile a thread reads `records` of the target (`sim:records rate=2000`,
framing=stream, overflow=block) and checks that every SEQ is the previous
one + 1 and every status `ok`.  Payloads that the man page says would
legitimately stop the stream or change its target, type or overflow (stop,
stop-wait, suspend, a valid spec, an empty target line, drop-oldest, a
send that sleeps without a timeout) are never sent: the curated lists hold
none and the random ones are filtered (counted as `skipped`).

For every write: it succeeds (applies) or fails with a sane errno, never
hangs (every call has a deadline); what the man page says cannot apply (a
ctl command, a target spec or a non-live config/ value while streaming,
input to a read stream, a send header holding a NUL byte) does not; a
control write with a NUL byte fails with EINVAL and one over 64 KiB with
EFBIG; an applied config/ value reads back as written (payload
verbatim); after a write `state` still parses (six lines, the state word
streaming, the target unchanged) and its `error:` line is one line of
readable text (UTF-8, no control characters), not `none` once something
failed, and replaced by every write the daemon refused (a refused
`hostile-marker-N` written to ctl just before must be gone).  A `send`
write is answered by `ok N` (and N bytes, or none for write) or
`ERRNAME 0`, and closing a send session with a request pending forever
returns at once.  After each file's batch the daemon still answers
(`version`) and the stream still advances.  At the end the stream stops,
and the SEQ numbers read were 1..last with no gap, duplicate or reorder,
last == stats last_seq; the daemon exits 0 on SIGTERM.

Names: mkdir with a name over NAME_MAX (255 bytes; also 1000 bytes, and
128 two-byte characters) fails with ENAMETOOLONG, 255 bytes works, `.`
`..` and `version` are refused and create nothing.
Config-file groups named with a `/`, `.`, `..`, or longer than NAME_MAX
are refused at mount: crtfs exits non-zero, mounts nothing and says why
in readable text naming the group; a 255-byte group name mounts."""
import collections
import errno
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

SPEC = "sim:records rate=2000"
MIB = 1 << 20
CTL_MAX = 64 * 1024  # longest control write (man page: DIAGNOSTICS, EFBIG)
SLEEP, ZERO, ZERO_BYTES = 0x53494D01, 0x53494D02, 0x53494D03
SEED = int(os.environ.get("CRT_HOSTILE_SEED") or random.SystemRandom().randrange(1 << 32))
N_RANDOM = int(os.environ.get("CRT_HOSTILE_COUNT", "300"))
N_BIG = 4           # random strings per file of 64 KiB .. 1 MiB
LIMIT = 10          # seconds any single client call may take
LIVE_WORDS = {"overflow": ("block", "drop-oldest"), "framing": ("record", "stream")}
NON_LIVE = ("type", "requests", "out_count", "out_size", "in_count", "in_size", "ioctl",
            "mode", "lookaside", "in_memory", "out_memory", "completion",
            "purge_on_suspend")

SANE = {errno.EINVAL, errno.EFBIG, errno.EBUSY, errno.EMSGSIZE, errno.EAGAIN, errno.ERANGE,
        errno.EDESTADDRREQ, errno.EALREADY, errno.EOVERFLOW, errno.E2BIG, errno.EPERM,
        errno.EACCES, errno.ENOMEM, errno.EILSEQ, errno.ENOENT, errno.ENODEV, errno.ESPIPE}
# Opening a target spec can fail with the error of the open or connect.
TARGET_SANE = SANE | {errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ECONNREFUSED,
                      errno.EHOSTUNREACH, errno.ENXIO, errno.ELOOP}


def ename(e):
    return errno.errorcode.get(e, str(e))


def short(b, n=60):
    r = repr(b[:n])
    return r + ("...(%d bytes)" % len(b) if len(b) > n else "")


# ---- payloads ------------------------------------------------------------

NUMBERS = [b"18446744073709551616", b"18446744073709551615", b"18446744073709551616\n",
           b"1" + b"0" * 100, b"99999999999999999999999", b"4294967296", b"4294967295",
           b"2147483648", b"9223372036854775808", b"1073741825", b"65537", b"4097",
           b"-1", b"-0", b"-18446744073709551616", b"-99999999999999999999999", b"+5",
           b"+0", b"0x", b"0x10", b"0XFFFFFFFFFFFFFFFFF", b"0x-1", b"0b101", b"0o17", b"010",
           b"00000000000000000000000000000000000001", b"1.5", b"-1.5", b".5", b"5.", b"1e3",
           b"1e308", b"inf", b"-inf", b"nan", b"1_000", b"1,000", b" 5 ", b"5 5", b"5\n5",
           b"5\r\n", b"5\r", b"\xd9\xa1\xd9\xa2",  # Arabic-Indic digits
           b"\xef\xbc\x95"]                       # a fullwidth 5
BLANKS = [b"", b" ", b"\n", b"\r\n", b"\t \t\n", b"\n\n\n", b"\x0b\x0c", b"\r"]
NULS = [b"\0", b"\0\0\0", b"5\0", b"\x005", b"ab\0cd", b"abc\0", b"x" * 100 + b"\0",
        b"\0\n", b"block\0", b"stream\0\n"]
NON_UTF8 = [b"\xff\xfe\xfd", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80\n", b"caf\xe9\n",
            b"\xf4\x90\x80\x80", b"\xfe" * 300]
ODD = [b"\x1b[2J\x1b[H", b"%s%s%s%n%x", b"'\"`$(reboot)`", b"../../../../etc/passwd",
       b"\x7f\x08\x08", b"a\nb", b"\n\n\nx", b"x\n\n", b"\r\n" * 100, b"\t" * 70,
       "é ü 中文 🚀".encode(), b"\xe2\x80\xae\xe2\x80\x8b"]  # RTL override, zero width space
BIG = [b"A" * (MIB - 1) + b"\n",            # a 1 MiB line
       b"B" * MIB,                          # 1 MiB, no newline
       b"9" * MIB,                          # a 1 MiB number
       b"x" * CTL_MAX,                      # exactly the limit
       b"x" * (CTL_MAX + 1),                # one over
       b"7" * (CTL_MAX - 1) + b"\n",        # a 64 KiB number line
       b"line\n" * 10000,                   # many lines in one write
       b"\n".join(b"%d" % i for i in range(5000)),
       b"\0" * 70000]
COMMON = NUMBERS + BLANKS + NULS + NON_UTF8 + ODD + BIG

CTL_EXTRA = [b"start", b"start\n", b" start \r\n", b"resume", b" resume\t\n", b"START",
             b"Resume", b"startx", b"start start", b"start\nstart", b"start\0",
             b"start" * 13000, b"start" * 14000, b"resume" * 10, b"stopstop",
             b"stop stop", b"stop\nstop", b"stop-wait-wait", b"stopwait", b"sto p",
             b"s\0top", b"stop\0", b"\0stop", b"suspend\0", b"stop" + b" " * 70000,
             b"stop-wait\0\n", b"stop\x01", b"sto\xffp", b"-stop", b"stop=1", b"stop\\n"]

# Every one must be refused (malformed spec, or a target that cannot be
# opened); none has `wait` (an absent target would then be accepted).
TARGET_EXTRA = [
    b"sim:bogus", b"sim:records rate=-1", b"sim:records rate=18446744073709551616",
    b"sim:records rate=1000001", b"sim:records size=0", b"sim:records size=1048577",
    b"sim:records size=-32", b"sim:records rate=2000 rate=2001", b"sim:records delay=5-1",
    b"sim:records delay=-5", b"sim:records delay=3600001", b"sim:records delay=1-2-3",
    b"sim:records fail=-1", b"sim:records fail=x", b"sim:records errno=EBOGUS",
    b"sim:records errno=0", b"sim:records errno=4096", b"sim:records errno=-5",
    b"sim:records limit=-1", b"sim:records limit=99999999999999999999999",
    b"sim:records bogus", b"sim:records rate=", b"sim:records =5", b"sim:records rate==5",
    b"sim:records rate=0x10", b"sim:records rate=+5", b"sim:records rate=1e3",
    b"sim:records\nsim:zero", b"sim:records rate=2000\0", b"sim:records\0",
    b"sim:rec\xffords", b"sim:records rate=2\xff", b"sim:records 8N1", b"sim:records baud=9600",
    b"sim:records fatal=1", b"sim:records rate=2000 \xff\xfe", b"sim:records " + b"x" * 60000,
    b"sim:records " + b"rate=1 " * 9000 + b"bogus", b"sim:" + b"r" * 70000,
    b"sim:records rate=2000\nbogus", b"sim:counter size=0", b"sim:echo rate=-1",
    b"/nonexistent-crtfs-hostile/dev baud=9600", b"/nonexistent-crtfs-hostile/x baud=12345",
    b"/nonexistent-crtfs-hostile/x baud=-1", b"/nonexistent-crtfs-hostile/x parity=weird",
    b"/nonexistent-crtfs-hostile/x 9Z9", b"/nonexistent-crtfs-hostile/\xff\xfe",
    b"/nonexistent-crtfs-hostile/" + b"d" * 5000, b"/" + b"/" * 5000 + b"nonexistent",
    b"/", b"/tmp", b"/tmp/../tmp/", b"/proc/self/fd/99999", b"relative/path", b"dev/null",
    b"./x", b"~/x", b"unix:", b"unix:relative", b"unix:/nonexistent-crtfs-hostile.sock",
    b"unix:/" + b"x" * 200, b"unix:@" + b"x" * 200, b"unix:/nonexistent-crtfs-hostile.sock bogus",
    b"tcp:", b"tcp:host", b"tcp:127.0.0.1:99999", b"tcp:127.0.0.1:-1", b"tcp:127.0.0.1:0x50",
    b"tcp:127.0.0.1:18446744073709551617", b"tcp:[::1", b"tcp:[::1]:", b"tcp::",
    b"tcp:127.0.0.1:80 bogus", b"exec:", b"exec:   ", b"exec:\0id", b"exec:" + b"x" * 70000,
    b"file:/dev/null", b"sim", b"SIMX:records", b"sim :records", b"simulator:records"]

INPUT_EXTRA = [b"x" * 4096, b"x" * 4097, b"x" * 65536, b"\0" * 4096]

SEND_EXTRA = [
    b"read size=99999999999", b"read size=16777217", b"read size=-1", b"read size=0x10",
    b"read size=", b"read timeout=4294967296", b"read timeout=-1", b"read timeout=1.5",
    b"ioctl", b"ioctl ioctl=", b"ioctl ioctl=0x", b"ioctl ioctl=0x100000000",
    b"ioctl ioctl=-1", b"ioctl ioctl=4294967296", b"internal-ioctl ioctl=0xfffffffff",
    b"READ", b"Write", b"read read", b"read\0 bogus", b"read\0size=99999999999",
    b"\0read", b"read\r", b"read \xff", b"\xffread", b"cancel\nx", b"cancel\0",
    b"cancel", b"cancel\n", b" cancel \t", b"\n", b"\nwrite", b"\n\n\n", b"write\n",
    b"write\n" + b"\0" * 100, b"write\n" + b"\xff" * 4096, b"write\n" + b"x" * (MIB - 6),
    b"write\n" + b"y" * MIB,  # more than one FUSE write: the rest is a second header
    b"read size=0", b"read size=16777216", b"read size=1 timeout=1", b"read\tsize=5",
    b"read size=1 size=2", b"read ioctl=1 ioctl=2", b"read " + b"size=1 " * 9000,
    b"ioctl ioctl=1", b"ioctl ioctl=0x53494d03", b"ioctl ioctl=0X53494D03 size=0",
    b"ioctl ioctl=0x53494d01 timeout=20\n\xff\xff\xff\xff",
    b"ioctl ioctl=0x53494d01 timeout=1\n\xff\xff\xff\xff",
    b"ioctl ioctl=0x53494d02 size=16777216\n\0\0\0\0",
    b"ioctl ioctl=0x53494d02 timeout=30 size=64\n\xff\xff\xff\x7f",
    b"internal-ioctl ioctl=7 size=0\nabc", b"internal-ioctl\n" + b"\xff" * 5000,
    b"internal-ioctl ioctl=7 size=3\n" + b"z" * 100, b"internal-ioctl ioctl=0 timeout=0\n",
    b"internal-ioctl ioctl=0x53494d01 timeout=10\n\xff\xff\xff\xff",
    b"write timeout=0 size=0 ioctl=0\n\0", b"read timeout=4294967295 size=1",
    b"write\0 size=-1\nabc", b"read size=4\0junk\nPAYLOAD",
    b"a" + "é".encode() * 40,  # 81 bytes of UTF-8: a quote cut at 64 bytes splits a character
    "écrire".encode() + b"\n"]

SPLITS = {  # a command in two write(2) calls: each is one command or value
    "ctl": [[b"sto", b"p"], [b"stop-", b"wait"], [b"sus", b"pend"], [b"star", b"t\n"],
            [b"stop", b"\0"]],
    "target": [[b"sim:recor", b"ds rate=2000"], [b"/nonexistent-crtfs-hostile/a", b"b"],
               [b"sim:records rate=20x", b"00"]],
    "input": [[b"ab", b"cd"]],
    "send": [[b"write", b"\nhello"], [b"internal-ioctl ioctl=7\n", b"payload"],
             [b"rea", b"d size=4"]],
    "payload": [[b"ab", b"cd"], [b"first\n", b"second\n"]],
    "overflow": [[b"drop-", b"oldest"], [b"dro", b"p-oldest\n"], [b"bl", b"ock"]],
    "framing": [[b"str", b"eam"], [b"rec", b"ord"]],
    "config": [[b"12", b"3x"], [b"1", b"\0"], [b"-", b"1"]],
}


def config_extra(key):
    words = {
        "type": [b"read", b"write", b"ioctl", b"internal-ioctl", b"READ", b"internal_ioctl"],
        "mode": [b"manual", b"automatic", b"auto", b"MANUAL"],
        "lookaside": [b"0", b"1", b"true", b"off", b"2", b"yes\0", b"TRUE"],
        "purge_on_suspend": [b"1", b"on", b"maybe"],
        "in_memory": [b"normal", b"locked", b"lock"],
        "out_memory": [b"locked", b"Normal"],
        "completion": [b"passive", b"default", b"active"],
        "ioctl": [b"0x53494d01", b"0xffffffff", b"0x100000000", b"0777", b"089", b"0x",
                  b"4294967296", b"-0x1"],
        "requests": [b"0", b"1", b"4096", b"4097"],
        "out_count": [b"0", b"65536", b"65537"],
        "in_count": [b"0", b"65537"],
        "out_size": [b"0", b"1073741824", b"1073741825", b"12x"],
        "in_size": [b"1073741824", b"1073741825"],
        "overflow": [b"block", b" block\n", b"block\t", b"BLOCK", b"drop-oldest-",
                     b"drop_oldest", b"dropoldest", b"drop-oldest\0", b"drop-oldest\r\n",
                     b"drop-oldest\n\n", b"drop-oldest block", b"Drop-Oldest", b"block\r"],
        "framing": [b"stream", b"record", b" record \n", b"RECORD", b"records", b"stream\n\n",
                    b"stream\r\n", b"packed"],
        "payload": [b"tick", b"tick\n", b"tick\n\n", b"  blanks kept  ", b"\r\n", b"\xff\xfe",
                    b"x" * 65536, b"a\nb\nc", b"\n"],
    }
    return words.get(key, [])


def dangerous(kind, key, payload):
    """Would the man page have this write stop the stream or change what
    the SEQ check relies on?  Conservative (also refuses case variants)."""
    if b"\0" in payload or len(payload) > CTL_MAX:
        return kind == "send" and send_risky(payload)  # control writes refuse these
    if kind == "ctl":
        return payload.strip().lower() in (b"stop", b"stop-wait", b"suspend")
    if kind == "target":
        s = payload.strip()
        if not s:
            return True  # an empty line clears the target
        first = s.split()[0].lower()
        return any(first.startswith(p) for p in (b"sim:", b"exec:", b"tcp:", b"unix:", b"/"))
    if kind == "config" and key == "overflow":
        v = payload[:-1] if payload.endswith(b"\n") else payload
        return v.strip(b" \t").lower() == b"drop-oldest"
    if kind == "send":
        return send_risky(payload)
    return False


def send_risky(payload):
    """A send whose reply may take forever: the sim sleep/zero ioctls without
    a short timeout (their delay comes from the payload)."""
    header = payload.split(b"\n", 1)[0]
    for h in (header, header.split(b"\0", 1)[0]):
        words = h.replace(b"\t", b" ").split()
        codes, timeout = [], None
        for w in words:
            if w.startswith(b"ioctl="):
                v = w[6:]
                try:
                    codes.append(int(v[2:], 16) if v[:2].lower() == b"0x" else int(v, 10))
                except ValueError:
                    pass
            if w.startswith(b"timeout="):
                try:
                    timeout = int(w[8:], 10)
                except ValueError:
                    pass
        if any(c in (SLEEP, ZERO) for c in codes) and not (timeout and 0 < timeout <= 3000):
            return True
    return False


class Gen:
    """Seeded random payloads for one file."""

    TOKENS = [b"start", b"stop", b"resume", b"suspend", b"stop-wait", b"read", b"write", b"ioctl",
              b"internal-ioctl", b"block", b"drop-oldest", b"record", b"stream", b"manual",
              b"automatic", b"true", b"off", b"locked", b"passive", b"cancel", b"size=",
              b"timeout=", b"ioctl=", b"rate=", b"=", b"0x", b"-", b"+", b"0", b"1", b"4096",
              b"18446744073709551616", b"99999999999999999999999", b"-1", b"0x53494d03",
              b" ", b"  ", b"\t", b"\n", b"\r", b"\r\n", b"\0", b"\xff", b"\xc3", b"\xa9",
              "é".encode(), b"\x1b", b"%n", b"\\", b"\"", b"'", b"#", b";", b"[", b"]"]
    SIM_OPTS = [b"rate=%d", b"size=%d", b"delay=%d", b"delay=%d-%d", b"limit=%d", b"fail=%d",
                b"errno=EIO", b"errno=%d", b"fatal", b"rate=0"]
    BAD_OPTS = [b"bogus", b"rate=-1", b"size=0", b"errno=EBOGUS", b"rate=1 rate=2",
                b"delay=9-1", b"limit=-5", b"size=99999999"]

    def __init__(self, rng, kind, curated):
        self.rng, self.kind, self.curated = rng, kind, curated

    def length(self):
        r = self.rng
        return r.choice([0, 1, 2, 3, 5, 8, 16, 31, 32, 33, 64, 100, 255, 256, 1000, 4095, 4096,
                         r.randrange(0, 4097), r.randrange(0, 64)])

    def raw(self):
        return self.rng.randbytes(self.length())

    def soup(self):
        r = self.rng
        n = self.length()
        out = bytearray()
        while len(out) < n:
            t = r.choice(self.TOKENS)
            if r.random() < 0.2:
                t = b"%d" % r.choice([r.randrange(0, 10), r.randrange(0, 1 << 64),
                                      -r.randrange(0, 1 << 40), 10 ** r.randrange(1, 40)])
            out += t
            if r.random() < 0.5:
                out += r.choice([b" ", b"\t", b"\n", b""])
        return bytes(out[:max(n, 1)])

    def target_soup(self):
        """A spec with at least one word that makes it invalid."""
        r = self.rng
        head = r.choice([b"sim:", b"sim:records", b"sim:counter", b"sim:zero", b"sim:echo",
                         b"sim:records", b"/nonexistent-crtfs-hostile/t", b"unix:@crtfs-nonexistent",
                         b"sim:" + r.randbytes(3)])
        opts = []
        for _ in range(r.randrange(0, 6)):
            o = r.choice(self.SIM_OPTS)
            k = o.count(b"%")
            o = o % tuple(r.choice([r.randrange(0, 100), r.randrange(0, 1 << 64)])
                          for _ in range(k)) if k else o
            opts.append(o)
        for _ in range(r.randrange(1, 3)):
            opts.insert(r.randrange(0, len(opts) + 1), r.choice(self.BAD_OPTS))
        sep = lambda: r.choice([b" ", b"\t", b"  ", b" \t "])
        s = head
        for o in opts:
            s += sep() + o
        return s + r.choice([b"", b"\n", b" \n", b"\r\n"])

    def send_soup(self):
        r = self.rng
        words = [r.choice([b"read", b"write", b"ioctl", b"internal-ioctl", b"cancel", b"READ",
                           r.randbytes(4)])]
        for _ in range(r.randrange(0, 5)):
            words.append(r.choice([b"size=%d", b"timeout=%d", b"ioctl=%d", b"ioctl=0x%x",
                                   b"junk=%d"]) % r.choice([0, 1, 7, 4096, ZERO_BYTES,
                                                            1 << 24, (1 << 24) + 1,
                                                            r.randrange(0, 1 << 65)]))
        header = r.choice([b" ", b"\t", b"  "]).join(words)
        payload = r.randbytes(r.choice([0, 0, 1, 4, 100, r.randrange(0, 5000)]))
        return header + (b"\n" + payload if r.random() < 0.7 else b"")

    def mutate(self, src):
        r = self.rng
        b = bytearray(src[:4096])
        for _ in range(r.randrange(1, 4)):
            op = r.randrange(5)
            pos = r.randrange(0, len(b) + 1)
            if op == 0 and b:
                b[min(pos, len(b) - 1)] ^= 1 << r.randrange(8)
            elif op == 1:
                b[pos:pos] = r.choice([b"\0", b"\n", b"\xff", b" ", b"-", b"9" * 30, b"\r"])
            elif op == 2 and b:
                del b[pos:pos + r.randrange(1, 8)]
            elif op == 3:
                b += b[pos:pos + r.randrange(1, 64)] * r.randrange(1, 20)
            else:
                b = b[:pos]
        return bytes(b)

    def one(self):
        r = self.rng.random()
        if self.kind == "target" and r < 0.35:
            return self.target_soup(), True  # invalid by construction
        if self.kind == "send" and r < 0.35:
            return self.send_soup(), False
        if r < 0.4:
            return self.raw(), False
        if r < 0.75:
            return self.soup(), False
        return self.mutate(self.rng.choice(self.curated)), False

    def big(self):
        r = self.rng
        size = r.choice([CTL_MAX - 1, CTL_MAX, CTL_MAX + 1, 1 << 18, MIB - 1, MIB])
        if r.random() < 0.5:
            return r.randbytes(size)
        return (r.choice(self.TOKENS) + b" ") * (size // 8) + r.randbytes(size % 8)


# ---- one write, and what it did --------------------------------------------

class Attempt:
    def __init__(self, chunks, label, flags=os.O_WRONLY, offset=None, known_invalid=False):
        self.chunks = chunks if isinstance(chunks, list) else [chunks]
        self.label, self.flags, self.offset = label, flags, offset
        self.known_invalid = known_invalid


class Tally:
    def __init__(self, name):
        self.name = name
        self.attempted = self.applied = self.noop = self.skipped = 0
        self.short = []
        self.errnos = collections.Counter()
        self.insane = []          # (errno, payload)
        self.hangs = []
        self.unexpected = []      # applied though the man page says it cannot
        self.wrong = []           # other broken expectations
        self.bad_error = collections.OrderedDict()  # problem -> (count, example)
        self.changed = []         # the stream stopped or its target changed
        self.replies = collections.Counter()
        self.max_error_len = 0

    def note_bad_error(self, problem, detail, example):
        n, chars, ex = self.bad_error.get(problem, (0, set(), example))
        if isinstance(detail, set):
            chars |= detail
        self.bad_error[problem] = (n + 1, chars, ex)

    def summary(self):
        fails = " ".join("%s=%d" % (ename(e), n) for e, n in sorted(self.errnos.items(),
                                                                     key=lambda x: -x[1]))
        s = "%-22s attempted %4d applied %4d (zero-length %d) failed %4d [%s]" % (
            self.name, self.attempted, self.applied, self.noop, sum(self.errnos.values()),
            fails)
        if self.short:
            s += " short %d" % len(self.short)
        if self.skipped:
            s += " skipped %d" % self.skipped
        if self.replies:
            s += " replies [%s]" % " ".join("%s=%d" % kv for kv in sorted(self.replies.items()))
        return s


def file_writes(path, att):
    """Open path, do att's write(2) calls, close; under one deadline.  A list
    of results, one per call: bytes written or -errno."""

    def go():
        res = []
        fd = os.open(path, att.flags)
        try:
            for c in att.chunks:
                try:
                    if att.offset is not None:
                        res.append(os.pwrite(fd, c, att.offset))
                    else:
                        res.append(os.write(fd, c))
                except OSError as e:
                    res.append(-e.errno)
        finally:
            os.close(fd)
        return res

    return ct.with_deadline(go, limit=LIMIT)


# ---- state ------------------------------------------------------------------

STATE_KEYS = ("target", "presence", "mode", "type", "error")
STATE_TAIL = ("error_at", "keep")  # the lines after `error:`
WORDS = ("stopped", "streaming", "stopping", "suspended")



def parse_state(raw):
    """(word, fields, problems): the error value is everything after
    `error: `, so an error spanning several lines shows as such."""
    problems = []
    if not raw.endswith(b"\n"):
        problems.append("state does not end with a newline")
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    word = lines[0].decode("utf-8", "replace") if lines else ""
    if word not in WORDS:
        problems.append("state word %r" % word)
    fields = {}
    for i, k in enumerate(STATE_KEYS, 1):
        if i >= len(lines) or not lines[i].startswith(k.encode() + b": "):
            problems.append("line %d is not `%s: ...`: %r" % (i + 1, k,
                                                            lines[i][:60] if i < len(lines) else None))
            continue
        fields[k] = lines[i][len(k) + 2:]
    # After `error:` come the STATE_TAIL keys; any other line would be the
    # error's, spanning lines.
    tail = lines[6:]
    if (len(tail) == len(STATE_TAIL) and
            all(l.startswith(k.encode() + b": ") for l, k in zip(tail, STATE_TAIL))):
        fields.update({k: l[len(k) + 2:] for l, k in zip(tail, STATE_TAIL)})
    elif tail and "error" in fields:
        fields["error"] = b"\n".join([fields["error"]] + tail)
    return word, fields, problems


def error_problems(err):
    """Why an `error:` value is not one line of readable text:
    [(category, detail)]."""
    out = []
    if err is None:
        return [("no error: line", "")]
    if b"\n" in err:
        out.append(("a newline inside (state gets extra lines)", "%d lines" % (err.count(b"\n") + 1)))
    try:
        s = err.decode("utf-8")
    except UnicodeDecodeError:
        out.append(("not UTF-8", ""))
        s = err.decode("utf-8", "replace")
    if not s.strip():
        out.append(("empty", ""))
    ctl = {c for c in s if c != "\n" and unicodedata.category(c) == "Cc"}
    if ctl:
        out.append(("control characters", ctl))
    return out


# ---- the records reader -------------------------------------------------------

class SeqChecker(threading.Thread):
    """Reads `records` until told to stop; every SEQ is the previous + 1,
    every status ok.  End of file before the end is counted (the stream
    was stopped by something) and reading goes on: the next stream comes
    to the same reader."""

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd = fd
        self.parser = ct.RecordParser()
        self.seqs_last = 0
        self.first = None
        self.count = 0
        self.problems = []
        self.eofs = 0
        self.finishing = False
        self.error = None
        self.bytes = 0

    def run(self):
        try:
            while True:
                b = os.read(self.fd, 1 << 20)
                if not b:
                    self.eofs += 1
                    if self.finishing:
                        return
                    continue
                self.bytes += len(b)
                for seq, _t, status, payload in self.parser.feed(b):
                    if self.first is None:
                        self.first = seq
                    if seq != self.seqs_last + 1 and len(self.problems) < 20:
                        self.problems.append("SEQ %d after %d" % (seq, self.seqs_last))
                    if status != "ok" and len(self.problems) < 20:
                        self.problems.append("SEQ %d has status %s" % (seq, status))
                    self.seqs_last = seq
                    self.count += 1
                if len(self.parser.buf) > 4 * MIB:
                    self.problems.append("unparseable records: %r" % self.parser.buf[:80])
                    return
        except OSError as e:
            self.error = e


# ---- the scenario ------------------------------------------------------------

class Hostile:
    def __init__(self, tap, m, d):
        self.tap, self.m, self.d = tap, m, d
        self.version = ct.read(os.path.join(m.path, "version"), "b")
        self.rng = random.Random(SEED)
        self.tallies = []
        self.restores = 0
        self.marker = 0

    # After every attempt: state parses, is still streaming the same target.
    def check_state(self, t, att, failed):
        raw = ct.read(self.d + "/state", "b")
        word, fields, problems = parse_state(raw)
        for p in problems:
            if p.startswith("line") and "error" in fields and b"\n" in fields["error"]:
                continue  # reported as an error: problem below
            t.wrong.append("state unparseable after %s: %s" % (short(att.chunks[0]), p))
        err = fields.get("error")
        if err is not None:
            t.max_error_len = max(t.max_error_len, len(err))
            for p, detail in error_problems(err):
                t.note_bad_error(p, detail, (att.chunks, err))
            if failed and err == b"none":
                t.note_bad_error("`none` after a failed write", "", (att.chunks, err))
        target = fields.get("target", b"").decode("utf-8", "replace")
        if word != "streaming" or target != SPEC:
            t.changed.append("%s -> state %s, target %r" % (short(b"".join(att.chunks)), word,
                                                           target[:60]))
            self.restore()
        return err

    def restore(self):
        """Put the stream back as it was after a write changed it (that
        write is already reported)."""
        self.restores += 1
        _, fields, _ = parse_state(ct.read(self.d + "/state", "b"))
        if fields.get("target", b"").decode("utf-8", "replace") != SPEC:
            ct.write(self.d + "/target", SPEC, os.O_WRONLY)
        for k, v in (("overflow", "block"), ("framing", "stream")):
            if ct.read(self.d + "/config/" + k, "b") != (v + "\n").encode():
                ct.write(self.d + "/config/" + k, v, os.O_WRONLY)
        word, _, _ = parse_state(ct.read(self.d + "/state", "b"))
        if word == "suspended":
            ct.write(self.d + "/ctl", "resume", os.O_WRONLY)
        ct.wait_until(lambda: parse_state(ct.read(self.d + "/state", "b"))[0] != "stopping")
        if parse_state(ct.read(self.d + "/state", "b"))[0] != "streaming":
            ct.write(self.d + "/ctl", "start", os.O_WRONLY)

    def classify(self, t, att, results, sane, must_fail):
        """Count each write(2) of the attempt; -> (any applied, any failed)."""
        applied = failed = False
        for c, r in zip(att.chunks, results):
            t.attempted += 1
            if r < 0:
                failed = True
                t.errnos[-r] += 1
                if -r not in sane:
                    t.insane.append((-r, c))
                if t.must_apply and len(c) and t.must_apply(c):
                    t.wrong.append("%s refused with %s (%s)" % (short(c), ename(-r), att.label))
                # what the man page promises for control writes
                if t.kind in ("ctl", "target", "config") and att.offset is None:
                    if b"\0" in c and len(c) <= CTL_MAX and -r != errno.EINVAL:
                        t.wrong.append("NUL byte: %s instead of EINVAL for %s"
                                       % (ename(-r), short(c)))
                    if len(c) > CTL_MAX and -r != errno.EFBIG:
                        t.wrong.append("%d bytes: %s instead of EFBIG" % (len(c), ename(-r)))
            elif r == len(c):
                if len(c) == 0:
                    t.noop += 1
                    continue
                t.applied += 1
                applied = True
                if must_fail(c):
                    t.unexpected.append(c)
            else:
                t.short.append((r, len(c), short(c, 24)))
                applied = True
        return applied, failed

    def run_file(self, name, kind, key, curated, attempts_extra, sane, must_fail,
                 after_apply=None, must_apply=None):
        t = Tally(name)
        t.kind = kind
        t.must_apply = must_apply
        self.tallies.append(t)
        path = self.d + "/" + name
        gen = Gen(self.rng, kind, curated)
        fl = os.O_RDWR if kind == "send" else os.O_WRONLY
        atts = [Attempt(p, "curated", fl, known_invalid=True) for p in curated]
        atts += attempts_extra
        for _ in range(N_RANDOM):
            p, inv = gen.one()
            atts.append(Attempt(p, "random", fl, known_invalid=inv))
        for _ in range(N_BIG):
            atts.append(Attempt(gen.big(), "random-big", fl))
        count0 = self.reader.count
        t0 = time.monotonic()
        send_fd = os.open(path, os.O_RDWR) if kind == "send" else None
        hangs = 0
        modes = []
        for att in atts:
            whole = b"".join(att.chunks)
            risky = any(dangerous(kind, key, c) for c in att.chunks)
            if risky and not (att.known_invalid and kind == "target" and
                              whole.strip() != b""):
                t.skipped += 1
                continue
            try:
                # A refused write of a known text to ctl first: the write
                # under test, if refused by the daemon, must replace it.
                self.marker += 1
                marker = b"hostile-marker-%d" % self.marker
                file_writes(self.d + "/ctl", Attempt(marker, "marker"))
                if send_fd is not None and att.offset is None and att.flags == os.O_RDWR:
                    results = self.send_writes(send_fd, att)
                else:
                    results = file_writes(path, att)
            except TimeoutError:
                t.hangs.append(short(whole))
                hangs += 1
                if hangs >= 3:
                    break
                continue
            except OSError as e:  # the open failed
                t.attempted += 1
                t.errnos[e.errno] += 1
                if e.errno not in sane:
                    t.insane.append((e.errno, whole))
                continue
            applied, failed = self.classify(t, att, results, sane, must_fail)
            if att.label not in ("curated", "random", "random-big"):
                modes.append("%s: %s" % (att.label, "+".join(
                    ename(-r) if r < 0 else "ok" if r == len(c) else "short"
                    for c, r in zip(att.chunks, results))))
            if kind == "send" and applied:
                fd = send_fd if att.flags == os.O_RDWR and att.offset is None else None
                if fd is not None:
                    self.drain_replies(t, fd, att)
            try:
                err = self.check_state(t, att, failed)
                if any(r < 0 and -r != errno.ESPIPE for r in results) and err is not None \
                        and marker in err:
                    t.note_bad_error("a refused write left error: as it was", "",
                                     (att.chunks, err))
                if applied and after_apply:
                    after_apply(t, att, results)
            except TimeoutError:
                t.hangs.append("reading state after %s" % short(whole))
        if send_fd is not None:
            self.close_send(t, send_fd)
        tap_modes = "; ".join(modes)
        self.after_batch(t, count0, t0)
        self.tap.diag("%s offsets, modes, splits: %s" % (t.name, tap_modes))
        return t

    # ---- send ---------------------------------------------------------------

    def send_writes(self, fd, att):
        def go():
            res = []
            for c in att.chunks:
                try:
                    res.append(os.write(fd, c))
                except OSError as e:
                    res.append(-e.errno)
            return res
        return ct.with_deadline(go, limit=LIMIT)

    def drain_replies(self, t, fd, att):
        """Read every reply until end of file (nothing pending)."""
        for _ in range(64):
            try:
                b = ct.read_fd(fd, MIB + 64, limit=LIMIT)
            except TimeoutError:
                t.hangs.append("reply to %s" % short(b"".join(att.chunks)))
                return
            except OSError as e:
                t.wrong.append("read of a reply: %s after %s" % (ename(e.errno),
                                                                  short(b"".join(att.chunks))))
                return
            if not b:
                return
            head, nl, data = b.partition(b"\n")
            m = re.fullmatch(rb"ok (\d+)|(E[A-Z0-9]+) 0", head)
            if not nl or not m:
                t.wrong.append("reply %s to %s" % (short(b), short(b"".join(att.chunks))))
                return
            t.replies[(m.group(2) or b"ok").decode()] += 1
            if m.group(1) and data:
                want = int(m.group(1))
                while len(data) < want:
                    more = ct.read_fd(fd, MIB + 64, limit=LIMIT)
                    if not more:
                        break
                    data += more
                if len(data) != want:
                    t.wrong.append("reply %s carries %d bytes" % (head.decode(), len(data)))

    def close_send(self, t, fd):
        try:
            ct.with_deadline(os.close, fd, limit=LIMIT)
        except TimeoutError:
            t.hangs.append("close of send")

    # ---- after a file's batch ---------------------------------------------------

    def after_batch(self, t, count0, t0):
        tap = self.tap
        alive = self.m.proc.poll() is None
        try:
            v = ct.read(os.path.join(self.m.path, "version"), "b")
        except (OSError, TimeoutError) as e:
            v = repr(e)
        word, fields, problems = parse_state(ct.read(self.d + "/state", "b")) if alive else \
            ("dead", {}, ["daemon died"])
        moving = ct.wait_until(lambda: self.reader.count > count0, limit=5)
        tap.ok(alive and v == self.version and word == "streaming" and moving,
               "%s: after %d writes (%.1f s) the daemon answers, state parses and streams, "
               "records flow" % (t.name, t.attempted, time.monotonic() - t0),
               "alive %s, version %r, state %s %s, records read %d -> %d"
               % (alive, v, word, problems, count0, self.reader.count))
        insane = collections.Counter(e for e, _ in t.insane)
        tap.ok(not t.insane and not t.hangs,
               "%s: every write applied or failed with a sane errno, none hung" % t.name,
               *(["errno %s (%d times), e.g. for %s" % (ename(e), n,
                                                        short(next(p for x, p in t.insane
                                                                   if x == e)))
                  for e, n in insane.items()] + ["hang: %s" % h for h in t.hangs[:5]]))
        tap.ok(not t.unexpected and not t.wrong and not t.changed and
               (not t.short or t.kind == "send"),
               "%s: nothing applied that cannot apply while streaming, the man page's "
               "errnos, the stream untouched" % t.name,
               *(["applied, though %s: %s" % (WHY_NOT.get(t.kind, "it cannot"), short(p))
                  for p in t.unexpected[:5]] +
                 (["... and %d more applied" % (len(t.unexpected) - 5)]
                  if len(t.unexpected) > 5 else []) +
                 t.wrong[:8] + ["changed the stream: %s" % c for c in t.changed[:5]] +
                 (["short write %d of %d (%s)" % s for s in t.short[:5]]
                  if t.kind != "send" else [])))
        if t.short:
            tap.diag("%s: short writes (the kernel cut them, the rest was a new header): %s"
                     % (t.name, "; ".join("%d of %d for %s" % s for s in t.short[:10])))
        tap.ok(not t.bad_error, "%s: error: stays one line of readable text" % t.name,
               *["%s%s: after %d writes, e.g. write %s -> error: %s"
                 % (p, " " + "".join(sorted(repr(c)[1:-1] for c in chars)) if chars else "",
                    n, short(b"".join(ex[0])), short(ex[1], 100))
                 for p, (n, chars, ex) in t.bad_error.items()])
        tap.diag(t.summary() + "; longest error: %d bytes" % t.max_error_len)


WHY_NOT = {"ctl": "only stop and stop-wait succeed while streaming",
           "target": "the spec is invalid or cannot be opened",
           "input": "input of a read stream fails with EINVAL",
           "config": "the value is invalid, or the key cannot change while streaming",
           "send": "the header has a NUL byte (the daemon drops it and what follows)"}


def offsets_and_modes(kind, good=None):
    """pwrite at offsets, O_APPEND, O_TRUNC, split writes: (payload, label)."""
    probe = good if good is not None else b"hostile-offset-probe\n"
    fl = os.O_RDWR if kind == "send" else os.O_WRONLY
    out = [Attempt(probe, "pwrite %d" % off, fl, off, True) for off in (1, 4096, 1 << 40, 1 << 62)]
    out.append(Attempt(probe, "append", fl | os.O_APPEND, None, True))
    out.append(Attempt(probe, "trunc", fl | os.O_TRUNC, None, True))
    out.append(Attempt([b"x\0y"], "pwrite NUL", fl, 1 << 40, True))
    return out


def splits(name, kind):
    key = name.split("/")[-1]
    lst = SPLITS.get(key) or SPLITS.get(kind) or SPLITS["config"]
    fl = os.O_RDWR if kind == "send" else os.O_WRONLY
    return [Attempt(s, "split", fl, None, True) for s in lst]


def hostile_writes(tap, m):
    d = m.mkdir("hostile")
    for k, v in (("framing", "stream"), ("overflow", "block")):
        tap.is_(ct.write(d + "/config/" + k, v, os.O_WRONLY), 0, "%s %s" % (k, v))
    tap.is_(ct.write(d + "/target", SPEC, os.O_WRONLY), 0, "target " + SPEC)
    rfd = os.open(d + "/records", os.O_RDONLY)
    h = Hostile(tap, m, d)
    h.reader = SeqChecker(rfd)
    h.reader.start()
    tap.is_(ct.write(d + "/ctl", "start", os.O_WRONLY), 0, "start")
    tap.ok(ct.wait_until(lambda: h.reader.count > 10), "records flow (%d)" % h.reader.count)

    nothing = lambda c: True  # nothing may apply
    # ctl: every command left (start, resume) fails while streaming
    h.run_file("ctl", "ctl", None, COMMON + CTL_EXTRA,
               offsets_and_modes("ctl") + splits("ctl", "ctl"), SANE, nothing)
    h.run_file("target", "target", None, COMMON + TARGET_EXTRA,
               offsets_and_modes("target", b"sim:records rate=-5\n") + splits("target", "target"),
               TARGET_SANE, nothing)
    h.run_file("input", "input", None, COMMON + INPUT_EXTRA,
               offsets_and_modes("input") + splits("input", "input"), SANE, nothing)
    # the header is words separated by blanks; bytes after a NUL in it
    # (an unknown word, an out-of-range size) must not be dropped silently
    h.run_file("send", "send", None, COMMON + SEND_EXTRA,
               offsets_and_modes("send", b"write\nat an offset") + splits("send", "send"),
               SANE, lambda c: b"\0" in c.split(b"\n", 1)[0])
    # a session closed with a request pending forever: the close returns
    check_send_close(tap, d)

    keys = sorted(os.listdir(d + "/config"))
    tap.ok(set(NON_LIVE) | {"overflow", "framing", "payload"} <= set(keys),
           "config/ has every documented key", keys)
    for key in keys:
        path = "config/" + key
        before = ct.read(d + "/" + path, "b")
        if key in NON_LIVE:
            h.run_file(path, "config", key, COMMON + config_extra(key),
                       offsets_and_modes("config") + splits(path, "config"), SANE, nothing,
                       after_apply=None)
            after = ct.read(d + "/" + path, "b")
            tap.is_(after, before, "%s: the value did not change" % path)
        elif key in LIVE_WORDS:
            def must_fail(c, key=key):
                v = c[:-1] if c.endswith(b"\n") else c
                return v.strip(b" \t").decode("latin-1") not in LIVE_WORDS[key]

            def check_word(t, att, results, key=key):
                got = ct.read(d + "/config/" + key, "b")
                last = [c for c, r in zip(att.chunks, results) if r == len(c) and c][-1:]
                if not last:
                    return
                v = last[0][:-1] if last[0].endswith(b"\n") else last[0]
                if got != v.strip(b" \t") + b"\n":
                    t.wrong.append("%s reads %r after %s applied" % (key, got, short(last[0])))
                if key == "overflow" and got != b"block\n":
                    t.changed.append("%s -> overflow %r" % (short(last[0]), got))
                    ct.write(d + "/config/overflow", "block", os.O_WRONLY)

            h.run_file(path, "config", key, COMMON + config_extra(key),
                       offsets_and_modes("config", b" %s\n" % LIVE_WORDS[key][-1].encode()
                                         if key == "framing" else b"block\n") +
                       splits(path, "config"), SANE, must_fail, after_apply=check_word)
            ct.write(d + "/" + path, {"overflow": "block", "framing": "stream"}[key],
                     os.O_WRONLY)
        elif key == "payload":
            # verbatim, only one trailing newline removed; refused only
            # with a NUL byte or over 64 KiB (a control write)
            def must_fail(c):
                return b"\0" in c or len(c) > CTL_MAX

            def check_payload(t, att, results):
                got = ct.read(d + "/config/payload", "b")
                last = [c for c, r in zip(att.chunks, results) if r == len(c) and c][-1:]
                if not last:
                    return
                v = last[0][:-1] if last[0].endswith(b"\n") else last[0]
                if got != v + b"\n":
                    t.wrong.append("payload reads %s after %s" % (short(got), short(last[0])))

            h.run_file(path, "config", key, COMMON + config_extra(key),
                           offsets_and_modes("config", b"at an offset\n") +
                           splits(path, "config"), SANE, must_fail, after_apply=check_payload,
                           must_apply=lambda c: not must_fail(c))
            ct.write(d + "/" + path, "", os.O_WRONLY)
        else:
            h.run_file(path, "config", key, COMMON, offsets_and_modes("config"), SANE,
                       lambda c: False)

    # the end: stop, drain, check the numbers
    r = h.reader
    r.finishing = True
    tap.is_(ct.write(d + "/ctl", "stop-wait", os.O_WRONLY), 0, "stop-wait")
    r.join(ct.T)
    tap.ok(not r.is_alive(), "the records reader got end of file after stop-wait")
    st = ct.stats(d)
    last_seq = st["last_seq"]
    tap.ok(r.count > 0 and r.first == 1 and not r.problems and r.error is None and
           r.seqs_last == r.count,
           "records: SEQ 1..%d complete, no gap, duplicate or reorder, every status ok "
           "(%d records, %d bytes)" % (r.seqs_last, r.count, r.bytes),
           "first %s, count %d, last %d, error %r" % (r.first, r.count, r.seqs_last, r.error),
           *r.problems)
    tap.is_(r.seqs_last, last_seq, "the last SEQ read is stats last_seq")
    tap.is_(r.eofs, 1, "the reader saw one end of file (the final stop), %d restores"
            % h.restores)
    tap.is_(st["failed"], 0, "stats: no failed completion")
    if not r.is_alive():
        os.close(rfd)
    return h


def check_send_close(tap, d):
    fd = os.open(d + "/send", os.O_RDWR)
    try:
        os.write(fd, b"ioctl ioctl=0x%x\n\xff\xff\xff\xff" % SLEEP)  # 49 days
        tap.ok(ct.wait_until(lambda: ct.stats(d)["requests_in_flight"] > 0),
               "send: a request that sleeps forever is pending")
        try:
            ct.read_fd(fd, 4096, limit=0.3)
            tap.fail("send: its reply does not come")
        except TimeoutError:
            tap.pass_("send: its reply does not come (the read blocks)")
    finally:
        t0 = time.monotonic()
        try:
            ct.with_deadline(os.close, fd, limit=LIMIT)
            tap.ok(time.monotonic() - t0 < 2, "send: closing with it pending returns at once "
                   "(%.2f s)" % (time.monotonic() - t0))
        except TimeoutError:
            tap.fail("send: closing with a request pending hangs")
    fd = os.open(d + "/send", os.O_RDWR)
    os.write(fd, b"internal-ioctl ioctl=7\nstill here")
    tap.is_(ct.read_fd(fd, 4096), b"ok 10\nstill here", "send: the next session works")
    ct.with_deadline(os.close, fd, limit=LIMIT)


# ---- names ------------------------------------------------------------------

def names(tap, m):
    root = m.path
    before = sorted(os.listdir(root))

    def mk(name):
        try:
            os.mkdir(os.path.join(root.encode(), name))
            return 0
        except OSError as e:
            return e.errno

    for name, want in ((b"a" * 256, errno.ENAMETOOLONG), (b"b" * 1000, errno.ENAMETOOLONG),
                       (b"c" * 4000, errno.ENAMETOOLONG),
                       ("é".encode() * 128, errno.ENAMETOOLONG)):
        tap.is_(ct.with_deadline(mk, name), want, "mkdir of a %d-byte name: %s"
                % (len(name), ename(want)))
    for name in (b"a" * 255, "é".encode() * 127 + b"a"):
        tap.is_(ct.with_deadline(mk, name), 0, "mkdir of a 255-byte name works")
        p = os.path.join(root.encode(), name)
        tap.ok(os.path.isdir(p) and os.path.exists(os.path.join(p, b"state")),
               "it is a target directory")
        ct.with_deadline(os.rmdir, p)
    for name in (b".", b"..", b"version"):
        r = ct.with_deadline(mk, name)
        tap.ok(r in (errno.EEXIST, errno.EINVAL, errno.ENOENT), "mkdir %r is refused (%s)"
               % (name, ename(r) if r else "succeeded"))
    tap.is_(sorted(os.listdir(root)), before, "nothing was created")


def bad_groups(tap):
    binary = ct.crtfs_binary()
    tmp = tempfile.mkdtemp(prefix="crtfs-test.")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    cases = [("a/b", "a/b"), ("/", "/"), ("..", ".."), (".", "."), ("../escape", "../escape"),
             ("n" * 256, "n" * 256), ("é" * 128, "é" * 128), ("x" * 1000, "x" * 1000)]
    try:
        for group, needle in cases:
            conf = os.path.join(tmp, "bad.conf")
            with open(conf, "w", encoding="utf-8") as f:
                f.write("[%s]\ntarget=sim:zero\n" % group)
            try:
                p = subprocess.run([binary, "-f", "-o", "config=" + conf, mnt],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, timeout=5)
                st, err = p.returncode, p.stderr
            except subprocess.TimeoutExpired as e:
                st, err = "timeout", e.stderr or b""
            mounted = ct.is_mounted(mnt)
            if mounted:
                subprocess.run(["fusermount3", "-u", "-z", mnt])
            desc = "config group [%s]" % (group if len(group) < 20 else
                                          "%s...(%d bytes)" % (group[:8], len(group.encode())))
            tap.ok(st not in (0, "timeout") and not mounted,
                   "%s: the mount fails (exit %s), nothing mounted" % (desc, st))
            probs = ["%s %s" % p for p in error_problems(err.rstrip(b"\n").replace(b"\n", b" "))]
            text = err.decode("utf-8", "replace")
            tap.ok(not probs and needle in text and
                   not ct.BAD_LOG.search(text),
                   "%s: the message is readable and names the group" % desc,
                   "stderr: %r" % text[:300], *probs)
        # 255 bytes is fine
        name = "g" * 255
        with ct.Mount(tap, config="[%s]\ntarget=sim:zero\n" % name) as m2:
            tap.is_(sorted(os.listdir(m2.path)), sorted([name, "metrics", "reload", "version"]),
                    "a 255-byte group name mounts as a directory")
            tap.is_(m2.stop(), 0, "that daemon exits 0")
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def main(tap):
    tap.diag("seed %d (CRT_HOSTILE_SEED=%d replays it), %d random strings per file"
             % (SEED, SEED, N_RANDOM))
    t0 = time.monotonic()
    with ct.Mount(tap) as m:
        names(tap, m)
        h = hostile_writes(tap, m)
        tap.diag("summary (seed %d):" % SEED)
        tot = collections.Counter()
        for t in h.tallies:
            tap.diag(t.summary())
            tot["attempted"] += t.attempted
            tot["applied"] += t.applied
            tot["failed"] += sum(t.errnos.values())
        tap.diag("total: %d writes, %d applied, %d failed; %d records read"
                 % (tot["attempted"], tot["applied"], tot["failed"], h.reader.count))
        tap.ok(m.proc.poll() is None, "the daemon is still running")
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")
    bad_groups(tap)
    tap.diag("run time %.1f s" % (time.monotonic() - t0))


ct.run_tap(main)
