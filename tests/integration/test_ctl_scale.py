# SPDX-License-Identifier: MIT
"""How long `echoctl stats` and `echoctl connections` take with thousands of
idle connections open, and whether echo throughput dips meanwhile. Measured
and printed (for the issue's closing note), only sanity-checked: the rows must
all be there and echo traffic must stay correct."""

import json
import resource
import statistics
import subprocess
import time

import pytest

from ctl_util import Control, stats
from harness import Echod, wait_until

IDLE = 10000


BULK = r"""
import json, socket, sys, threading, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
block = bytes(range(256)) * 256
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
samples, total, error = [], 0, None
print("ready", flush=True)
try:
    while not stop.is_set():
        t0 = time.monotonic()
        s.sendall(block)
        got = bytearray()
        while len(got) < len(block):
            b = s.recv(len(block) - len(got))
            if not b:
                raise EOFError("EOF")
            got += b
        if got != block:
            raise ValueError("wrong echo")
        total += len(block)
        now = time.monotonic()
        samples.append((now, total, now - t0))
except Exception as e:
    error = repr(e)
print(json.dumps({"samples": samples, "error": error}), flush=True)
"""


class Bulk:
    """Echo throughput on one connection, 64 KiB out and back in a loop, from
    a child process (this one's GIL and forks would otherwise stall it).
    Records (monotonic time, bytes echoed so far, round-trip seconds)."""

    def __init__(self, d):
        self.p = subprocess.Popen(["/usr/bin/python3", "-c", BULK, str(d.port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline() == "ready\n"
        self.samples = None

    def stop(self):
        """Ends the stream and collects the samples; asserts every echo was right."""
        if self.samples is None:
            out, _ = self.p.communicate(input="", timeout=60)
            result = json.loads(out)
            assert result["error"] is None, result["error"]
            self.samples = result["samples"]

    def window(self, t0, t1):
        """(MB/s, worst round trip in ms) between t0 and t1 (after stop())."""
        inside = [x for x in self.samples if t0 <= x[0] <= t1]
        before = [x for x in self.samples if x[0] < t0]
        if not inside:
            return 0.0, float("inf")
        start = before[-1][1] if before else 0
        return (inside[-1][1] - start) / (t1 - t0) / 1e6, max(x[2] for x in inside) * 1000


HOLDER = r"""
import resource, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 100)), hard))
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
print("ready", flush=True)
sys.stdin.read()
"""


def hold_connections(d, n):
    """n idle connections held by a child process, so that this process (which
    forks echoctl) does not carry 10,000 fds into every fork."""
    p = subprocess.Popen(["/usr/bin/python3", "-c", HOLDER, str(d.port), str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line == "ready\n", f"holder failed: {line!r}"
    return p


def timed(d, *args, runs=3):
    times, out = [], None
    for _ in range(runs):
        t0 = time.monotonic()
        rc, out, err = d.ctl(*args, timeout=60)
        times.append(time.monotonic() - t0)
        assert rc == 0, err
    return statistics.median(times), max(times), out


def timed_raw(d, request, runs=3):
    """The request alone over the protocol, without starting echoctl."""
    times = []
    with Control(d.control_socket, timeout=60) as c:
        for _ in range(runs):
            t0 = time.monotonic()
            r = c.request(request, timeout=60)
            times.append(time.monotonic() - t0)
            assert r["ok"], r
    return statistics.median(times) * 1000


def test_control_commands_with_10000_idle_connections(capsys):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < IDLE + 200:
        pytest.skip(f"fd limit {hard} < {IDLE + 200}")
    report = {}
    with Echod({"threads": 2, "max_connections": IDLE + 100}) as d:
        bulk = Bulk(d)
        holder = None
        try:
            time.sleep(1.5)  # the first half second is warm-up
            t = time.monotonic()
            report["stats_ms_0_conns"] = timed(d, "stats", runs=5)[0] * 1000
            windows = {"echo_MBps_baseline": (t - 1.0, t)}

            t0 = time.monotonic()
            holder = hold_connections(d, IDLE)
            wait_until(lambda: stats(d)["connections_active"] == IDLE + 1, timeout=30,
                       interval=0.1, what=f"{IDLE} connections accepted")
            report["open_10000_s"] = time.monotonic() - t0

            time.sleep(1.0)
            t = time.monotonic()
            windows["echo_MBps_10k_idle"] = (t - 1.0, t)

            t1 = time.monotonic()
            med, worst, _ = timed(d, "stats", runs=10)
            report["stats_ms"] = (med * 1000, worst * 1000)
            report["stats_raw_ms"] = timed_raw(d, "stats", runs=10)
            t2 = time.monotonic()
            med, worst, out = timed(d, "connections", runs=3)
            report["connections_ms"] = (med * 1000, worst * 1000)
            assert out.splitlines()[-1] == f"{IDLE + 1} connections"
            med, worst, out = timed(d, "--json", "connections", runs=3)
            report["connections_json_ms"] = (med * 1000, worst * 1000)
            assert len(json.loads(out)["connections"]) == IDLE + 1
            report["connections_json_bytes"] = len(out)
            report["connections_raw_ms"] = timed_raw(d, "connections", runs=3)
            t3 = time.monotonic()

            windows["echo_MBps_during_stats"] = (t1, t2)
            windows["echo_MBps_during_connections"] = (t2, t3)
            report["echod_rss_kib"] = d.rss_kib()
        finally:
            if holder:
                holder.stdin.close()
                holder.wait(timeout=30)
            bulk.stop()
    for k, (a, b) in windows.items():
        report[k] = bulk.window(a, b)
    with capsys.disabled():
        print("\n--- echoctl with %d idle connections (plus one bulk echo stream) ---" % IDLE)
        print(f"open {IDLE} connections: {report['open_10000_s']:.2f} s; "
              f"echod RSS {report['echod_rss_kib'] / 1024:.0f} MiB")
        print(f"echoctl stats, no idle clients: median {report['stats_ms_0_conns']:.1f} ms")
        print("echoctl stats:               median %.1f ms, worst %.1f ms"
              % report["stats_ms"])
        print(f"  raw 'stats' request:       median {report['stats_raw_ms']:.1f} ms")
        print("echoctl connections:         median %.1f ms, worst %.1f ms"
              % report["connections_ms"])
        print("echoctl --json connections:  median %.1f ms, worst %.1f ms (%d bytes)"
              % (*report["connections_json_ms"], report["connections_json_bytes"]))
        print(f"  raw 'connections' request: median {report['connections_raw_ms']:.1f} ms")
        for k in ("echo_MBps_baseline", "echo_MBps_10k_idle", "echo_MBps_during_stats",
                  "echo_MBps_during_connections"):
            rate, worst = report[k]
            print(f"{k}: {rate:.1f} MB/s, worst 64 KiB round trip {worst:.1f} ms")
