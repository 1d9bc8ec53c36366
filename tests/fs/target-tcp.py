#!/usr/bin/env python3
"""Streaming from a TCP socket on 127.0.0.1 (`tcp:127.0.0.1:PORT`): the
server's bytes come out of `data` to two readers; an internal-ioctl `send`
is a transaction (write, then one response); a closed port is refused."""
import os
import socket
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crtfs_harness as ct


def main(tap):
    with ct.Mount(tap) as m:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.settimeout(ct.T)
        port = srv.getsockname()[1]

        d = m.mkdir("tcp")
        spec = "tcp:127.0.0.1:%d" % port
        tap.is_(ct.write(d + "/target", spec), 0, "set " + spec)
        peer, _ = srv.accept()
        peer.settimeout(ct.T)
        tap.is_(ct.write(d + "/ctl", "start"), 0, "start")
        fds = [os.open(d + "/data", os.O_RDONLY) for _ in range(2)]
        ct.wait_until(lambda: ct.stats(d)["readers"] == 2)
        want = os.urandom(1 << 20)
        readers = [ct.Reader(fd, len(want)) for fd in fds]
        ct.in_thread(peer.sendall, want)
        for i, rd in enumerate(readers):
            got = rd.join_result()
            tap.ok(got == want, "reader %d got the 1 MiB the server sent, in order" % (i + 1),
                   "got %d bytes" % len(got))
        tap.is_(ct.write(d + "/ctl", "stop-wait"), 0, "stop-wait")
        for fd in fds:
            tap.is_(ct.read_fd(fd, 4096), b"", "end of file after stop")
            os.close(fd)

        # A transaction through send: internal-ioctl writes the payload and
        # returns the one response the server sends back.
        sfd = os.open(d + "/send", os.O_RDWR)
        os.write(sfd, b"internal-ioctl ioctl=7 size=64\n*IDN?\n")
        q = peer.recv(64)
        tap.is_(q, b"*IDN?\n", "the server received the request payload")
        peer.sendall(b"crtfs test server\n")
        rep = ct.read_fd(sfd, 4096)
        tap.is_(rep, b"ok 18\ncrtfs test server\n", "send returned the response")
        os.close(sfd)

        peer.close()
        srv.close()
        tap.is_(ct.write(d + "/target", "\n"), 0, "clear")
        tap.ok(ct.write(d + "/target", spec) != 0, "a closed port is refused")
        tap.like(ct.state(d)[1].get("error"), "refused", "error: connection refused")
        tap.is_(m.stop(), 0, "daemon exits 0 on SIGTERM")


ct.run_tap(main)
