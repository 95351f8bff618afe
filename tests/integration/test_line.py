# SPDX-License-Identifier: MIT
"""Line mode: framing, terminators, the final line, max_line and its error."""

import random
import socket
import time

import pytest

from harness import Echod, echo_roundtrip, recv_exactly, recv_until_eof

PREFIX = "Received: "


@pytest.fixture(scope="module")
def line_echod():
    with Echod({"mode": "line", "max_line": 32}) as d:
        yield d


def ask(d, data):
    """Sends data, half-closes, returns the whole answer up to EOF."""
    with d.connect() as s:
        return echo_roundtrip(s, data, timeout=20)


@pytest.mark.parametrize("sent,answer", [
    (b"hello\n", b"Received: hello\n"),
    (b"hello\r\n", b"Received: hello\r\n"),          # terminator echoed as received
    (b"a\nb\r\nc\n", b"Received: a\nReceived: b\r\nReceived: c\n"),
    (b"\n", b"Received: \n"),                         # empty line
    (b"\n\n\r\n", b"Received: \nReceived: \nReceived: \r\n"),
    (b"last", b"Received: last\n"),                   # final unterminated line at EOF
    (b"one\nlast", b"Received: one\nReceived: last\n"),
    (b"last\r", b"Received: last\r\n"),               # a lone CR stays part of the line
    (b"a\0b\xff\n", b"Received: a\0b\xff\n"),         # binary inside a line
    (b"", b""),                                       # nothing sent, nothing answered
])
def test_line_answers(line_echod, sent, answer):
    assert ask(line_echod, sent) == answer


def test_lines_answered_without_waiting_for_eof(line_echod):
    with line_echod.connect() as s:
        s.sendall(b"first\n")
        assert recv_exactly(s, len(b"Received: first\n")) == b"Received: first\n"
        s.sendall(b"second\r\nthird")
        assert recv_exactly(s, len(b"Received: second\r\n")) == b"Received: second\r\n"
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b"Received: third\n"


def test_many_lines_in_one_segment():
    lines = [b"line %d" % i for i in range(5000)]
    with Echod({"mode": "line"}) as d, d.connect() as s:
        got = echo_roundtrip(s, b"\n".join(lines) + b"\n")
    assert got == b"".join(b"Received: " + l + b"\n" for l in lines)


def test_line_split_across_many_sends(line_echod):
    line = b"abcdefghijklmnopqrstuvwxyz\r"  # 27 bytes incl. CR, under max_line
    with line_echod.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(line)):
            s.sendall(line[i:i + 1])
            time.sleep(0.002)
        s.sendall(b"\n")
        want = b"Received: " + line + b"\n"
        assert recv_exactly(s, len(want)) == want
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b""


def test_long_lines_in_random_chunks():
    """Lines up to max_line cut at random points, replies byte-exact."""
    rng = random.Random(42)
    lines = [bytes(rng.choice(b"abc\0\r\xff") for _ in range(rng.randint(0, 4000)))
             for _ in range(300)]
    lines = [l.replace(b"\n", b"") for l in lines]
    stream = b"".join(l + b"\n" for l in lines)
    want = b"".join(b"> " + l + b"\n" for l in lines)
    with Echod({"mode": "line", "line_prefix": "> ", "max_line": 4096}) as d, d.connect() as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = bytearray()
        pos = 0
        while pos < len(stream):
            n = rng.randint(1, 9000)
            s.sendall(stream[pos:pos + n])
            pos += n
        s.shutdown(socket.SHUT_WR)
        got = recv_until_eof(s, timeout=30)
    assert got == want


@pytest.mark.parametrize("prefix", ["", ">", "é≈ ", "x" * 1024])
def test_configured_prefix(prefix):
    with Echod({"mode": "line", "line_prefix": prefix}) as d:
        p = prefix.encode()
        assert ask(d, b"a\nb\r\n") == p + b"a\n" + p + b"b\r\n"


@pytest.mark.parametrize("line", [b"x" * 32, b"x" * 31 + b"\r"])
def test_line_of_exactly_max_line_is_answered(line_echod, line):
    assert ask(line_echod, line + b"\n") == b"Received: " + line + b"\n"


ERROR = b"ERROR line too long (max 32 bytes)\n"


@pytest.mark.parametrize("sent,answered", [
    (b"x" * 33 + b"\n", b""),
    (b"x" * 32 + b"\r\n", b""),                        # the CR counts toward max_line
    (b"ok\n" + b"y" * 33 + b"\nnot answered\n", b"Received: ok\n"),
    (b"z" * 1000, b""),                                # too long before any LF arrives
])
def test_too_long_line_gets_error_and_close(line_echod, sent, answered):
    with line_echod.connect() as s:
        s.sendall(sent)
        # No half-close: echod itself must end the connection after the error.
        got = recv_until_eof(s, timeout=10)
    assert got == answered + ERROR


def test_too_long_line_discards_further_input_and_closes_cleanly(line_echod):
    """After the error echod half-closes and discards what the client still
    sends: the client reads the error and a clean EOF (no reset), even while
    it keeps sending."""
    with line_echod.connect() as s:
        s.sendall(b"q" * 40 + b"\n")
        assert recv_exactly(s, len(ERROR)) == ERROR
        for _ in range(20):
            s.sendall(b"more input that nobody answers\n" * 100)
        assert recv_until_eof(s, timeout=10) == b""
        s.shutdown(socket.SHUT_WR)


def test_too_long_line_split_across_sends(line_echod):
    with line_echod.connect() as s:
        for _ in range(5):
            s.sendall(b"w" * 10)
            time.sleep(0.01)
        assert recv_until_eof(s, timeout=10) == ERROR


def test_default_max_line_error_text():
    with Echod({"mode": "line"}) as d, d.connect() as s:
        s.sendall(b"v" * 65537)
        assert recv_until_eof(s, timeout=10) == b"ERROR line too long (max 65536 bytes)\n"
