#!/usr/bin/env python3
"""The root's `metrics` file: Prometheus text exposition format (0.0.4),
checked by a strict parser (grammar, escapes, HELP and TYPE before the
samples, families contiguous, no duplicate series, counters named *_total),
and its content: one series per target with the target's name as label
(quotes and backslashes escaped), the state one-hot, presence, the `stats`
figures, counters that grow; read-only, and `metrics` is no target name."""
import errno
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
VALUE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|Inf|NaN)")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_labels(text, pos):
    """{...} at pos -> (dict, end).  Raises ValueError."""
    labels = {}
    assert text[pos] == "{"
    pos += 1
    while text[pos] != "}":
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError("bad label name at %d" % pos)
        name = m.group(0)
        pos = m.end()
        if text[pos:pos + 2] != '="':
            raise ValueError("expected =\" after label %s" % name)
        pos += 2
        value = []
        while text[pos] != '"':
            if text[pos] == "\\":
                esc = text[pos + 1]
                if esc not in '\\"n':
                    raise ValueError("bad escape \\%s" % esc)
                value.append({"\\": "\\", '"': '"', "n": "\n"}[esc])
                pos += 2
            elif text[pos] == "\n":
                raise ValueError("newline in a label value")
            else:
                value.append(text[pos])
                pos += 1
        pos += 1
        if name in labels:
            raise ValueError("label %s twice" % name)
        labels[name] = "".join(value)
        if text[pos] == ",":
            pos += 1
        elif text[pos] != "}":
            raise ValueError("expected , or } at %d" % pos)
    return labels, pos + 1


def parse(text):
    """{family: {"type", "help", "samples": [(labels, value)]}}; raises
    ValueError on anything the format does not allow."""
    if text and not text.endswith("\n"):
        raise ValueError("no final newline")
    families = {}
    order = []  # family of each sample line, to check contiguity
    series = set()
    for n, line in enumerate(text.splitlines(), 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 4 or not NAME.fullmatch(parts[2]):
                    raise ValueError(where)
                f = families.setdefault(parts[2], {"samples": []})
                key = parts[1].lower()
                if key in f:
                    raise ValueError("second %s: %s" % (parts[1], where))
                if f["samples"]:
                    raise ValueError("%s after samples: %s" % (parts[1], where))
                if key == "type" and parts[3] not in TYPES:
                    raise ValueError("bad type: " + where)
                if key == "help" and re.search(r"\\[^\\n]", parts[3]):
                    raise ValueError("bad escape in HELP: " + where)
                f[key] = parts[3]
            continue
        m = NAME.match(line)
        if not m:
            raise ValueError("bad metric name: " + where)
        name, pos = m.group(0), m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = parse_labels(line, pos)
        rest = line[pos:].split(" ")
        if len(rest) not in (2, 3) or rest[0] != "" or not VALUE.fullmatch(rest[1]):
            raise ValueError("bad value: " + where)
        if name not in families:
            raise ValueError("sample before HELP/TYPE: " + where)
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ValueError("duplicate series: " + where)
        series.add(key)
        if order and order[-1] != name and name in order:
            raise ValueError("family %s not contiguous: %s" % (name, where))
        order.append(name)
        families[name]["samples"].append((labels, float(rest[1])))
    return families


def parsed(tap, text, when):
    """The families of `text`, with a TAP line saying whether it parses;
    None when it does not."""
    try:
        fams = parse(text)
    except ValueError as e:
        tap.fail(when + ": the format parses", str(e))
        return None
    tap.pass_(when + ": the format parses")
    return fams


def by_target(fam):
    return {l["target"]: v for l, v in fam["samples"] if "state" not in l}


def main(tap):
    with ct.Mount(tap) as m:
        root = m.path
        fams = parsed(tap, ct.read(root + "/metrics"), "empty mount") or {}
        tap.is_([v for _, v in fams.get("crtfs_targets", {}).get("samples", [])], [0.0],
                "crtfs_targets 0")
        names = ["a", 'we"ird', "back\\slash", "b"]
        for n in names:
            os.mkdir(os.path.join(root, n))
        a = os.path.join(root, "a")
        # drop-oldest: with nobody reading, the stream never pauses, so the
        # counters keep growing
        tap.is_(ct.write(a + "/config/overflow", "drop-oldest"), 0, "a: drop-oldest")
        tap.is_(ct.write(a + "/target", "sim:records rate=500"), 0, "a: sim target")
        tap.is_(ct.write(a + "/ctl", "start"), 0, "a: start")
        tap.is_(ct.write(os.path.join(root, "b", "target"), os.path.join(m.tmp, "none wait")), 0,
                "b: an absent wait target")
        ct.wait_until(lambda: ct.stats(a)["completed"] > 10)
        text = ct.read(root + "/metrics")
        fams = parsed(tap, text, "four targets")
        if fams is None:
            return
        tap.ok(all("help" in f and "type" in f for f in fams.values()),
               "every family has HELP and TYPE")
        tap.ok(all(n.endswith("_total") == (f["type"] == "counter") for n, f in fams.items()),
               "counters, and only counters, end in _total")
        tap.is_(fams["crtfs_targets"]["samples"][0][1], 4.0, "crtfs_targets 4")
        for h in ("crtfs_heap_allocated_bytes", "crtfs_heap_free_bytes"):
            f = fams.get(h, {})
            tap.ok(f.get("type") == "gauge" and len(f.get("samples", [])) == 1 and
                   f["samples"][0][0] == {} and f["samples"][0][1] >= 0, h + ": one gauge", f)
        state = fams["crtfs_state"]["samples"]
        tap.is_(sorted({l["target"] for l, _ in state}), sorted(names),
                "every target, its name as the label (quote and backslash round-trip)")
        per = {}
        for l, v in state:
            per.setdefault(l["target"], {})[l["state"]] = v
        tap.ok(all(sorted(s) == ["stopped", "stopping", "streaming", "suspended"] and
                   sum(s.values()) == 1 for s in per.values()),
               "crtfs_state: four states per target, exactly one is 1", per)
        tap.is_(per["a"]["streaming"], 1.0, "a is streaming")
        tap.is_(per["b"]["stopped"], 1.0, "b is stopped")
        present = by_target(fams["crtfs_present"])
        tap.is_((present["a"], present["b"], present["we\"ird"]), (1.0, 0.0, 0.0),
                "crtfs_present: a there, b (wait, absent) not, no target not")
        stats = ct.stats(a)
        for key in ("completed", "failed", "bytes_read", "buffers_dropped"):
            tap.ok("crtfs_%s_total" % key in fams, "crtfs_%s_total is there" % key)
        for key in ("requests_in_flight", "out_pool_size", "readers"):
            tap.is_(by_target(fams["crtfs_" + key])["a"], float(stats[key]),
                    "crtfs_%s matches stats" % key)
        before = by_target(fams["crtfs_completed_total"])["a"]
        ct.wait_until(lambda: ct.stats(a)["completed"] > before + 10)
        after = by_target(parse(ct.read(root + "/metrics"))["crtfs_completed_total"])["a"]
        tap.ok(after > before, "the counter grows (%d -> %d)" % (before, after))
        promtool = os.environ.get("PROMTOOL")
        if promtool:
            r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=ct.T)
            tap.is_(r.returncode, 0, "promtool check metrics: clean " +
                    r.stdout.decode() + r.stderr.decode())

        # a file of the root, not a target
        try:
            os.close(os.open(root + "/metrics", os.O_WRONLY))
            tap.fail("metrics is read-only")
        except OSError as e:
            tap.is_(e.errno, errno.EACCES, "metrics is read-only: EACCES")
        try:
            os.mkdir(os.path.join(root, "metrics"))
            tap.fail("mkdir metrics is refused")
        except OSError as e:
            tap.is_(e.errno, errno.EEXIST, "mkdir metrics: EEXIST")
        tap.ok("metrics" in os.listdir(root), "metrics is listed")

        # A directory removed while a reader has a file open is held by that
        # file, and let go once it is closed, even though the kernel had
        # looked up its names (it is told they are gone).
        def removed():
            return parse(ct.read(root + "/metrics"))["crtfs_removed_targets"]["samples"][0][1]
        tap.is_(removed(), 0.0, "crtfs_removed_targets 0 before")
        r = os.path.join(root, "r")
        held = []
        for i in range(20):
            os.mkdir(r)
            ct.write(r + "/target", "sim:records rate=200")
            ct.write(r + "/ctl", "start")
            fd = os.open(r + "/records", os.O_RDONLY)
            ct.read(r + "/state")
            ct.read(r + "/config/out_size")
            ct.read_fd(fd, 4096)
            os.rmdir(r)
            held.append(fd)
        tap.is_(removed(), 20.0, "20 removed directories held by their open readers")
        for fd in held:
            ct.read_all_fd(fd)
            os.close(fd)
        ct.wait_until(lambda: removed() == 0.0, limit=ct.T)
        tap.is_(removed(), 0.0, "all let go once their readers closed")
        tap.is_(ct.write(a + "/ctl", "stop-wait"), 0, "stop-wait")
        tap.is_(m.stop(), 0, "daemon exits 0")

    # the configuration file cannot name a target `metrics`
    tmp = os.path.join("/tmp", "crtfs-metrics-%d" % os.getpid())
    os.makedirs(os.path.join(tmp, "mnt"), exist_ok=True)
    conf = os.path.join(tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write("[metrics]\ntarget=sim:\n")
    try:
        r = subprocess.run([ct.crtfs_binary(), "-f", "-o", "config=" + conf,
                            os.path.join(tmp, "mnt")], capture_output=True, timeout=ct.T)
        tap.ok(r.returncode != 0, "a [metrics] group fails the mount (exit %d)" % r.returncode)
        tap.like(r.stderr.decode(), "not a valid target name", "and says why")
    finally:
        subprocess.run(["fusermount3", "-uz", os.path.join(tmp, "mnt")],
                       stderr=subprocess.DEVNULL)
        os.unlink(conf)
        os.rmdir(os.path.join(tmp, "mnt"))
        os.rmdir(tmp)


ct.run_tap(main)
