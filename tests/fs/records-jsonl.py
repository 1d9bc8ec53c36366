#!/usr/bin/env python3
"""records.jsonl, the stream as one JSON object per entry: under load
(sim:records as fast as read, sim:counter's binary bytes, sim:zero's
64 KiB buffers of NUL) every line parses with Python's json and with jq,
seq runs from 1 without a gap under overflow=block, length is the decoded
payload's, text/base64 decode to exactly the bytes a concurrent `data`
reader got, mono_ns never decreases, time is RFC 3339 UTC and the same
instant `records` shows; record framing hands out one line per read; bytes
that need escaping, invalid and multibyte UTF-8 through a FIFO; losses and
returns of a `wait` FIFO and line events of sim:uart as entries of length 0
with the status words of `records`; drop-oldest gaps as in `records`;
bash `read` and `{ head; cat; }` seeking back; readers_jsonl and
jsonl_bytes in stats and metrics."""
import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

KEYS = ["seq", "time", "mono_ns", "status", "length"]
TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z$")


class Reader(threading.Thread):
    """Reads a stream file until end of file; keeps the bytes and the size
    of every read."""

    def __init__(self, path, size=1 << 16):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY)
        self.size = size
        self.blob = bytearray()
        self.reads = []
        self.error = None

    def run(self):
        try:
            while True:
                b = os.read(self.fd, self.size)
                if not b:
                    return
                self.blob += b
                self.reads.append(bytes(b))
        except OSError as e:
            self.error = e

    def finish(self):
        self.join(ct.T)
        os.close(self.fd)
        return not self.is_alive() and self.error is None


def time_ns_of(text):
    """The CLOCK_REALTIME nanoseconds of an RFC 3339 time as crtfs writes it."""
    m = TIME.match(text)
    if not m:
        raise ValueError("not RFC 3339 UTC with nanoseconds: %r" % text)
    day = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(day.timestamp()) * 10 ** 9 + int(m.group(2))


def payload_of(obj):
    """The bytes an object carries, or None without a payload key."""
    if "text" in obj:
        return obj["text"].encode("utf-8")
    if "base64" in obj:
        return base64.b64decode(obj["base64"], validate=True)
    return None


def check_lines(blob):
    """Parse every line with json.loads and check each object's form; the
    objects, or raises with what is wrong."""
    if blob and not blob.endswith(b"\n"):
        raise ValueError("the stream does not end with a whole line")
    objs = []
    for i, line in enumerate(blob.split(b"\n")[:-1]):
        obj = json.loads(line.decode("utf-8"))  # strict: a line must be UTF-8
        keys = list(obj)
        if keys[:5] != KEYS or len(keys) > 6 or (len(keys) == 6 and
                                                 keys[5] not in ("text", "base64")):
            raise ValueError("line %d has keys %s" % (i, keys))
        data = payload_of(obj)
        if (data is None) != (obj["length"] == 0) or (data is not None and
                                                       len(data) != obj["length"]):
            raise ValueError("line %d: length %d, payload %r" % (i, obj["length"], data))
        if "base64" in obj:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                raise ValueError("line %d: valid UTF-8 sent as base64" % i)
        time_ns_of(obj["time"])
        objs.append(obj)
    return objs


def jq_lines(tap, blob, what):
    """Every line through `jq -c .`: as many lines out, each the same object
    Python read."""
    p = subprocess.run(["timeout", "-k", "2", str(int(ct.T) * 3), "jq", "-c", "."],
                       input=bytes(blob), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ours = blob.split(b"\n")[:-1]
    theirs = p.stdout.split(b"\n")[:-1]
    tap.ok(p.returncode == 0 and len(theirs) == len(ours),
           "%s: jq -c . parses all %d lines" % (what, len(ours)),
           "jq exit %d, %d lines: %s" % (p.returncode, len(theirs), p.stderr[:300]))
    same = all(json.loads(a) == json.loads(b) for a, b in zip(ours, theirs))
    tap.ok(same, "%s: jq reads the same objects as Python" % what)


def check_stream(tap, objs, data, what):
    """seq from 1 without a gap, mono_ns never decreasing, the payloads
    the bytes of `data`."""
    seqs = [o["seq"] for o in objs]
    tap.ok(seqs == list(range(1, len(objs) + 1)),
           "%s: seq 1..%d without a gap (overflow=block)" % (what, len(objs)),
           [s for a, s in zip(range(1, len(seqs) + 1), seqs) if a != s][:5])
    mono = [o["mono_ns"] for o in objs]
    tap.ok(all(a <= b for a, b in zip(mono, mono[1:])), "%s: mono_ns never decreases" % what)
    joined = b"".join(payload_of(o) or b"" for o in objs)
    tap.ok(joined == data, "%s: text/base64 decode to exactly the bytes of data "
           "(%d bytes)" % (what, len(data)),
           "jsonl %d bytes, data %d bytes" % (len(joined), len(data)))


def under_load(tap, m, name, spec, entries, config=(), read_size=1 << 16):
    """A jsonl and a data reader open before the start, the stream stopped
    after `entries`; both read to the end of file."""
    d = m.mkdir(name)
    refused = ct.configure(d, spec, config)
    tap.ok(not refused, "%s: set up" % name, ct.describe_refusals(refused))
    jr = Reader(d + "/records.jsonl", read_size)
    dr = Reader(d + "/data")
    jr.start()
    dr.start()
    tap.is_(ct.stats(d)["readers_jsonl"], 1, "%s: readers_jsonl counts the open jsonl" % name)
    t0 = time.time_ns()
    tap.is_(ct.write(d + "/ctl", "start"), 0, "%s: start" % name)
    ct.wait_until(lambda: jr.blob.count(b"\n") >= entries, limit=ct.T * 3)
    tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "%s: stop" % name)
    t1 = time.time_ns()
    tap.ok(jr.finish() and dr.finish(), "%s: both readers get end of file" % name,
           jr.error, dr.error)
    objs = []
    try:
        objs = check_lines(bytes(jr.blob))
        tap.pass_("%s: json.loads parses every one of %d lines" % (name, len(objs)))
    except ValueError as e:
        tap.fail("%s: json.loads parses every line" % name, str(e))
    tap.ok(len(objs) >= entries, "%s: at least %d entries" % (name, entries), len(objs))
    jq_lines(tap, jr.blob, name)
    check_stream(tap, objs, bytes(dr.blob), name)
    tap.ok(all(t0 - 10 ** 9 <= time_ns_of(o["time"]) <= t1 for o in objs),
           "%s: every time lies within the run" % name)
    st = ct.stats(d)
    tap.is_(st["jsonl_bytes"], len(jr.blob), "%s: jsonl_bytes is what the reader got" % name)
    tap.is_(st["readers_jsonl"], 0, "%s: readers_jsonl 0 once closed" % name)
    return d, jr, objs


def load(tap, m):
    d, jr, objs = under_load(tap, m, "records", "sim:records rate=0", 20000,
                             config=[("framing", "stream"), ("out_size", "256")])
    tap.ok(all("text" in o for o in objs), "sim:records: every entry is text")
    tap.ok(max(len(r) for r in jr.reads) > 4096, "stream framing packs many lines a read")
    # jq -j prints the texts as they were: the bytes of data.
    p = subprocess.run(["timeout", "-k", "2", str(int(ct.T)), "jq", "-j", ".text"],
                       input=bytes(jr.blob), stdout=subprocess.PIPE)
    tap.ok(p.returncode == 0 and p.stdout == b"".join(payload_of(o) for o in objs),
           "jq -j .text gives back the records' bytes")
    metrics = ct.read(m.path + "/metrics")
    tap.like(metrics, r'(?m)^crtfs_jsonl_bytes_total\{target="records"\} %d$' % len(jr.blob),
             "metrics: crtfs_jsonl_bytes_total")
    tap.like(metrics, r'(?m)^crtfs_readers_jsonl\{target="records"\} 0$',
             "metrics: crtfs_readers_jsonl")

    # 64-byte buffers: the first 16 hold counters below 128 (text with
    # \u0000), the others a byte of 128 or more (base64).
    _, jr, objs = under_load(tap, m, "counter", "sim:counter", 5000,
                             config=[("out_size", "64")])
    kinds = {k for o in objs for k in ("text", "base64") if k in o}
    tap.is_(sorted(kinds), ["base64", "text"],
            "sim:counter: both text (counters below 128) and base64")
    # framing=record (the default): one line per read, never two.
    tap.ok(all(r.endswith(b"\n") and r.count(b"\n") == 1 for r in jr.reads),
           "record framing: every read is one whole line",
           [r[:80] for r in jr.reads if r.count(b"\n") != 1][:3])

    # Lines larger than a read (64 KiB of NUL: 384 KiB of \u0000) come in
    # pieces under record framing, the rest of a line before the next.
    _, jr, objs = under_load(tap, m, "zero", "sim:zero", 20,
                             config=[("out_size", "65536")], read_size=50000)
    tap.ok(all(o.get("text") == "\0" * 65536 for o in objs),
           "sim:zero: 64 KiB of NUL as text, \\u0000 each")
    tap.ok(all(len(r) <= 50000 for r in jr.reads) and len(jr.reads) > len(objs),
           "a line longer than the read comes in pieces")


def escapes(tap, m):
    """Bytes through a FIFO, one write one entry; then the FIFO goes and
    comes back: ENOENT and EISCONN entries in jsonl and in records alike."""
    d = m.mkdir("fifo")
    fifo = os.path.join(m.tmp, "fifo")
    os.mkfifo(fifo)
    tap.is_(ct.write(d + "/target", fifo + " wait"), 0, "a FIFO with wait")
    jr = Reader(d + "/records.jsonl")
    rr = Reader(d + "/records")
    jr.start()
    rr.start()
    tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
    w = ct.with_deadline(os.open, fifo, os.O_WRONLY)
    chunks = [b'a\x00b\x1f"\\\x7fz', b"\xff\xfe\x00", "grüß € 😀".encode(), b"\n\t\r",
              b"ab\xe2\x82"]
    for i, c in enumerate(chunks):
        os.write(w, c)
        ct.wait_until(lambda: jr.blob.count(b"\n") > i)
    os.close(w)
    os.unlink(fifo)
    ct.wait_until(lambda: b'"ENOENT"' in jr.blob)
    os.mkfifo(fifo)
    w = ct.with_deadline(os.open, fifo, os.O_WRONLY)
    ct.wait_until(lambda: b'"EISCONN"' in jr.blob)
    os.write(w, b"back")
    ct.wait_until(lambda: b'"text":"back"' in jr.blob)
    os.close(w)
    tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop")
    tap.ok(jr.finish() and rr.finish(), "both readers end")
    lines = bytes(jr.blob).split(b"\n")[:-1]
    raw = next((l for l in lines if rb'"text":"a\u0000b' in l), b"")
    for esc in (rb"\u0000", rb"\u001f", rb"\"", rb"\\", rb"\u007f"):
        tap.ok(esc in raw, "NUL, 0x1f, quote, backslash, DEL: %s in the line" % esc.decode(),
               raw)
    tap.ok(b"\x00" not in jr.blob and b"\x7f" not in jr.blob and
           not re.search(rb"[\x00-\x09\x0b-\x1f]", bytes(jr.blob)),
           "no raw control byte anywhere but the newlines")
    try:
        objs = check_lines(bytes(jr.blob))
        tap.pass_("json.loads parses every line")
    except ValueError as e:
        tap.fail("json.loads parses every line", str(e))
        return
    jq_lines(tap, jr.blob, "fifo")
    data = [o for o in objs if o["length"] > 0]
    tap.is_([payload_of(o) for o in data[:len(chunks)]], chunks,
            "each write decodes back to exactly its bytes")
    tap.is_(["text" if "text" in o else "base64" for o in data[:len(chunks)]],
            ["text", "base64", "text", "text", "base64"],
            "invalid UTF-8 (0xff, a cut sequence) as base64, the rest as text")
    tap.ok(any("grüß € 😀".encode() in l for l in lines),
           "multibyte UTF-8 as it is, not \\u escapes")
    markers = [o for o in objs if o["length"] == 0]
    tap.ok(any(o["status"] == "ENOENT" for o in markers) and
           any(o["status"] == "EISCONN" for o in markers),
           "the loss and the return are entries of length 0",
           [o["status"] for o in markers])
    tap.ok(all(set(o) == set(KEYS) for o in markers), "markers have no payload key")
    recs = ct.parse_records(bytes(rr.blob))
    tap.is_([(o["seq"], o["status"], o["length"], time_ns_of(o["time"])) for o in objs],
            [(s, st, len(p), t) for s, t, st, p in recs],
            "seq, status, length and time as records shows them, entry for entry")


def line_events(tap, m):
    d = m.mkdir("uart")
    refused = ct.configure(d, "sim:uart")
    tap.ok(not refused, "sim:uart set up", ct.describe_refusals(refused))
    jr = Reader(d + "/records.jsonl")
    rr = Reader(d + "/records")
    jr.start()
    rr.start()
    tap.is_(ct.write(d + "/ctl", "start"), 0, "uart: start")
    tap.is_(ct.write(d + "/lines", "inject=framing*3 inject=break rts=0 rts=1"), 0,
            "uart: inject errors, a break, RTS (looped to CTS) down and up")
    ct.wait_until(lambda: jr.blob.count(b'"line:') >= 4)
    tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "uart: stop")
    tap.ok(jr.finish() and rr.finish(), "uart: both readers end")
    objs = check_lines(bytes(jr.blob))
    events = [o for o in objs if o["status"].startswith("line:")]
    tap.ok(len(events) >= 4 and all(o["length"] == 0 and set(o) == set(KEYS)
                                    for o in events),
           "line events: length 0, no payload key", [o["status"] for o in events])
    tap.ok(any(o["status"] == "line:cts=0" for o in events), "line:cts=0 among them",
           [o["status"] for o in events])
    recs = ct.parse_records(bytes(rr.blob))
    tap.is_([(o["seq"], o["status"]) for o in objs], [(s, st) for s, _, st, _ in recs],
            "uart: the same entries and words as records")
    # The man page's filter for what is not data.
    p = subprocess.run(["timeout", "-k", "2", str(int(ct.T)), "jq", "-c",
                        'select(.status != "ok")'], input=bytes(jr.blob),
                       stdout=subprocess.PIPE)
    picked = [json.loads(l) for l in p.stdout.split(b"\n")[:-1]]
    tap.is_(picked, [o for o in objs if o["status"] != "ok"],
            "jq -c 'select(.status != \"ok\")' picks the events")


def drops(tap, m):
    """Two readers that stall, one of records, one of records.jsonl, while
    data is read on: both lose the same entries (drop-oldest), shown as
    the same gaps of seq."""
    d = m.mkdir("drops")
    refused = ct.configure(d, "sim:records rate=0", [("overflow", "drop-oldest")])
    tap.ok(not refused, "drop-oldest set up", ct.describe_refusals(refused))
    jfd = os.open(d + "/records.jsonl", os.O_RDONLY)
    rfd = os.open(d + "/records", os.O_RDONLY)
    dr = Reader(d + "/data")
    dr.start()
    tap.is_(ct.write(d + "/ctl", "start"), 0, "drops: start")
    ct.wait_until(lambda: ct.stats(d)["buffers_dropped"] > 1000)
    tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "drops: stop")
    dr.finish()
    jblob = ct.read_all_fd(jfd)
    rblob = ct.read_all_fd(rfd)
    os.close(jfd)
    os.close(rfd)
    objs = check_lines(jblob)
    seqs = [o["seq"] for o in objs]
    rseqs = [s for s, _, _, _ in ct.parse_records(rblob)]
    tap.ok(all(a < b for a, b in zip(seqs, seqs[1:])), "drops: seq strictly increasing")
    last = ct.stats(d)["last_seq"]
    tap.ok(len(seqs) < last, "drops: the stalled jsonl reader lost entries (gaps)",
           "%d of %d" % (len(seqs), last))
    tap.is_(seqs, rseqs, "drops: the same gaps as records")


def seeking(tap, m):
    """bash's read (a block, then a seek back) and { head -n 3; cat; }:
    every line once, whole."""
    d = m.mkdir("seek")
    refused = ct.configure(d, "sim:records limit=200 rate=0", start=True)
    tap.ok(not refused, "seek: set up", ct.describe_refusals(refused))
    p = subprocess.run(["timeout", "-k", "2", str(int(ct.T)), "bash", "-c",
                        'while IFS= read -r l; do printf "%s\\n" "$l"; done < "$1"',
                        "sh", d + "/records.jsonl"], stdout=subprocess.PIPE)
    # 200 reads, then the end of the stream (ENODATA): 201 entries.
    objs = check_lines(p.stdout)
    tap.is_([o["seq"] for o in objs], list(range(1, 202)),
            "bash read loop: 201 whole lines, each once")
    tap.is_([o["status"] for o in objs[-1:]], ["ENODATA"], "the last one the end, ENODATA")
    tap.is_(ct.write(d + "/ctl", "start"), 0, "seek: start again")
    p = subprocess.run(["timeout", "-k", "2", str(int(ct.T)), "bash", "-c",
                        '{ head -n 3; cat; } < "$1"', "sh", d + "/records.jsonl"],
                       stdout=subprocess.PIPE)
    objs = check_lines(p.stdout)
    tap.is_([o["seq"] for o in objs], list(range(202, 403)),
            "{ head -n 3; cat; }: the next 201 lines, each once")


def main(tap):
    with ct.Mount(tap) as m:
        load(tap, m)
        escapes(tap, m)
        line_events(tap, m)
        drops(tap, m)
        seeking(tap, m)


ct.run_tap(main)
