# SPDX-License-Identifier: MIT
"""Fault (d): connections reset (SO_LINGER 0, so close() sends RST) in the
middle of a large echo: while echod is reading, while it has a reply pending
that the client does not read, and after part of the reply was read; in echo
and line mode. echod must not crash, must close each reset connection
(connections_active back to 0, fds back to the baseline), keep its counters
consistent, and keep serving the others byte for byte."""

import time

import pytest

from faultlib import (Echod, Traffic, assert_fds_back, assert_rss_within, payload,
                      probe_echo, quiet_fd_count, set_linger_zero, stats, wait_until, warm_up)

ROUNDS = 6
PER_ROUND = 25
BIG = 64 << 20         # more than fits in the socket buffers: resets hit mid-echo
RSS_BOUND_KIB = 8 * 1024
MAX_RTT_S = 2.0


def one_round(d, mode, rnd):
    """PER_ROUND clients push as much as they can (up to BIG) for 0.6 s; client k
    reads k % 3 == 0: nothing, 1: a little, 2: everything it can; then all
    are reset at once, mid-echo."""
    block = payload(rnd, 64 * 1024)
    if mode == "line":
        block = block.replace(b"\n", b"_")[:-1] + b"\n"
    socks = []
    for k in range(PER_ROUND):
        s = d.connect()
        s.setblocking(False)
        socks.append(s)
    sent = [0] * PER_ROUND
    got = [0] * PER_ROUND
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        for k, s in enumerate(socks):
            if sent[k] < BIG:
                try:
                    sent[k] += s.send(block)
                except BlockingIOError:
                    pass
            if k % 3 == 2 or (k % 3 == 1 and got[k] < 100000):
                try:
                    got[k] += len(s.recv(65536))
                except BlockingIOError:
                    pass
        time.sleep(0.005)
    for s in socks:
        set_linger_zero(s)
        s.close()
    return sum(sent), sum(got)


@pytest.mark.parametrize("mode", ["echo", "line"])
def test_reset_in_the_middle_of_large_echoes(mode):
    with Echod({"threads": 2, "mode": mode}) as d:
        warm_up(d, mode=mode, size=4000)
        fds0 = quiet_fd_count(d)
        rss0 = d.rss_kib()
        s0 = stats(d)
        total_sent = total_got = 0
        with Traffic(d, clients=4, mode=mode, size=3000, pause=0.02) as t:
            for rnd in range(ROUNDS):
                sent, got = one_round(d, mode, rnd)
                total_sent += sent
                total_got += got
                assert d.running(), f"echod died in round {rnd}:\n{d.log()}"
            if mode == "echo":
                probe_echo(d)
        t.check(max_rtt=MAX_RTT_S, what=f"well-behaved {mode} clients next to resets")
        resets = ROUNDS * PER_ROUND
        wait_until(lambda: stats(d)["connections_active"] == 0, timeout=10,
                   what="every reset connection closed (connections_active 0)")
        s1 = stats(d)
        opened = resets + t.connections + (1 if mode == "echo" else 0)
        assert s1["connections_total"] - s0["connections_total"] == opened
        rx = s1["bytes_received"] - s0["bytes_received"]
        tx = s1["bytes_sent"] - s0["bytes_sent"]
        assert rx <= total_sent + t.bytes_checked + 64, "echod counted bytes nobody sent"
        if mode == "echo":
            assert tx <= rx, f"echo mode sent {tx} bytes but received only {rx}"
        assert tx >= total_got, f"clients read {total_got} bytes, echod counted {tx} sent"
        assert_fds_back(d, fds0)
        growth = assert_rss_within(d, rss0, RSS_BOUND_KIB, f"after {resets} resets ({mode})")
        assert "assert" not in d.log().lower()
        print(f"\nreset ({mode}): {resets} connections reset mid-echo after pushing "
              f"{total_sent >> 20} MiB (echod read {rx >> 20} MiB, sent {tx >> 20} MiB); "
              f"RSS +{growth} KiB; well-behaved max round trip {t.max_rtt * 1000:.1f} ms")
