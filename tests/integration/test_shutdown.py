# SPDX-License-Identifier: MIT
"""SIGTERM/SIGINT: stop accepting, answer what was read, half-close, exit 0;
shutdown_timeout bounds the wait."""

import random
import signal
import socket
import time

import pytest

from harness import Echod, recv_exactly, recv_until_eof, tcp_queues, wait_until

MiB = 1 << 20


def stuff_non_reading_client(d, total=64 * MiB):
    """Connects a client with a small receive buffer that sends without
    reading until nothing more goes out. Returns (sock, data, sent).
    total is well above what the kernel's socket buffers can hold (echod's
    receive buffer may have grown to tens of MiB while it was reading)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.connect(("127.0.0.1", d.port))
    s.setblocking(False)
    data = random.Random(5).randbytes(8 * MiB) * (total // (8 * MiB))
    view = memoryview(data)
    sent = 0
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 0.5 and sent < total:
        try:
            sent += s.send(view[sent:sent + 65536])
            quiet_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.02)
    assert sent < total, "echod read all the input of a client that does not read"
    return s, data[:sent], sent


def unread_by_echod(d, s):
    """Bytes the client sent that echod has not read: still in the client's
    send queue plus waiting in echod's receive queue. Polled until stable."""
    lport = s.getsockname()[1]

    def sample():
        client_tx, _ = tcp_queues(lport, d.port)
        _, echod_rx = tcp_queues(d.port, lport)
        return client_tx + echod_rx

    prev = None
    while True:
        cur = sample()
        if cur == prev:
            return cur
        prev = cur
        time.sleep(0.1)


def connection_refused_or_unserved(d):
    """A new client after SIGTERM must not be served: connect is refused, or
    the connection is closed/reset without echoing."""
    try:
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    except ConnectionRefusedError:
        return "refused"
    with s:
        try:
            s.sendall(b"hello?")
            s.settimeout(5)
            got = s.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except socket.timeout:
            return "unserved (connected, no answer in 5 s)"
        return "closed" if got == b"" else f"served: {got!r}"


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT])
def test_drain_delivers_everything_read(signo):
    with Echod({"shutdown_timeout": 60}) as d:
        s, data, sent = stuff_non_reading_client(d)
        other = d.connect()
        other.sendall(b"abc")
        assert recv_exactly(other, 3) == b"abc"
        unread = unread_by_echod(d, s)
        owed = sent - unread
        assert owed > 0

        d.signal(signo)
        d.wait_for_log("shutting down")
        # echod keeps running: the non-reading client still has a reply pending.
        time.sleep(1.0)
        assert d.running(), "echod exited before a client got what it was owed"
        # An idle client with nothing owed is half-closed at once.
        assert recv_until_eof(other, timeout=5) == b""
        other.close()
        # The client starts reading now: every byte echod read comes back, then EOF.
        s.setblocking(True)
        got = recv_until_eof(s, timeout=30)
        assert len(got) == owed, f"sent {sent}, echod had not read {unread}, got {len(got)}"
        assert got == data[:owed]
        s.close()
        assert d.wait(timeout=10) == 0
        assert "stopped" in d.log()


def test_line_mode_drain_answers_unfinished_line():
    with Echod({"mode": "line"}) as d, d.connect() as s:
        s.sendall(b"done\nhalf a li")
        assert recv_exactly(s, len(b"Received: done\n")) == b"Received: done\n"
        wait_until(lambda: tcp_queues(d.port, s.getsockname()[1])[1] == 0,
                   what="echod reading the unfinished line")
        d.signal(signal.SIGTERM)
        assert recv_until_eof(s, timeout=10) == b"Received: half a li\n"
        s.close()
        assert d.wait(timeout=10) == 0


def test_no_new_connections_after_sigterm():
    with Echod({"shutdown_timeout": 30}) as d:
        # A client with a reply pending keeps echod in its drain phase.
        s, data, sent = stuff_non_reading_client(d)
        d.signal(signal.SIGTERM)
        d.wait_for_log("shutting down")
        assert d.running()
        outcome = connection_refused_or_unserved(d)
        assert outcome in ("refused", "reset", "closed"), outcome
        s.setblocking(True)
        recv_until_eof(s, timeout=30)
        s.close()
        assert d.wait(timeout=10) == 0


def test_shutdown_timeout_forces_close():
    with Echod({"shutdown_timeout": 1}) as d:
        s, data, sent = stuff_non_reading_client(d)
        d.signal(signal.SIGTERM)
        # The client never reads; echod gives up after 1 s and still exits 0.
        assert d.wait(timeout=10) == 0
        s.setblocking(True)
        s.settimeout(10)
        got = bytearray()
        try:
            while True:
                b = s.recv(1 << 20)
                if not b:
                    break
                got.extend(b)
        except ConnectionResetError:
            pass
        assert len(got) < sent and bytes(got) == data[:len(got)]
        s.close()


def test_second_sigterm_closes_at_once():
    with Echod({"shutdown_timeout": 3600}) as d:
        s, data, sent = stuff_non_reading_client(d)
        d.signal(signal.SIGTERM)
        d.wait_for_log("shutting down")
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=10) == 0
        s.close()


def test_idle_server_exits_zero_on_sigterm():
    with Echod() as d:
        with d.connect() as s:
            s.sendall(b"x")
            assert recv_exactly(s, 1) == b"x"
        assert d.stop(timeout=10) == 0
        assert "shutting down" in d.log()
