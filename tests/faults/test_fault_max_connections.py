# SPDX-License-Identifier: MIT
"""Fault (f): max_connections reached. With max_connections = 40, 40 clients
are in (4 of them busy echoing all along); 300 more connect in a burst and
each must be refused at once (EOF without a byte, well under a second),
counted one for one in connections_rejected, while the 40 are unharmed. When
some leave, new clients get their slots."""

import socket
import time

from faultlib import (Echod, Traffic, assert_fds_back, assert_rss_within, quiet_fd_count,
                      recv_exactly, recv_until_eof, stats, wait_until, warm_up)

MAX = 40
BUSY = 4            # of the MAX, these run Traffic all along
REFUSED = 300
REFUSE_S = 1.0      # "at once": EOF within this, for every refused client
RSS_BOUND_KIB = 4096
MAX_RTT_S = 2.0


def refused_at_once(d):
    """Connects and expects EOF without a byte; returns how long it took.
    (echod accepts and closes: EOF, or RST if the close raced with data.)"""
    t0 = time.monotonic()
    with d.connect() as s:
        try:
            got = recv_until_eof(s, timeout=5)
        except ConnectionResetError:
            got = b""
    assert got == b"", f"a client over max_connections got {got!r}"
    return time.monotonic() - t0


def test_max_connections_refuses_at_once_and_counts_exactly():
    with Echod({"threads": 2, "max_connections": MAX}) as d:
        warm_up(d, clients=4)
        fds0 = quiet_fd_count(d)
        rss0 = d.rss_kib()
        s0 = stats(d)
        with Traffic(d, clients=BUSY, size=2000, pause=0.01) as t:
            idle = [d.connect() for _ in range(MAX - BUSY)]
            for i, s in enumerate(idle):
                s.sendall(b"idle %d\n" % i)
                assert recv_exactly(s, len(b"idle %d\n" % i)) == b"idle %d\n" % i
            wait_until(lambda: stats(d)["connections_active"] == MAX, timeout=5,
                       what=f"{MAX} connections active")
            # A burst: all connect first, then each must see EOF at once.
            burst = [d.connect() for _ in range(REFUSED // 2)]
            slowest = 0.0
            t0 = time.monotonic()
            for s in burst:
                s.settimeout(REFUSE_S)
                try:
                    b = s.recv(100)
                except ConnectionResetError:
                    b = b""
                except socket.timeout:
                    raise AssertionError(f"a client over max_connections waited more than "
                                         f"{REFUSE_S} s without EOF") from None
                assert b == b"", f"a client over max_connections got {b!r}"
                s.close()
            slowest = max(slowest, time.monotonic() - t0)
            # And one at a time.
            for _ in range(REFUSED - REFUSED // 2):
                slowest = max(slowest, refused_at_once(d))
            assert slowest < REFUSE_S, f"a refusal took {slowest:.3f} s"
            # The 40 are unharmed.
            for i, s in enumerate(idle):
                msg = b"still here %d\n" % i
                s.sendall(msg)
                assert recv_exactly(s, len(msg)) == msg
            s1 = stats(d)
            assert s1["connections_rejected"] - s0["connections_rejected"] == REFUSED, (
                f"connections_rejected went up by "
                f"{s1['connections_rejected'] - s0['connections_rejected']}, {REFUSED} refused")
            assert s1["connections_active"] == MAX
            assert "max_connections reached" in d.log()
            # Slots freed by leaving clients are usable again, and the limit holds again.
            for s in idle[:10]:
                s.close()
            wait_until(lambda: stats(d)["connections_active"] == MAX - 10, timeout=5,
                       what="freed slots released")
            newcomers = [d.connect() for _ in range(10)]
            for i, s in enumerate(newcomers):
                msg = b"newcomer %d\n" % i
                s.sendall(msg)
                assert recv_exactly(s, len(msg)) == msg, "a freed slot was not usable"
            refused_at_once(d)
            for s in idle[10:] + newcomers:
                s.close()
        t.check(max_rtt=MAX_RTT_S, what="clients in before the limit was reached")
        s2 = stats(d)
        assert s2["connections_rejected"] - s0["connections_rejected"] == REFUSED + 1
        opened = t.connections + MAX - BUSY + REFUSED + 10 + 1
        assert s2["connections_total"] + s2["connections_rejected"] - (
            s0["connections_total"] + s0["connections_rejected"]) == opened
        assert_fds_back(d, fds0)
        growth = assert_rss_within(d, rss0, RSS_BOUND_KIB, "max_connections")
        print(f"\nmax_connections: {REFUSED + 1} refused (slowest {slowest * 1000:.1f} ms), "
              f"all counted; RSS +{growth} KiB")
