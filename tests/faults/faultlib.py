# SPDX-License-Identifier: MIT
"""Helpers for the fault matrix (test_fault_*.py) and soak.py: well-behaved
clients that check every byte while a fault is going on, CPU/RSS/fd probes of
the echod process, and echoctl --json stats.

The echod harness is imported from tests/integration (not copied)."""

import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

# Echod and the receive helpers are re-exported for the test files.
from harness import (Echod, built_with_asan, echo_roundtrip, recv_exactly, recv_until_eof,  # noqa: E402,F401
                     wait_until)

PREFIX = b"Received: "
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid):
    """{thread name: cpu seconds} for every thread of pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        out[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def cpu_over(pid, seconds):
    """CPU seconds pid used during the next `seconds` of wall time."""
    c0 = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - c0


def stats(d):
    """echoctl --json stats as a dict (fails the test if echoctl fails)."""
    rc, out, err = d.ctl("--json", "stats", timeout=20)
    assert rc == 0, f"echoctl --json stats exited {rc}: {err}"
    return json.loads(out)


def quiet_fd_count(d, samples=5, interval=0.05):
    """The fd count of echod at rest. sd_notify() opens a socket for a moment
    each time STATUS changes, so one sample can be one too high: take the
    smallest of a few."""
    n = []
    for _ in range(samples):
        n.append(d.fd_count())
        time.sleep(interval)
    return min(n)


def assert_fds_back(d, baseline, timeout=10.0):
    """Waits (closing connections linger up to 2 s) until echod holds exactly
    the fds it held before the fault."""
    deadline = time.monotonic() + timeout
    while True:
        n = d.fd_count()
        if n == baseline:
            return
        if time.monotonic() >= deadline:
            fds = sorted(os.listdir(f"/proc/{d.proc.pid}/fd"), key=int)
            targets = []
            for fd in fds:
                try:
                    targets.append(f"{fd}->{os.readlink(f'/proc/{d.proc.pid}/fd/{fd}')}")
                except OSError:
                    pass
            raise AssertionError(f"fd leak: echod holds {n} fds, {baseline} before the "
                                 f"fault, {timeout}s after the last client left: {targets}")
        time.sleep(0.05)


# ASan's quarantine holds freed memory (up to 256 MiB) back from reuse, so RSS
# says nothing about leaks there; LeakSanitizer checks those at exit instead.
SANITIZED = built_with_asan()


def assert_rss_within(d, baseline_kib, bound_kib, what):
    rss = d.rss_kib()
    growth = rss - baseline_kib
    if SANITIZED:
        return growth
    assert growth <= bound_kib, (f"{what}: RSS grew by {growth} KiB ({baseline_kib} -> {rss} "
                                 f"KiB), bound {bound_kib} KiB")
    return growth


def payload(i, size):
    """A message that differs per sequence number, so a swapped, lost or
    repeated chunk is caught, not only a wrong length."""
    head = b"%010d:" % i
    body = bytes(((i + k) * 7 + 13) % 251 for k in range(min(size, 251)))
    body = (body * (size // len(body) + 1))[: max(0, size - len(head))]
    return (head + body)[:size]


class Traffic:
    """Well-behaved clients: `clients` connections, each in its own thread,
    sending a message and reading its answer back byte for byte, again and
    again until stop(). mode "echo" (answer == message) or "line" (answer ==
    PREFIX + line). With `fresh` > 0, each client reconnects after that many
    round trips, so new connections are exercised too.

    `errors` lists everything that went wrong (a wrong byte, a reset, a
    timeout); `max_rtt` is the slowest round trip, `rtts` all of them.
    """

    def __init__(self, d, clients=4, mode="echo", size=2000, pause=0.01, fresh=0,
                 timeout=20.0):
        self.d = d
        self.mode = mode
        self.size = size
        self.pause = pause
        self.fresh = fresh
        self.timeout = timeout
        self.errors = []
        self.rtts = []
        self.roundtrips = 0
        self.bytes_checked = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                         for k in range(clients)]

    @property
    def max_rtt(self):
        with self._lock:
            return max(self.rtts, default=0.0)

    def start(self, warmup=2):
        for t in self._threads:
            t.start()
        wait_until(lambda: self.roundtrips >= warmup * len(self._threads) or self.errors,
                   timeout=20, what="well-behaved clients warming up")
        assert not self.errors, f"well-behaved clients failed before the fault: {self.errors}"
        return self

    def _message(self, k, i):
        if self.mode == "echo":
            msg = payload(k * 1000003 + i, self.size)
            return msg, msg
        line = payload(k * 1000003 + i, self.size).replace(b"\n", b"_").replace(b"\r", b"_")
        return line + b"\n", PREFIX + line + b"\n"

    def _connect(self):
        s = self.d.connect(timeout=self.timeout)
        with self._lock:
            self.connections += 1
        return s

    def _run(self, k):
        s = None
        i = 0
        try:
            s = self._connect()
            while not self._stop.is_set():
                i += 1
                msg, want = self._message(k, i)
                t0 = time.monotonic()
                s.sendall(msg)
                got = recv_exactly(s, len(want), timeout=self.timeout)
                rtt = time.monotonic() - t0
                if got != want:
                    raise AssertionError(f"client {k} round trip {i}: wrong bytes back "
                                         f"(first difference at "
                                         f"{next(j for j in range(len(got)) if got[j] != want[j])})")
                with self._lock:
                    self.rtts.append(rtt)
                    self.roundtrips += 1
                    self.bytes_checked += len(want)
                if self.fresh and i % self.fresh == 0:
                    s.shutdown(socket.SHUT_WR)
                    rest = recv_until_eof(s, timeout=self.timeout)
                    if rest:
                        raise AssertionError(f"client {k}: {len(rest)} unexpected bytes "
                                             f"before EOF")
                    s.close()
                    s = self._connect()
                if self.pause:
                    self._stop.wait(self.pause)
        except Exception as e:  # noqa: BLE001 - every failure is reported by stop()
            with self._lock:
                self.errors.append(f"client {k} after {i - 1} round trips: "
                                   f"{type(e).__name__}: {e}")
        finally:
            if s is not None:
                s.close()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 10)
        alive = [t for t in self._threads if t.is_alive()]
        assert not alive, f"{len(alive)} well-behaved clients hung"
        return self

    def check(self, max_rtt=None, what="well-behaved clients"):
        """Fails on any error, or if a round trip took longer than max_rtt."""
        assert not self.errors, f"{what} failed during the fault: {self.errors[:5]}"
        assert self.roundtrips > 0, f"{what} made no round trip"
        if max_rtt is not None:
            # A liveness bound (not stalled), not a speed claim: ASan runs several times slower.
            max_rtt *= 5 if SANITIZED else 1
            assert self.max_rtt <= max_rtt, (f"{what}: slowest round trip {self.max_rtt:.3f} s, "
                                             f"bound {max_rtt} s")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def probe_echo(d, data=b"probe\0\xff\n", timeout=10.0):
    """A fresh connection: send, half-close, read to EOF, compare."""
    with d.connect(timeout=timeout) as s:
        got = echo_roundtrip(s, data, timeout=timeout)
    assert got == data, f"fresh probe connection got {got!r}, sent {data!r}"


def set_linger_zero(s):
    """close() now sends RST instead of FIN and discards anything unsent."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")


def warm_up(d, mode="echo", clients=8, roundtrips=20, size=64 * 1024):
    """Some traffic before the baseline is taken, so each worker's read buffer
    and malloc arena exist already and the RSS bound measures the fault, not
    first use."""
    with Traffic(d, clients=clients, mode=mode, size=size, pause=0) as t:
        wait_until(lambda: t.roundtrips >= clients * roundtrips or t.errors, timeout=30,
                   what="warm-up traffic")
    t.check()
