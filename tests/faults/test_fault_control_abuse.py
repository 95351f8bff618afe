# SPDX-License-Identifier: MIT
"""Fault (g): the control socket abused while echo load runs (limits in
common/proto.h: 4096-byte requests, 64 clients, 10 s timeout). At the same
time: binary junk, an over-long request, 100 clients at once, a client that
never sends, and a client that pipelines requests but never reads. The echo
load is checked byte for byte and must not stall; legitimate echoctl calls
work afterwards; echod's fds and memory return to where they were."""

import json
import socket
import threading
import time

from faultlib import (Echod, Traffic, assert_fds_back, assert_rss_within, quiet_fd_count,
                      stats, warm_up)

TIMEOUT_S = 10          # PROTO_TIMEOUT_MS
MAX_CLIENTS = 64        # PROTO_MAX_CLIENTS
MAX_REQUEST = 4096      # PROTO_MAX_REQUEST
RSS_BOUND_KIB = 4096
MAX_RTT_S = 2.0


def ctl_connect(d):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.control_socket)
    return s


def read_replies(s, timeout):
    """Every reply line until EOF (or timeout); returns (list of dicts, eof)."""
    s.settimeout(timeout)
    data = b""
    eof = False
    try:
        while True:
            b = s.recv(65536)
            if not b:
                eof = True
                break
            data += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        eof = True
    return [json.loads(line) for line in data.splitlines() if line.strip()], eof


def test_control_socket_abuse_during_echo_load():
    with Echod({"threads": 2}) as d:
        warm_up(d)
        fds0 = quiet_fd_count(d)
        rss0 = d.rss_kib()
        results = {}

        def run(name, fn):
            try:
                results[name] = fn()
            except Exception as e:  # noqa: BLE001 - reported below
                results[name] = e

        def junk():
            s = ctl_connect(d)
            s.sendall(b"\x00\xff\xfe binary \x01\x02\n")
            replies, eof = read_replies(s, 5)
            s.close()
            assert eof and len(replies) == 1 and replies[0]["ok"] is False, (replies, eof)
            return replies[0]["error"]

        def too_long():
            s = ctl_connect(d)
            try:
                s.sendall(b"stats " + b"x" * (MAX_REQUEST + 1000))
            except (BrokenPipeError, ConnectionResetError):
                pass
            replies, eof = read_replies(s, 5)
            s.close()
            assert eof and replies and replies[0]["ok"] is False, (replies, eof)
            assert "longer than 4096" in replies[0]["error"], replies
            return replies[0]["error"]

        def silent():
            s = ctl_connect(d)
            t0 = time.monotonic()
            replies, eof = read_replies(s, TIMEOUT_S + 5)
            took = time.monotonic() - t0
            s.close()
            assert eof, f"a silent control client was not dropped in {TIMEOUT_S + 5} s"
            assert replies and "timed out" in replies[0]["error"], replies
            assert TIMEOUT_S - 1 <= took <= TIMEOUT_S + 3, f"dropped after {took:.1f} s"
            return round(took, 1)

        def never_reads():
            s = ctl_connect(d)
            s.setblocking(False)
            sent = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3:
                try:
                    sent += s.send(b"stats\n" * 1000)
                except BlockingIOError:
                    time.sleep(0.05)
                except (BrokenPipeError, ConnectionResetError):
                    break
            # echod reads one request at a time; it must drop us by the timeout.
            s.setblocking(True)
            deadline = time.monotonic() + TIMEOUT_S + 8
            dropped = False
            while time.monotonic() < deadline:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    if not s.recv(1 << 20):
                        dropped = True
                        break
                except ConnectionResetError:
                    dropped = True
                    break
                except socket.timeout:
                    break
            s.close()
            assert dropped, "a control client that never reads was never dropped"
            return sent

        def hundred():
            socks = [ctl_connect(d) for _ in range(100)]
            for s in socks:
                try:
                    s.sendall(b"ping\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
            ok = busy = 0
            for s in socks:
                s.settimeout(10)
                try:
                    line = s.makefile("rb").readline()
                except (ConnectionResetError, socket.timeout):
                    line = b""
                if line:
                    r = json.loads(line)
                    ok += r.get("ok") is True
                    busy += r.get("code") == "busy"
                s.close()
            assert ok + busy == 100, f"100 clients: {ok} ok, {busy} busy"
            assert ok >= 1 and busy >= 1, f"100 clients: {ok} ok, {busy} busy"
            return ok, busy

        with Traffic(d, clients=4, size=4000, pause=0.01, fresh=20) as t:
            # The silent and never-reading clients hold 2 of the 64 slots throughout.
            threads = [threading.Thread(target=run, args=(n, f), daemon=True)
                       for n, f in [("silent", silent), ("never_reads", never_reads)]]
            for th in threads:
                th.start()
            time.sleep(0.2)
            for name, fn in [("junk", junk), ("too_long", too_long), ("hundred", hundred)]:
                run(name, fn)
            for i in range(20):
                run(f"junk{i}", junk)
            # During the abuse a legitimate echoctl still works.
            rc, out, err = d.ctl("--json", "stats")
            assert rc == 0, f"echoctl during abuse: {rc} {err}"
            for th in threads:
                th.join(timeout=TIMEOUT_S + 20)
            rss_peak = d.rss_kib()
        t.check(max_rtt=MAX_RTT_S, what="echo load during control abuse")
        failures = {k: v for k, v in results.items() if isinstance(v, Exception)}
        assert not failures, f"control abuse checks failed: {failures}"
        assert d.running()
        st = stats(d)
        assert st["control_errors"] >= 24, st["control_errors"]
        assert_fds_back(d, fds0)
        growth = assert_rss_within(d, rss0, RSS_BOUND_KIB, "control abuse")
        print(f"\ncontrol abuse: {results['hundred'][0]} ok / {results['hundred'][1]} busy of "
              f"100; silent client dropped after {results['silent']} s; never-reading client "
              f"pushed {results['never_reads']} bytes; echo load {t.roundtrips} round trips, "
              f"max {t.max_rtt * 1000:.1f} ms; RSS +{growth} KiB (peak +{rss_peak - rss0})")
