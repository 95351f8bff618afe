# SPDX-License-Identifier: MIT
"""Fault (c): clients that flood and never read, next to well-behaved
clients. echod stops reading a connection while its reply is pending, so a
flooder meets TCP backpressure: echod's memory stays bounded (64 KiB pending
per connection in echo mode, about 2 x 64 KiB + 2 lines in line mode; see
daemon/conn.h), the others are served promptly, and when a flooder finally
reads it gets back every byte echod accepted from it, in order."""

import selectors
import socket
import time

import pytest

from faultlib import (PREFIX, Echod, Traffic, assert_fds_back, assert_rss_within,
                      quiet_fd_count, stats, warm_up)

FLOODERS = 8
FLOOD_S = 3.0
RSS_BOUND_KIB = 8 * 1024   # 8 flooders x (64 KiB .. ~200 KiB) plus slack
MAX_RTT_S = 2.0   # generous: the CI machine has 2 cores shared with other suites

LINE = b"f" * 99 + b"\n"
REPLY = PREFIX + LINE[:-1] + b"\n"
_BASE = bytes((k * 7 + 3) % 251 for k in range(251))


class Stream:
    """The bytes a flooder sends: echo mode a pattern with period 251 (so a
    lost or repeated chunk shifts it); line mode identical 100-byte lines."""

    def __init__(self, mode):
        self.mode = mode
        unit = _BASE if mode == "echo" else LINE
        self.block = unit * (200000 // len(unit) + 2)
        self.period = len(unit)
        answer = _BASE if mode == "echo" else REPLY
        self.answer_block = answer * (200000 // len(answer) + 2)
        self.answer_period = len(answer)

    def chunk(self, offset, n):
        o = offset % self.period
        return self.block[o:o + n]

    def expected(self, offset, n):
        o = offset % self.answer_period
        return self.answer_block[o:o + n]

    def whole_len(self, sent):
        """How much of the answer follows the repeating pattern."""
        return sent if self.mode == "echo" else sent // len(LINE) * len(REPLY)

    def tail(self, sent):
        """Line mode: an unfinished last line is answered at EOF with its own "\n"."""
        rem = sent % len(LINE) if self.mode == "line" else 0
        return PREFIX + LINE[:rem] + b"\n" if rem else b""


class Flooder:
    def __init__(self, d, stream):
        self.s = d.connect()
        self.s.setblocking(False)
        self.stream = stream
        self.sent = 0
        self.received = 0
        self.tail = bytearray()
        self.error = None

    def flood(self):
        """Sends until the kernel says stop. Returns bytes sent now."""
        n0 = self.sent
        while True:
            try:
                n = self.s.send(self.stream.chunk(self.sent, 65536))
            except BlockingIOError:
                break
            self.sent += n
        return self.sent - n0

    def on_readable(self):
        try:
            b = self.s.recv(65536)
        except BlockingIOError:
            return True
        if not b:
            return False
        whole = self.stream.whole_len(self.sent)  # sent no longer changes: we half-closed
        n = max(0, min(len(b), whole - self.received))
        if b[:n] != self.stream.expected(self.received, n):
            self.error = f"wrong bytes at offset {self.received}"
        self.tail += b[n:]
        self.received += len(b)
        return True


@pytest.mark.parametrize("mode", ["echo", "line"])
def test_flooders_that_never_read(mode):
    with Echod({"threads": 2, "mode": mode}) as d:
        warm_up(d, mode=mode, size=4000)
        fds0 = quiet_fd_count(d)
        rss0 = d.rss_kib()
        stream = Stream(mode)
        with Traffic(d, clients=4, mode=mode, size=1000, pause=0.02) as t:
            flooders = [Flooder(d, stream) for _ in range(FLOODERS)]
            peak = rss0
            deadline = time.monotonic() + FLOOD_S
            stalled_at = None
            while time.monotonic() < deadline:
                moved = sum(f.flood() for f in flooders)
                peak = max(peak, d.rss_kib())
                if moved == 0 and stalled_at is None:
                    stalled_at = time.monotonic()
                time.sleep(0.05)
            assert d.running(), f"echod died:\n{d.log()}"
            sent = sum(f.sent for f in flooders)
            st = stats(d)
            # echod stopped reading: the flood is held back by TCP, not in echod's memory.
            # What it read but has not sent is what it holds (conn.h: 64 KiB per
            # connection in echo mode; input + partial line + replies in line mode).
            held = st["bytes_received"] - st["bytes_sent"]
            per_conn = 64 * 1024 if mode == "echo" else 3 * 64 * 1024
            assert held <= FLOODERS * per_conn + 64 * 1024, (
                f"echod read {held} bytes more than it sent with {FLOODERS} flooders "
                f"(bound {per_conn} per connection)")
            print(f"\nflood ({mode}): {FLOODERS} flooders pushed {sent >> 20} MiB in "
                  f"{FLOOD_S} s (blocked after {(stalled_at or deadline) - deadline + FLOOD_S:.1f}"
                  f" s); echod read {st['bytes_received'] >> 20} MiB; peak RSS "
                  f"+{peak - rss0} KiB")
            assert peak - rss0 <= RSS_BOUND_KIB, (
                f"RSS grew by {peak - rss0} KiB with {FLOODERS} non-reading flooders "
                f"(bound {RSS_BOUND_KIB} KiB)")
            rtt_flood = t.max_rtt
            # The flooders finally read: everything echod accepted comes back, in order.
            sel = selectors.DefaultSelector()
            for f in flooders:
                f.s.shutdown(socket.SHUT_WR)
                sel.register(f.s, selectors.EVENT_READ, f)
            open_ = len(flooders)
            deadline = time.monotonic() + 60
            while open_ and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    if not key.data.on_readable():
                        sel.unregister(key.fileobj)
                        open_ -= 1
            for f in flooders:
                f.s.close()
            assert open_ == 0, f"{open_} flooders got no EOF within 60 s"
            for i, f in enumerate(flooders):
                assert f.error is None, f"flooder {i}: {f.error}"
                want = stream.whole_len(f.sent) + len(stream.tail(f.sent))
                assert f.received == want, (
                    f"flooder {i}: sent {f.sent} bytes, got {f.received} back "
                    f"(expected {want})")
                assert bytes(f.tail) == stream.tail(f.sent), f"flooder {i}: wrong last line"
        print(f"flood ({mode}): well-behaved max round trip {rtt_flood * 1000:.1f} ms while "
              f"flooding, {t.max_rtt * 1000:.1f} ms overall ({t.roundtrips} round trips)")
        t.check(max_rtt=MAX_RTT_S, what=f"well-behaved {mode} clients next to flooders")
        assert_fds_back(d, fds0)
        assert_rss_within(d, rss0, RSS_BOUND_KIB, f"after the flood ({mode})")
