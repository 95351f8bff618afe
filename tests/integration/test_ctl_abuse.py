# SPDX-License-Identifier: MIT
"""Bad input on the control socket, spoken raw (AF_UNIX) as a script or an
attacker would: each case gets a clear error or is dropped, echod stays
healthy, and an echo client keeps getting correct echoes meanwhile."""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from ctl_util import Control, EchoTraffic, ctl_json, ctl_ok, fd_count, stats
from harness import ECHOCTL, Echod, recv_until_eof, wait_until

MAX_REQUEST = 4096  # PROTO_MAX_REQUEST, including the "\n"
MAX_CLIENTS = 64    # PROTO_MAX_CLIENTS
TIMEOUT_S = 10      # PROTO_TIMEOUT_MS / 1000


def healthy(d, live):
    """echod still answers, and echo traffic made progress."""
    assert ctl_ok(d, "ping") == "echod is alive\n"
    live.wait_roundtrips(3)
    assert d.running()


def test_protocol_basics_pipelining_and_unknown_commands():
    with Echod() as d, EchoTraffic(d) as live, Control(d.control_socket) as c:
        # Several requests in one write: one reply line each, in order.
        c.send(b"ping\nversion\r\nstats\n  threads  \n")
        r = [c.read_reply() for _ in range(4)]
        assert r[0] == {"ok": True, "protocol": 1}
        assert r[1]["ok"] and r[1]["version"]
        assert r[2]["ok"] and "bytes_received" in r[2]
        assert r[3]["ok"] and r[3]["threads"] == 2
        for line, code, msg in [
            ("frobnicate", "usage", 'unknown command "frobnicate"'),
            ("", "usage", "empty request"),
            ("STATS", "usage", 'unknown command "STATS"'),
            ("kill", "usage", "usage: kill ID"),
            ("ping extra", "usage", "usage: ping"),
            ("log-level a b c", "usage", "too many arguments"),
            ("kill x", "usage", '"x" is not a connection id'),
            ("kill 0", "usage", '"0" is not a connection id'),
            ("kill 18446744073709551616", "usage", "is not a connection id"),
            ("kill 12345", "not_found", "no connection 12345"),
            ("x" * 200, "usage", "too long"),
        ]:
            reply = c.request(line)
            assert reply["ok"] is False and reply["code"] == code, (line, reply)
            assert msg in reply["error"], (line, reply)
        # The connection survives ordinary errors.
        assert c.request("ping")["ok"] is True
        assert stats(d)["control_errors"] >= 11
        healthy(d, live)


def test_pipelined_requests_and_half_close_like_socat():
    with Echod() as d, EchoTraffic(d) as live:
        # 3000 requests in one go, then EOF: all answered, in order, then EOF.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.control_socket)
        with s:
            s.sendall(b"ping\n" * 3000 + b"version\n")
            s.shutdown(socket.SHUT_WR)
            data = recv_until_eof(s, timeout=10)
        lines = data.split(b"\n")
        assert lines[-1] == b"" and len(lines) == 3002
        assert all(json.loads(x) == {"ok": True, "protocol": 1} for x in lines[:3000])
        assert json.loads(lines[3000])["version"]
        # A request that needs the workers, then EOF at once: still answered.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.control_socket)
        with s:
            s.sendall(b"connections\n")
            s.shutdown(socket.SHUT_WR)
            reply = json.loads(recv_until_eof(s, timeout=10))
        assert reply["ok"] and len(reply["connections"]) == 1
        # What echoctl(1) documents for scripts.
        if shutil.which("socat"):
            p = subprocess.run(["socat", "-", f"UNIX-CONNECT:{d.control_socket}"],
                               input=b"stats\n", capture_output=True, timeout=10)
            assert p.returncode == 0, p.stderr
            reply = json.loads(p.stdout)
            assert p.stdout.count(b"\n") == 1 and reply["ok"] and reply["pid"] == d.proc.pid
        healthy(d, live)


def test_line_over_4k_gets_error_and_disconnect():
    with Echod() as d, EchoTraffic(d) as live:
        # The largest request allowed: 4096 bytes with the "\n".
        with Control(d.control_socket) as c:
            line = b"ping" + b" " * (MAX_REQUEST - 5) + b"\n"
            assert len(line) == MAX_REQUEST
            c.send(line)
            assert c.read_reply() == {"ok": True, "protocol": 1}
            # One more byte is too long.
            c.send(b"ping" + b" " * (MAX_REQUEST - 4) + b"\n")
            r = c.read_reply()
            assert r["ok"] is False and r["code"] == "usage"
            assert r["error"] == f"request longer than {MAX_REQUEST} bytes"
            c.expect_disconnect(timeout=5)
        # A megabyte without a newline, sent from a thread (echod hangs up on it).
        with Control(d.control_socket) as c:
            t = threading.Thread(target=lambda: _send_quietly(c.sock, b"A" * (1 << 20)))
            t.start()
            r = c.read_reply()
            assert r["code"] == "usage" and "longer than" in r["error"]
            c.expect_disconnect(timeout=5)
            t.join(timeout=10)
            assert not t.is_alive()
        healthy(d, live)


def _send_quietly(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass  # echod hung up: expected


def test_binary_junk_gets_error_and_disconnect():
    with Echod() as d, EchoTraffic(d) as live:
        for junk in (bytes(range(256)) * 4,              # NUL and control bytes
                     b"st\xffats\n",                      # a non-ASCII byte
                     b"stats\x00\n",                      # NUL inside a command
                     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n"):  # TLS-ish
            with Control(d.control_socket) as c:
                c.send(junk)
                r = c.read_reply()
                assert r["ok"] is False and r["code"] == "usage", (junk[:20], r)
                assert "control or non-ASCII byte" in r["error"], r
                c.expect_disconnect(timeout=5)  # one answer, then hung up
        # A junk line after a good one: the good one is answered first.
        with Control(d.control_socket) as c:
            c.send(b"ping\n\x01\x02\x03\npin\n")
            assert c.read_reply()["ok"] is True
            assert c.read_reply()["ok"] is False
            c.expect_disconnect(timeout=5)
        healthy(d, live)


def test_silent_and_stuck_clients_are_dropped_after_the_timeout():
    """The only slow test here (~10 s): several kinds of stuck clients at once."""
    with Echod() as d, EchoTraffic(d, pause=0.02) as live:
        fds_before = fd_count(d.proc.pid)
        silent = Control(d.control_socket, timeout=30)
        partial = Control(d.control_socket, timeout=30)
        partial.send(b"sta")  # never completes the line
        junk_no_newline = Control(d.control_socket, timeout=30)
        junk_no_newline.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(50))
        # Floods requests and never reads replies: echod stops reading from it
        # once its replies back up, and drops it when it has not read in time.
        flooder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        flooder.connect(d.control_socket)
        flooder.setblocking(False)
        flooded = 0
        try:
            for _ in range(100000):
                flooded += flooder.send(b"stats\n" * 100)
        except BlockingIOError:
            pass
        # And one that keeps talking, slower than the timeout but steadily.
        talker = Control(d.control_socket)
        t0 = time.monotonic()
        dropped = {}
        stuck = {"silent": silent, "partial": partial, "junk": junk_no_newline}
        while time.monotonic() - t0 < TIMEOUT_S + 4 and len(dropped) < 4:
            assert talker.request("ping")["ok"]
            for name, c in stuck.items():
                if name in dropped:
                    continue
                c.sock.settimeout(0.01)
                try:
                    data = c.sock.recv(65536)
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    c._buf += data
                    continue
                dropped[name] = (time.monotonic() - t0, c._buf)
            if "flooder" not in dropped:
                try:
                    flooder.send(b"x")
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    dropped["flooder"] = (time.monotonic() - t0, b"")
            time.sleep(0.25)
        elapsed = time.monotonic() - t0
        assert set(dropped) == {"silent", "partial", "junk", "flooder"}, \
            f"not dropped after {elapsed:.1f}s: {set(stuck) | {'flooder'} - set(dropped)}"
        for name in ("silent", "partial", "junk"):
            when, data = dropped[name]
            assert TIMEOUT_S - 1 <= when <= TIMEOUT_S + 3, (name, when)
            assert b'"timed out waiting for a request"' in data, (name, data)
        assert dropped["flooder"][0] <= TIMEOUT_S + 3
        # The talker, active all along, is still served.
        assert talker.request("ping")["ok"]
        talker.close()
        for c in stuck.values():
            c.close()
        flooder.close()
        wait_until(lambda: fd_count(d.proc.pid) <= fds_before, timeout=5,
                   what=f"echod's fds back to {fds_before}")
        healthy(d, live)


def test_clients_vanishing_mid_reply():
    with Echod({"threads": 2}) as d, EchoTraffic(d) as live:
        held = [d.connect() for _ in range(1500)]
        try:
            wait_until(lambda: stats(d)["connections_active"] == 1501, timeout=20,
                       what="1500 connections accepted")
            fds_before = fd_count(d.proc.pid)
            # `connections` is ~200 KB here: close while echod is still writing it,
            # or before the workers have even answered.
            for i in range(60):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(d.control_socket)
                s.sendall(b"connections\n" * (1 + i % 3))
                if i % 2:
                    s.recv(100)  # read a little of the reply first
                s.close()
            # Resets while a reply is in flight leave nothing behind: all 64
            # control slots are free again and fds are back.
            with Control(d.control_socket) as c:
                r = c.request("connections", timeout=20)
                assert len(r["connections"]) == 1500 + 1
            clients = []
            try:
                for _ in range(MAX_CLIENTS):
                    clients.append(Control(d.control_socket))
                for c in clients:
                    assert c.request("ping")["ok"], "a slot leaked by a vanished client"
            finally:
                for c in clients:
                    c.close()
            wait_until(lambda: fd_count(d.proc.pid) <= fds_before, timeout=5,
                       what=f"echod's fds back to {fds_before}")
            healthy(d, live)
        finally:
            for s in held:
                s.close()


def test_100_control_clients_at_once():
    with Echod() as d, EchoTraffic(d) as live:
        clients = []
        try:
            for _ in range(100):
                clients.append(Control(d.control_socket, timeout=10))
            # The first 64 are served; the rest hear "busy" and are hung up on.
            for i, c in enumerate(clients[MAX_CLIENTS:]):
                r = c.read_reply(timeout=10)
                assert r == {"ok": False, "protocol": 1, "code": "busy",
                             "error": "too many control clients"}, (MAX_CLIENTS + i, r)
                c.expect_disconnect(timeout=5)
            for c in clients[:MAX_CLIENTS]:
                c.send(b"ping\n")
            for i, c in enumerate(clients[:MAX_CLIENTS]):
                assert c.read_reply(timeout=10) == {"ok": True, "protocol": 1}, i
            live.wait_roundtrips(3)
        finally:
            for c in clients:
                c.close()
        # echoctl meanwhile: 100 processes at once, none hangs; each either
        # succeeds or says echod is busy (exit 1).
        procs = [subprocess.Popen([ECHOCTL, "-s", d.control_socket, "-t", "10", "stats"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True) for _ in range(100)]
        results = []
        for p in procs:
            try:
                _, err = p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise AssertionError("an echoctl hung with 100 running at once")
            results.append((p.returncode, err))
        for rc, err in results:
            assert rc == 0 or (rc == 1 and err == "echoctl: too many control clients\n"), \
                (rc, err)
        assert sum(1 for rc, _ in results if rc == 0) >= MAX_CLIENTS
        healthy(d, live)


def built_with_test_hooks():
    import shutil as sh
    exe = sh.which(os.environ.get("ECHOD", "echod")) or os.environ.get("ECHOD", "echod")
    try:
        with open(exe, "rb") as f:
            return b"test hook: worker" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not built_with_test_hooks(), reason="echod built without -Dtest_hooks")
def test_stalled_worker_does_not_block_the_control_socket():
    """Worker 0 stops (test hook, SIGUSR2): requests that need every worker
    time out in echoctl (-t), and nothing piles up — status and ping, which
    an operator needs right then, keep working, even after 70 given-up
    `connections` requests (more than the 64 control slots)."""
    with Echod({"threads": 2}) as d:
        d.signal(signal.SIGUSR2)
        d.wait_for_log("test hook: worker 0 stalls now", timeout=5)
        t0 = time.monotonic()
        rc, out, err = d.ctl("-t", "1", "connections")
        assert rc == 3 and "did not answer within 1 s" in err, (rc, err)
        assert time.monotonic() - t0 < 4
        procs = [subprocess.Popen([ECHOCTL, "-s", d.control_socket, "-t", "2", "connections"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL) for _ in range(70)]
        for p in procs:
            assert p.wait(timeout=20) in (1, 3)  # gave up, or busy
        wait_until(lambda: d.ctl("ping")[0] == 0, timeout=5, what="control socket usable again")
        j = ctl_json(d, "status")
        assert j["threads"] == 2
