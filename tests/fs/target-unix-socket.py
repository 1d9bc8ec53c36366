#!/usr/bin/env python3
"""Streaming from a unix socket (`unix:PATH`): what the peer sends comes out
of `data`; an `input`-fed write stream reaches the peer; the peer closing
ends the stream (end of file for readers, the reason in state)."""
import os
import socket
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


def main(tap):
    with ct.Mount(tap) as m:
        path = os.path.join(m.tmp, "peer.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(4)
        srv.settimeout(ct.T)

        d = m.mkdir("us")
        tap.is_(ct.write(d + "/target", "unix:" + path), 0, "set unix:" + path)
        peer, _ = srv.accept()
        peer.settimeout(ct.T)
        tap.pass_("the daemon connected")
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")

        fd = os.open(d + "/data", os.O_RDONLY)
        ct.wait_until(lambda: ct.stats(d)["readers"] == 1)
        want = b"".join(b"unix %06d\n" % i for i in range(20000))
        rd = ct.Reader(fd, len(want))
        ct.in_thread(peer.sendall, want)
        got = rd.join_result()
        tap.is_(len(got), len(want), "all %d bytes arrived" % len(want))
        tap.ok(got == want, "in order, unchanged")

        # The peer closes: end of stream.
        peer.close()
        tap.is_(ct.read_fd(fd, 4096), b"", "the peer closing gives readers end of file")
        os.close(fd)
        ct.wait_until(lambda: ct.state(d)[0] == "stopped")
        word, fields = ct.state(d)
        tap.is_(word, "stopped", "the stream stopped")
        tap.like(fields.get("error"), "end of file", "error: says the stream ended")
        tap.is_(ct.stats(d)["failed"], 1, "the end of file completion is counted as failed")

        # A write stream on a new connection: input -> peer.
        tap.is_(ct.write(d + "/config/type", "write"), 0, "type write")
        tap.is_(ct.write(d + "/target", "unix:" + path), 0, "set the target again (reconnect)")
        peer, _ = srv.accept()
        peer.settimeout(ct.T)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start the write stream")
        msgs = [b"cmd %d\n" % i for i in range(50)]
        for msg in msgs:
            if ct.write(d + "/input", msg, os.O_WRONLY) != 0:
                break
        else:
            tap.pass_("50 input writes accepted")
        got = b""
        while len(got) < len(b"".join(msgs)):
            chunk = peer.recv(65536)
            if not chunk:
                break
            got += chunk
        tap.is_(got, b"".join(msgs), "the peer received every input buffer, in order")
        st = ct.stats(d)
        tap.is_(st["bytes_written"], len(got), "stats bytes_written")
        tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")

        # A socket nobody listens on is refused.
        srv.close()
        os.unlink(path)
        tap.ok(ct.write(d + "/target", "unix:" + path) != 0, "a missing socket is refused")
        tap.like(ct.state(d)[1].get("error"), "No such file|refused", "error: says why")
        peer.close()
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
