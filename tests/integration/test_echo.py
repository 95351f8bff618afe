# SPDX-License-Identifier: MIT
"""Echo mode: byte-exact for any payload, many clients at once, half-close."""

import hashlib
import random
import socket
import threading
import time

from harness import Echod, echo_roundtrip, recv_exactly, recv_until_eof

MiB = 1 << 20


def digest(b):
    return hashlib.sha256(b).hexdigest()[:16]


def payloads(seed, n):
    """n payloads from 1 byte to several MiB, with NULs, all 256 byte values
    and every size class in between."""
    rng = random.Random(seed)
    fixed = [b"\0", b"\n", b"\0" * 65536, bytes(range(256)) * 1024,
             b"\r\n\0\xff" * 1000, rng.randbytes(65535), rng.randbytes(65537),
             rng.randbytes(6 * MiB)]
    out = list(fixed)
    while len(out) < n:
        size = int(2 ** rng.uniform(0, 22.5))  # 1 byte .. ~5.6 MiB, log-uniform
        out.append(rng.randbytes(size))
    rng.shuffle(out)
    return out


def test_single_byte_and_nul():
    with Echod() as d:
        for p in (b"x", b"\0", b"\xff\0\0\n"):
            with d.connect() as s:
                assert echo_roundtrip(s, p) == p


def test_binary_payloads_over_50_concurrent_connections():
    data = payloads(seed=862, n=50)
    results = [None] * len(data)
    errors = []
    with Echod({"threads": 2}) as d:
        start = threading.Barrier(len(data))

        def client(i):
            try:
                with d.connect(timeout=60) as s:
                    start.wait(timeout=30)
                    results[i] = echo_roundtrip(s, data[i])
            except Exception as e:  # reported below with the index
                errors.append((i, len(data[i]), repr(e)))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(data))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        bad = [(i, len(p), len(results[i] or b""), digest(p), digest(results[i] or b""))
               for i, p in enumerate(data) if results[i] != p]
        assert not bad, f"(index, sent, received, sha sent, sha received): {bad}"
        assert d.running()
        assert d.stop() == 0


def test_many_small_writes_are_echoed_in_order():
    """Thousands of tiny segments on one connection arrive back in order."""
    rng = random.Random(7)
    pieces = [rng.randbytes(rng.randint(1, 300)) for _ in range(3000)]
    with Echod() as d, d.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = bytearray()

        def reader():
            while len(got) < sum(map(len, pieces)):
                b = s.recv(65536)
                if not b:
                    return
                got.extend(b)

        t = threading.Thread(target=reader)
        t.start()
        for p in pieces:
            s.send(p)
        t.join(timeout=30)
        assert bytes(got) == b"".join(pieces)


def test_half_close_returns_everything_owed_then_eof():
    """The client sends 8 MiB and shuts down its side before reading a byte;
    echod must send every byte back and then close (EOF, not RST)."""
    payload = random.Random(3).randbytes(8 * MiB)
    with Echod() as d, d.connect() as s:
        def sender():
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=sender)
        t.start()
        time.sleep(0.5)  # echod holds a pending reply and stops reading meanwhile
        got = recv_until_eof(s, timeout=60)
        t.join(timeout=30)
        assert len(got) == len(payload)
        assert got == payload


def test_half_close_with_nothing_sent_gets_eof():
    with Echod() as d, d.connect() as s:
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s, timeout=10) == b""


def test_connection_survives_pauses_and_reuse():
    """One connection used for several exchanges, each answered in full."""
    with Echod() as d, d.connect() as s:
        for i in range(20):
            msg = bytes([i]) * (i * 997 + 1)
            s.sendall(msg)
            assert recv_exactly(s, len(msg)) == msg
