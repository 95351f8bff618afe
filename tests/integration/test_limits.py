# SPDX-License-Identifier: MIT
"""max_connections and idle_timeout."""

import socket
import time

from harness import Echod, recv_exactly, recv_until_eof, wait_until


def assert_echoes(s, msg=b"ping\0"):
    s.sendall(msg)
    assert recv_exactly(s, len(msg), timeout=10) == msg


def gets_closed_at_once(d):
    """Connects and expects echod to close the connection without a byte."""
    with d.connect() as s:
        try:
            return recv_until_eof(s, timeout=5) == b""
        except ConnectionResetError:
            return True


def test_max_connections():
    with Echod({"max_connections": 3, "threads": 2}) as d:
        held = [d.connect() for _ in range(3)]
        try:
            for s in held:
                assert_echoes(s)
            # Over the limit: accepted and closed at once, several times over.
            for _ in range(4):
                assert gets_closed_at_once(d)
            # Those already in are still served.
            for s in held:
                assert_echoes(s, b"still here\n")
            assert "max_connections reached" in d.log()

            # A freed slot can be used again (the count is released on close).
            held.pop().close()

            def fourth_is_served():
                s = d.connect()
                s.sendall(b"x")
                try:
                    s.settimeout(5)
                    if s.recv(1) == b"x":
                        return s
                except OSError:
                    pass
                s.close()
                return None

            held.append(wait_until(fourth_is_served, timeout=10, interval=0.1,
                                   what="a freed slot being reusable"))
            assert_echoes(held[-1])
            assert gets_closed_at_once(d)
        finally:
            for s in held:
                s.close()


def test_idle_timeout_closes_idle_but_not_active():
    with Echod({"idle_timeout": 1}) as d:
        idle = d.connect()
        active = d.connect()
        with idle, active:
            assert_echoes(idle)
            assert_echoes(active)
            # Keep `active` busy for well over the timeout while `idle` says nothing.
            deadline = time.monotonic() + 3.5
            while time.monotonic() < deadline:
                assert_echoes(active, b"tick")
                time.sleep(0.2)
            # The idle one was closed by echod (EOF, within a bounded wait).
            assert recv_until_eof(idle, timeout=5) == b""
            assert_echoes(active, b"alive")
            # And once `active` stops talking it goes too.
            assert recv_until_eof(active, timeout=6) == b""


def test_idle_timeout_zero_never_closes():
    with Echod({"idle_timeout": 0}) as d, d.connect() as s:
        assert_echoes(s)
        s.settimeout(2)  # echod checks timeouts every second
        try:
            got = s.recv(1)
        except socket.timeout:
            got = None
        assert got is None, "echod closed a connection with idle_timeout = 0"
        assert_echoes(s)
