# SPDX-License-Identifier: MIT
"""Fault (b): slowloris. 1,000 line-mode connections each trickle one byte a
second for about 10 s (a 10-byte line), while a normal client is answered
promptly. Every trickled line must come back whole at the end; echod's memory
for 1,000 partial lines stays small (a partial line is held in a buffer of at
least 256 bytes, not a 64 KiB read buffer)."""

import resource
import socket
import time

from faultlib import (PREFIX, Echod, Traffic, assert_fds_back, assert_rss_within,
                      quiet_fd_count, recv_until_eof, stats, warm_up)

SLOW = 1000
SECONDS = 10
RSS_BOUND_KIB = 4096    # 1,000 x (struct conn + a 256-byte partial line) is ~0.6 MiB
MAX_RTT_S = 2.0         # "promptly", generous for a shared 2-core machine (typically < 50 ms)


def test_slowloris_1000_trickling_connections():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SLOW + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, SLOW + 200), hard))
    with Echod({"threads": 2, "mode": "line"}) as d:
        warm_up(d, mode="line", size=4000)
        fds0 = quiet_fd_count(d)
        rss0 = d.rss_kib()
        s0 = stats(d)
        slow = []
        lines = []
        with Traffic(d, clients=2, mode="line", size=200, pause=0.05) as t:
            for i in range(SLOW):
                slow.append(d.connect())
                lines.append(b"s%09d" % i)  # SECONDS bytes, then "\n"
            assert len(lines[0]) == SECONDS
            peak_rss = 0
            for k in range(SECONDS):
                t0 = time.monotonic()
                for s, line in zip(slow, lines):
                    s.send(line[k:k + 1])
                peak_rss = max(peak_rss, d.rss_kib())
                assert d.running(), "echod died"
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
            assert stats(d)["connections_active"] >= SLOW
            for s in slow:
                s.send(b"\n")
                s.shutdown(socket.SHUT_WR)
            for i, (s, line) in enumerate(zip(slow, lines)):
                got = recv_until_eof(s, timeout=20)
                assert got == PREFIX + line + b"\n", f"slow client {i} got {got!r}"
                s.close()
        t.check(max_rtt=MAX_RTT_S, what="the normal client next to 1,000 slowloris clients")
        rtts = sorted(t.rtts)
        s1 = stats(d)
        assert s1["lines"] - s0["lines"] == SLOW + t.roundtrips
        assert s1["connections_timed_out"] == s0["connections_timed_out"]
        assert_fds_back(d, fds0)
        growth = assert_rss_within(d, rss0, RSS_BOUND_KIB, "after slowloris")
        assert peak_rss - rss0 <= RSS_BOUND_KIB, (
            f"RSS grew by {peak_rss - rss0} KiB while 1,000 partial lines were held "
            f"(bound {RSS_BOUND_KIB} KiB)")
        print(f"\nslowloris: {SLOW} x {SECONDS} s; normal client {t.roundtrips} round trips, "
              f"median {rtts[len(rtts) // 2] * 1000:.1f} ms, max {rtts[-1] * 1000:.1f} ms; "
              f"peak RSS +{peak_rss - rss0} KiB, end +{growth} KiB")
