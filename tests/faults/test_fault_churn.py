# SPDX-License-Identifier: MIT
"""Fault (e): 100,000 connect/send/close cycles from 4 client processes,
next to a long-lived well-behaved client. Most cycles check their echo; one
in ten closes right after sending (its echo may meet a closed socket: RST),
one in ten closes without sending. Afterwards echod holds exactly the fds it
held before, its RSS grew by less than the bound, and connections_total went
up by exactly the number of cycles (plus the well-behaved connections).

Bounded: the cycles stop after MAX_S seconds whatever the count; on the
2-core reference machine 100,000 cycles take about 12-20 s."""

import multiprocessing as mp
import os
import socket
import time

from faultlib import (Echod, Traffic, assert_fds_back, assert_rss_within, quiet_fd_count,
                      stats, warm_up)

CYCLES = 100_000
PROCS = 4
MAX_S = 60.0
RSS_BOUND_KIB = 4096
MAX_RTT_S = 2.0


def churn(port, n, deadline, result):
    done = bad = 0
    try:
        for i in range(n):
            if time.time() >= deadline:
                break
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", port))
                kind = i % 10
                if kind == 1:
                    s.sendall(b"gone %010d\n" % i)
                elif kind != 0:
                    msg = b"%05d:%010d\n" % (os.getpid() % 100000, i)
                    s.sendall(msg)
                    got = b""
                    while len(got) < len(msg):
                        b = s.recv(len(msg) - len(got))
                        if not b:
                            break
                        got += b
                    if got != msg:
                        bad += 1
            finally:
                s.close()
            done += 1
    except OSError as e:
        result.put((done, bad, f"{type(e).__name__}: {e}"))
        return
    result.put((done, bad, None))


def test_100k_connect_send_close_cycles():
    with Echod({"threads": 2}) as d:
        warm_up(d)
        # A first round of churn, so allocator free lists exist before the baseline.
        q = mp.Queue()
        churn(d.port, 2000, time.time() + 30, q)
        q.get()
        fds0 = quiet_fd_count(d)
        rss0 = d.rss_kib()
        s0 = stats(d)
        ctx = mp.get_context("fork")
        result = ctx.Queue()
        with Traffic(d, clients=2, size=1500, pause=0.02) as t:
            t0 = time.monotonic()
            deadline = time.time() + MAX_S
            procs = [ctx.Process(target=churn, args=(d.port, CYCLES // PROCS, deadline, result))
                     for _ in range(PROCS)]
            for p in procs:
                p.start()
            outcomes = [result.get(timeout=MAX_S + 30) for _ in procs]
            for p in procs:
                p.join(timeout=10)
            elapsed = time.monotonic() - t0
            peak_rss = d.rss_kib()
        t.check(max_rtt=MAX_RTT_S, what="the long-lived client during the churn")
        done = sum(o[0] for o in outcomes)
        bad = sum(o[1] for o in outcomes)
        errors = [o[2] for o in outcomes if o[2]]
        print(f"\nchurn: {done} cycles in {elapsed:.1f} s = {done / elapsed:.0f} cycles/s "
              f"({PROCS} processes); long-lived client max round trip "
              f"{t.max_rtt * 1000:.1f} ms")
        assert not errors, f"client errors: {errors}"
        assert bad == 0, f"{bad} cycles got a wrong or short echo"
        if done < CYCLES:
            print(f"churn: only {done} of {CYCLES} cycles fit in {MAX_S} s")
        assert done >= CYCLES // 4, f"only {done} cycles in {MAX_S} s"
        assert_fds_back(d, fds0)
        s1 = stats(d)
        assert s1["connections_total"] - s0["connections_total"] == done + t.connections, (
            f"connections_total went up by {s1['connections_total'] - s0['connections_total']}"
            f", expected {done} cycles + {t.connections} long-lived")
        assert s1["connections_active"] == 0
        assert s1["connections_rejected"] == s0["connections_rejected"]
        assert s1["accept_errors"] == s0["accept_errors"]
        growth = assert_rss_within(d, rss0, RSS_BOUND_KIB, f"after {done} cycles")
        print(f"churn: fds {fds0} -> {d.fd_count()}, RSS {rss0} -> {d.rss_kib()} KiB "
              f"(+{growth}, peak during churn +{peak_rss - rss0})")
