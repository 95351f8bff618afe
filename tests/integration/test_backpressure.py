# SPDX-License-Identifier: MIT
"""A client that sends but never reads must not grow echod's memory, and must
not slow the other clients down."""

import random
import socket
import struct
import threading
import time

import pytest

from harness import Echod, built_with_asan, echo_roundtrip, wait_until

MiB = 1 << 20
PUSH = 64 * MiB          # what each hog tries to push while not reading
RSS_BOUND_KIB = 8 * 1024  # allowed RSS growth while the hogs push
HOGS = 4                  # spread over both workers


class Hog:
    """Sends PUSH bytes and never reads. Its small receive buffer means
    echod's replies back up quickly."""

    def __init__(self, d, data):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.connect(("127.0.0.1", d.port))
        self.data = data
        self.sent = 0
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def close(self):
        # Reset, so echod does not spend its shutdown_timeout on a client
        # that is gone; shutdown() also wakes a send() blocked in self.thread.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already disconnected
            pass
        self.thread.join(timeout=10)
        self.sock.close()

    def run(self):
        view = memoryview(self.data)
        try:
            while self.sent < len(self.data):
                self.sent += self.sock.send(view[self.sent:self.sent + 256 * 1024])
        except OSError as e:
            self.error = e


def stalled(hogs, quiet=1.0):
    """True once no hog has made progress for `quiet` seconds."""
    before = [h.sent for h in hogs]
    time.sleep(quiet)
    return [h.sent for h in hogs] == before


@pytest.mark.parametrize("mode", ["echo", "line"])
def test_non_reading_clients_do_not_grow_memory(mode):
    env = {}
    bound = RSS_BOUND_KIB
    if built_with_asan():
        # The sanitizer's quarantine keeps freed buffers resident; without it the
        # remaining overhead is shadow memory, so the bound only doubles.
        env["ASAN_OPTIONS"] = "quarantine_size_mb=0:detect_leaks=0"
        bound *= 2
    rng = random.Random(11)
    if mode == "line":
        line = b"".join(rng.randbytes(200).replace(b"\n", b".") + b"\n" for _ in range(64))
        data = line * (PUSH // len(line) + 1)
    else:
        data = rng.randbytes(4 * MiB) * (PUSH // (4 * MiB))
    with Echod({"mode": mode, "threads": 2, "max_line": 65536}, env=env) as d:
        # Warm up: every worker has served a few MiB, so scratch buffers and
        # thread arenas exist before the baseline is taken.
        for _ in range(8):
            with d.connect() as s:
                assert len(echo_roundtrip(s, rng.randbytes(2 * MiB))) > 0
        base = d.rss_kib()

        hogs = [Hog(d, data) for _ in range(HOGS)]
        wait_until(lambda: stalled(hogs), timeout=60, interval=0,
                   what="the non-reading clients being held back")
        grown = d.rss_kib() - base
        pushed = [h.sent for h in hogs]
        assert all(h.error is None for h in hogs), [h.error for h in hogs]
        assert grown < bound, (f"RSS grew by {grown} KiB (bound {bound} KiB) while "
                               f"{HOGS} clients pushed {pushed} bytes without reading")
        # Had echod kept reading, the hogs would have pushed all of PUSH (the
        # kernel's socket buffers hold far less).
        assert max(pushed) < PUSH, f"echod read everything a non-reading client sent: {pushed}"

        # Meanwhile other clients, on both workers, are served in full.
        others = []
        for i in range(10):
            with d.connect(timeout=10) as s:
                p = rng.randbytes(512 * 1024) if mode == "echo" else b"hi %d\n" % i
                got = echo_roundtrip(s, p, timeout=10)
                want = p if mode == "echo" else b"Received: " + p
                others.append(got == want)
        assert all(others), others
        assert d.rss_kib() - base < bound

        # When a hog finally reads, it gets every byte back, in order.
        h = hogs[0]
        got = bytearray()

        def drain():
            h.sock.settimeout(30)
            while True:
                b = h.sock.recv(1 << 20)
                if not b:
                    return
                got.extend(b)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        h.thread.join(timeout=60)
        assert h.sent == len(data)
        h.sock.shutdown(socket.SHUT_WR)
        reader.join(timeout=60)
        if mode == "echo":
            want = data
        else:  # data is whole lines
            want = b"".join(b"Received: " + l + b"\n" for l in data.split(b"\n")[:-1])
        assert len(got) == len(want) and bytes(got) == want
        for x in hogs:
            x.close()
        assert d.stop() == 0
