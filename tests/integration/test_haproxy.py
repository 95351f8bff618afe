# SPDX-License-Identifier: MIT
"""HAProxy (conf/haproxy-echod.cfg) in front of echod instances on loopback.

HAProxy is started by the test (see haproxy_util.py), never by systemd. The
checks are the shipped ones with short timing (inter 200ms, fall 2, rise 2,
timeout check 500ms); the down and up detection times are measured on the
stats socket, printed, and held to bounds computed from that timing.
"""

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from ctl_util import stats
from harness import Echod, echo_roundtrip, recv_exactly, wait_until
from haproxy_util import HAPROXY, SHIPPED_CFG, HAProxy, probe_line, seconds, shipped_maxconn

pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed (Debian: haproxy)")

PAYLOAD = 100_003  # bytes per client: random binary, far from the probe's size
# Scheduling delay on a loaded 2-core machine; the bounds are otherwise the
# check timing HAProxy is configured with.
SLACK = 1.0


def clients(hap, n, rng, size=PAYLOAD):
    """n clients one after another through HAProxy; each sends random bytes,
    half-closes and must get exactly the same bytes back before EOF."""
    for i in range(n):
        payload = rng.randbytes(size)
        with socket.create_connection(("127.0.0.1", hap.port), timeout=10) as s:
            got = echo_roundtrip(s, payload, timeout=30)
        assert got == payload, (f"client {i}: {len(got)} bytes back of {len(payload)}, "
                                f"first difference at {first_difference(got, payload)}")


def first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def assert_served(d, before, after, k):
    """echod d received exactly k client payloads between two `stats`
    snapshots, plus whole health-check probes (and nothing else)."""
    probe = len(probe_line())
    extra = after["bytes_received"] - before["bytes_received"] - k * PAYLOAD
    assert extra >= 0 and extra % probe == 0, (
        f"echod on port {d.port}: {extra} bytes beyond {k} payloads of {PAYLOAD}, "
        f"not a whole number of {probe}-byte probes")
    assert after["connections_total"] - before["connections_total"] >= k


def delta(before, after):
    return {name: after[name] - before[name] for name in before}


@pytest.fixture
def workdir():
    """HAProxy's config, stats socket and log. Failures quote its log."""
    d = tempfile.mkdtemp(prefix="echod-haproxy-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Background:
    """Runs fn(*args) in a thread; join() re-raises what it raised."""

    def __init__(self, fn, *args):
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self.thread.start()

    def _run(self, fn, args):
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to join()
            self.error = e

    def join(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.thread.name} still running after {timeout}s"
        if self.error:
            raise self.error


def test_shipped_config_is_valid(workdir):
    p = subprocess.run([HAPROXY, "-c", "-f", SHIPPED_CFG], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    # The test's config (shipped file + global with logging) has no warning at all.
    hap = HAProxy(workdir, [("echod-1", 7008), ("echod-2", 7009)])
    hap.port = 7007
    hap.write_config()
    rc, out = hap.check_config()
    assert rc == 0 and "[WARNING]" not in out and "[ALERT]" not in out, out


class FakeServer:
    """A TCP server on loopback that is not echod: `reply` is sent to each
    client after its first read, then the connection is closed; with
    reply=None it accepts and never answers (and keeps the connection)."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.reply is None:
                self.held.append(c)
                continue
            with c:
                try:
                    c.settimeout(5)
                    c.recv(4096)
                    c.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def test_check_is_an_echo_round_trip(workdir):
    """The check passes on echod in both modes and fails on servers that
    accept the connection but do not echo the probe."""
    wrong, silent = FakeServer(b"something else\n"), FakeServer(None)
    closed = FakeServer(b"")
    closed.close()  # a port nobody listens on
    try:
        with Echod() as echo, Echod({"mode": "line"}) as line:
            servers = [("echo-mode", echo.port), ("line-mode", line.port),
                       ("wrong-reply", wrong.port), ("silent", silent.port),
                       ("closed", closed.port)]
            with HAProxy(workdir, servers) as hap:
                expect = {"echo-mode": ("UP", "L7OK"), "line-mode": ("UP", "L7OK"),
                          "wrong-reply": ("DOWN", "L7RSP"), "silent": ("DOWN", "L7TOUT"),
                          "closed": ("DOWN", "L4CON")}
                for name, (status, check) in expect.items():
                    hap.wait_status(name, status, timeout=10, check_status=check)
                # The round trips really reached echod: whole probes only.
                for d in (echo, line):
                    st = stats(d)
                    assert st["bytes_received"] >= len(probe_line())
                    assert st["bytes_received"] % len(probe_line()) == 0, st
                    assert (st["lines"] > 0) == (d is line), st
    finally:
        wrong.close()
        silent.close()


def test_failover_and_recovery(workdir):
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    print(f"\nhaproxy test: random seed {seed}")
    with Echod() as a, Echod() as b:
        with HAProxy(workdir, [("echod-a", a.port), ("echod-b", b.port)]) as hap:
            t = hap.timing
            inter, check = seconds(t["inter"]), seconds(t["timeout_check"])
            for name in ("echod-a", "echod-b"):
                hap.wait_status(name, "UP", timeout=10, check_status="L7OK")

            # Both instances serve, byte-exact, in turn.
            s0, before = hap.sessions(), {d: stats(d) for d in (a, b)}
            clients(hap, 20, rng)
            sent = delta(s0, hap.sessions())
            assert sent == {"echod-a": 10, "echod-b": 10}, sent
            assert_served(a, before[a], stats(a), sent["echod-a"])
            assert_served(b, before[b], stats(b), sent["echod-b"])

            # b stops. Once it has exited (its listener is closed), clients that
            # HAProxy still sends it are refused and retried on a, unseen.
            # (A client accepted before echod closed its listener is drained
            # by echod's shutdown instead: see SIGTERM in echod(8).)
            def after_exit():
                assert b.wait(timeout=30) == 0, b.log()
                clients(hap, 6, random.Random(seed), 1000)

            t0 = time.monotonic()
            b.signal(signal.SIGTERM)
            window = Background(after_exit)
            down = hap.wait_status("echod-b", "DOWN", timeout=30) - t0
            window.join(timeout=60)
            down_bound = t["fall"] * inter + check + SLACK
            print(f"haproxy test: echod-b marked DOWN {down:.3f} s after SIGTERM "
                  f"(inter {t['inter']}, fall {t['fall']}; bound {down_bound:.2f} s)")
            assert (t["fall"] - 1) * inter * 0.9 <= down <= down_bound

            # New clients are all served by a; HAProxy sends b none.
            s0, before_a = hap.sessions(), stats(a)
            clients(hap, 10, rng)
            sent = delta(s0, hap.sessions())
            assert sent == {"echod-a": 10, "echod-b": 0}, sent
            assert_served(a, before_a, stats(a), 10)

            # b is back on its port: HAProxy marks it UP and sends it clients again.
            b.restart()
            t1 = time.monotonic()
            up = hap.wait_status("echod-b", "UP", timeout=30, check_status="L7OK") - t1
            up_bound = t["rise"] * inter + check + SLACK
            print(f"haproxy test: echod-b marked UP {up:.3f} s after it was ready again "
                  f"(inter {t['inter']}, rise {t['rise']}; bound {up_bound:.2f} s)")
            assert (t["rise"] - 1) * inter * 0.9 <= up <= up_bound

            s0, before = hap.sessions(), {d: stats(d) for d in (a, b)}
            clients(hap, 10, rng)
            sent = delta(s0, hap.sessions())
            assert sent["echod-a"] >= 1 and sent["echod-b"] >= 1, sent
            assert sum(sent.values()) == 10, sent
            assert_served(a, before[a], stats(a), sent["echod-a"])
            assert_served(b, before[b], stats(b), sent["echod-b"])


def test_full_instance_stays_up(workdir):
    """An instance that HAProxy has filled to its maxconn still passes its
    health checks: the shipped maxconn leaves echod room for the check's own
    connection (past max_connections echod accepts and closes a connection
    at once, which fails the check, and a full instance would go down)."""
    with Echod() as default:
        headroom = stats(default)["max_connections"] - shipped_maxconn()
    assert headroom >= 1, f"maxconn {shipped_maxconn()} leaves echod no room for the check"
    held = 3
    with Echod({"max_connections": held + headroom}) as d, \
            HAProxy(workdir, [("echod-1", d.port)], maxconn=held) as hap:
        t = hap.timing
        hap.wait_status("echod-1", "UP", timeout=10, check_status="L7OK")
        socks = []
        try:
            for _ in range(held):  # each one echoed: connected through to echod
                s = socket.create_connection(("127.0.0.1", hap.port), timeout=10)
                socks.append(s)
                s.sendall(b"x")
                assert recv_exactly(s, 1, timeout=10) == b"x"
            # More checks than `fall` while HAProxy holds maxconn clients
            # (each check is one connection to echod, accepted or rejected).
            st = stats(d)
            seen = st["connections_total"] + st["connections_rejected"]
            wait_until(lambda: (lambda st: st["connections_total"] + st["connections_rejected"])(
                stats(d)) >= seen + t["fall"] + 1, timeout=10, what="health checks")
            row = hap.stat()["echod-1"]
            assert row["status"] == "UP" and row["chkfail"] == "0", row
            assert stats(d)["connections_rejected"] == 0, stats(d)
        finally:
            for s in socks:
                s.close()
