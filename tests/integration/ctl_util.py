# SPDX-License-Identifier: MIT
"""Helpers shared by the echoctl / control socket tests (test_ctl*.py):
live echo traffic that checks every byte, a raw control-protocol client, and
echoctl --json wrappers."""

import json
import os
import socket
import threading
import time

from harness import recv_exactly


class EchoTraffic:
    """Live echo traffic on one connection, from a thread, until stop().

    Every message is checked byte for byte. `sent`/`received` count exactly
    what went over the wire (for exact counter checks once stopped); `errors`
    holds anything that went wrong; `max_gap` is the longest a round trip took.
    """

    def __init__(self, echod, size=1000, pause=0.005):
        self.sock = echod.connect()
        self.size = size
        self.pause = pause
        self.sent = self.received = self.roundtrips = 0
        self.errors = []
        self.max_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        self.wait_roundtrips(3)
        return self

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        i = 0
        try:
            while not self._stop.is_set():
                i += 1
                msg = (b"%08d:" % i) + bytes([65 + i % 26]) * (self.size - 9)
                t0 = time.monotonic()
                self.sock.sendall(msg)
                self.sent += len(msg)
                got = recv_exactly(self.sock, len(msg), timeout=20)
                self.received += len(got)
                if got != msg:
                    self.errors.append(f"round trip {i}: wrong echo")
                    return
                self.max_gap = max(self.max_gap, time.monotonic() - t0)
                self.roundtrips += 1
                if self.pause:
                    time.sleep(self.pause)
        except Exception as e:  # noqa: BLE001 - reported through errors
            self.errors.append(f"round trip {i}: {e!r}")

    def wait_roundtrips(self, n, timeout=10.0):
        """Waits until n more round trips completed (proof that echo flows now)."""
        target = self.roundtrips + n
        deadline = time.monotonic() + timeout
        while self.roundtrips < target:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, \
                f"echo traffic stalled: {self.roundtrips} round trips, wanted {target}"
            time.sleep(0.005)

    def stop(self):
        """Stops after the round trip in flight; asserts that all went well."""
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "echo traffic thread hung"
        self.sock.close()
        assert not self.errors, self.errors
        assert self.sent == self.received


class Control:
    """A raw client of the control socket (AF_UNIX stream), as a script would be."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # A non-blocking AF_UNIX connect fails with EAGAIN while the listen
        # backlog is full (it does not wait like TCP): retry until accepted.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.sock.close()
                    raise TimeoutError(f"{path}: backlog full for {timeout}s") from None
                time.sleep(0.002)
        self._buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def read_reply(self, timeout=10.0):
        """The next reply line, parsed; raises EOFError at EOF."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply line in {timeout}s; have {self._buf[:200]!r}")
            self.sock.settimeout(left)
            b = self.sock.recv(1 << 20)
            if not b:
                raise EOFError(f"EOF before a full reply; have {self._buf[:200]!r}")
            self._buf += b
        line, self._buf = self._buf.split(b"\n", 1)
        reply = json.loads(line)
        assert isinstance(reply, dict), line
        assert reply.get("protocol") == 1, line
        return reply

    def request(self, line, timeout=10.0):
        self.send(line.encode() + b"\n")
        return self.read_reply(timeout)

    def expect_disconnect(self, timeout=10.0):
        """Asserts echod closes the connection (EOF, or a reset when it hung
        up with our unread bytes in its queue) with no further reply."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"echod did not disconnect within {timeout}s"
            self.sock.settimeout(left)
            try:
                b = self.sock.recv(65536)
            except ConnectionResetError:
                return
            except socket.timeout:
                continue
            if not b:
                assert self._buf == b"", f"unexpected bytes before EOF: {self._buf!r}"
                return
            self._buf += b


def ctl_ok(d, *args, **kw):
    """Runs echoctl against d, asserts exit 0 and no stderr, returns stdout."""
    rc, out, err = d.ctl(*args, **kw)
    assert rc == 0, f"echoctl {' '.join(args)}: exit {rc}\nstdout: {out}\nstderr: {err}"
    assert err == "", err
    return out


def ctl_json(d, *args, **kw):
    """`echoctl --json ARGS`, parsed."""
    return json.loads(ctl_ok(d, "--json", *args, **kw))


def stats(d):
    return ctl_json(d, "stats")


WORKER_SUMMED = ("connections_total", "connections_rejected", "connections_timed_out",
                 "connections_adopted", "bytes_received", "bytes_sent", "lines",
                 "lines_too_long", "accept_errors", "connections_active")


def thread_sums(reply):
    """Per-counter sums over reply["workers"]."""
    return {k: sum(w[k] for w in reply["workers"]) for k in WORKER_SUMMED}


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))
