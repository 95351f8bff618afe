# SPDX-License-Identifier: MIT
"""echoctl against a real echod carrying live echo traffic: every command, its
human/JSON/Prometheus output, exact counters, exit codes."""

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from ctl_util import Control, EchoTraffic, ctl_json, ctl_ok, stats, thread_sums
from harness import (ECHOCTL, Echod, echo_roundtrip, recv_exactly, recv_until_eof, run_echoctl,
                     wait_until)

REQUIRED_KEYS = ("version", "pid", "uptime_seconds", "threads", "connections_active",
                 "connections_total", "connections_rejected", "connections_timed_out",
                 "bytes_received", "bytes_sent", "reloads", "reloads_failed")


def roundtrip(s, payload):
    s.sendall(payload)
    assert recv_exactly(s, len(payload)) == payload


def test_status():
    with Echod({"threads": 3}) as d, EchoTraffic(d):
        out = ctl_ok(d, "status")
        assert re.match(rf"echod \S+ is running \(pid {d.proc.pid}\), up \d+s\n", out), out
        assert f"listening:    127.0.0.1:{d.port}\n" in out
        assert "threads:      3\n" in out
        assert "mode:         echo\n" in out
        assert re.search(r"connections:  1 active \(max 10000\), 1 total, 0 rejected, "
                         r"0 timed out\n", out), out
        assert "reloads:      0 ok, 0 failed\n" in out
        assert "log level:    info\n" in out
        assert f"config:       {d.config_path}\n" in out
        j = ctl_json(d, "status")
        for k in REQUIRED_KEYS:
            assert k in j, k
        assert j["pid"] == d.proc.pid
        assert j["listeners"] == [f"127.0.0.1:{d.port}"]
        assert j["socket_activated"] is False
        assert j["mode"] == "echo" and j["log_level"] == "info"
        assert "ok" not in j  # --json prints the payload, not the envelope


def test_stats_json_keys_and_exact_byte_counters():
    with Echod({"threads": 2}) as d:
        with EchoTraffic(d, size=777) as live:
            # Meanwhile other clients, with payloads the counters must add up to.
            clients = []
            expected = live_in = 0
            for i, n in enumerate((1, 4096, 65537, 300000)):
                s = d.connect()
                clients.append(s)
                payload = bytes((i * 7 + k) % 251 for k in range(n))
                roundtrip(s, payload)
                expected += n
            mid = stats(d)  # counters move while traffic flows; never backwards
            live.wait_roundtrips(5)
        for s in clients:
            s.close()
        live_in = live.sent
        wait_until(lambda: stats(d)["connections_active"] == 0, what="all connections closed")
        j = stats(d)
        for k in REQUIRED_KEYS:
            assert k in j, f"stats --json lacks {k}"
        assert j["pid"] == d.proc.pid and j["threads"] == 2
        assert isinstance(j["version"], str) and j["version"]
        assert j["bytes_received"] == expected + live_in, j
        assert j["bytes_sent"] == expected + live_in, j
        assert j["connections_total"] == 5
        assert j["connections_rejected"] == 0 and j["connections_timed_out"] == 0
        assert j["reloads"] == 0 and j["reloads_failed"] == 0
        assert mid["bytes_received"] <= j["bytes_received"]
        assert thread_sums(j)["bytes_received"] == j["bytes_received"]


def test_stats_human_is_name_value_per_line():
    with Echod({"threads": 2}) as d, d.connect() as s:
        roundtrip(s, b"x" * 1234)
        out = ctl_ok(d, "stats")
        values = {}
        for line in out.splitlines():
            name, value = line.split(" ")
            assert re.fullmatch(r"[a-z_]+|thread\d+\.[a-z_]+", name), line
            values[name] = value
        for k in REQUIRED_KEYS:
            assert k in values, k
        assert values["bytes_received"] == values["bytes_sent"] == "1234"
        assert values["pid"] == str(d.proc.pid)
        total = sum(int(values[f"thread{i}.bytes_received"]) for i in range(2))
        assert total == 1234


def open_spread(d, nthreads=8, per_thread=10, size=50000):
    """Connections opened and used from several threads at once, so that more
    than one worker accepts (one client at a time tends to land on one worker).
    Returns [(sock, bytes echoed)]."""
    out, errors, lock = [], [], threading.Lock()

    def run(k):
        try:
            for i in range(per_thread):
                s = d.connect()
                n = size + k * 100 + i
                roundtrip(s, bytes([k + i & 0xff]) * n)
                with lock:
                    out.append((s, n))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors, errors
    return out


def test_per_thread_sums_equal_totals():
    with Echod({"threads": 4}) as d:
        conns = []
        try:
            for _ in range(5):
                conns += open_spread(d)
                used = sum(1 for w in stats(d)["workers"] if w["connections_total"] > 0)
                if used >= 2:
                    break
            assert used >= 2, "all connections landed on one worker; the sums prove nothing"
            for s, _ in conns[:10]:
                s.close()
            want_active = len(conns) - 10
            wait_until(lambda: stats(d)["connections_active"] == want_active, what="10 closed")
            j = stats(d)
            sums = thread_sums(j)
            for k, v in sums.items():
                assert v == j[k], f"{k}: threads sum to {v}, total says {j[k]}"
            assert j["bytes_received"] == j["bytes_sent"] == sum(n for _, n in conns)
            assert j["connections_total"] == len(conns)
            assert [w["thread"] for w in j["workers"]] == [0, 1, 2, 3]
            # `threads` agrees with `stats`, row by row.
            t = ctl_json(d, "threads")
            assert t["threads"] == 4
            assert t["workers"] == j["workers"]
            table = ctl_ok(d, "threads").splitlines()[1:]
            for row, w in zip(table, j["workers"]):
                f = row.split()
                assert [int(x) for x in f[:7]] == [
                    w["thread"], w["connections_active"], w["connections_total"],
                    w["connections_rejected"], w["connections_timed_out"],
                    w["bytes_received"], w["bytes_sent"]], (row, w)
        finally:
            for s, _ in conns:
                s.close()


def test_stats_totals_match_thread_sums_under_load():
    """One `stats` reply is one snapshot: its totals equal the sum of its own
    per-thread rows even while counters move (a monitoring system compares them)."""
    with Echod({"threads": 2}) as d:
        traffic = [EchoTraffic(d, size=200, pause=0) for _ in range(4)]
        for t in traffic:
            t.__enter__()
        mismatches, n = [], 0
        try:
            with Control(d.control_socket) as c:
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    j = c.request("stats")
                    n += 1
                    sums = thread_sums(j)
                    for k in ("bytes_received", "bytes_sent", "connections_active"):
                        if sums[k] != j[k]:
                            mismatches.append((k, j[k], sums[k]))
            for t in traffic:
                t.wait_roundtrips(1)
        finally:
            for t in traffic:
                t.stop()
        assert not mismatches, (
            f"{len(mismatches)} mismatches in {n} stats replies under load: totals differ "
            f"from the sum of the same reply's per-thread rows, e.g. {mismatches[:3]} "
            "(daemon/control-cmd.c: cmd_stats reads the worker counters twice, in "
            "add_summary() and again in workers_array())")


def have_promtool():
    return shutil.which("promtool") is not None


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.skipif(not have_promtool(), reason="promtool not installed (Debian: prometheus)")
def test_prometheus_passes_promtool_with_labels_on_every_series():
    with Echod({"threads": 3}) as d, EchoTraffic(d, size=500) as live:
        live.wait_roundtrips(3)
        rc, out = promtool_check(ctl_ok(d, "--prometheus", "stats"))
        assert rc == 0, out
        text = ctl_ok(d, "-p", "--label", "instance=x", "-l", "job=echo", "stats")
        rc, msg = promtool_check(text)
        assert rc == 0, msg
        families = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ")
                families[name] = typ
                continue
            if line.startswith("#"):
                assert line.startswith("# HELP echod_"), line
                continue
            m = re.fullmatch(r"(echod_[a-z_]+)\{([^}]*)\} (\d+)", line)
            assert m, f"series without labels or not echod_: {line!r}"
            name, labels = m.group(1), m.group(2)
            assert 'instance="x"' in labels and 'job="echo"' in labels, line
            assert name in families, f"{name} has no TYPE line"
            if families[name] == "counter":
                assert name.endswith("_total"), name
        for name in ("echod_bytes_received_total", "echod_bytes_sent_total",
                     "echod_connections_total", "echod_connections_rejected_total",
                     "echod_connections_timed_out_total", "echod_connections_active",
                     "echod_reloads_total", "echod_reloads_failed_total"):
            assert name in families, name
        for t in range(3):
            assert re.search(rf'^echod_bytes_received_total\{{thread="{t}",instance="x",'
                             rf'job="echo"\}} \d+$', text, re.M), t
        assert not re.search(r"_total_total", text)


@pytest.mark.skipif(not have_promtool(), reason="promtool not installed (Debian: prometheus)")
def test_prometheus_label_values_are_escaped():
    with Echod() as d:
        text = ctl_ok(d, "-p", "-l", 'instance=a"b\\c', "stats")
        assert 'instance="a\\"b\\\\c"' in text
        rc, msg = promtool_check(text)
        assert rc == 0, msg
        for bad in ("=x", "1a=x", "noequals", "a-b=x"):
            rc, out, err = d.ctl("-p", "-l", bad, "stats")
            assert rc == 2 and "--label" in err, (bad, rc, err)


def test_prometheus_values_match_json():
    with Echod({"threads": 2}) as d, d.connect() as s:
        roundtrip(s, b"y" * 4321)
        text = ctl_ok(d, "-p", "stats")
        got = sum(int(v) for v in re.findall(r'^echod_bytes_received_total\{thread="\d+"\} (\d+)$',
                                             text, re.M))
        assert got == 4321


def test_threads_table():
    with Echod({"threads": 3}) as d, EchoTraffic(d, size=100) as live:
        live.wait_roundtrips(2)
        out = ctl_ok(d, "threads").splitlines()
        assert out[0].split() == ["THREAD", "ACTIVE", "TOTAL", "REJECTED", "TIMEDOUT",
                                  "BYTES_IN", "BYTES_OUT", "LINES"]
        rows = [line.split() for line in out[1:]]
        assert [r[0] for r in rows] == ["0", "1", "2"]
        assert sum(int(r[1]) for r in rows) == 1  # the live connection
        assert sum(int(r[2]) for r in rows) == 1


def test_connections_rows_match_client_sockets():
    with Echod({"threads": 2}) as d:
        socks = [d.connect() for _ in range(6)]
        try:
            sent = {}
            for i, s in enumerate(socks):
                roundtrip(s, b"z" * (100 + i))
                host, port = s.getsockname()
                sent[f"{host}:{port}"] = 100 + i
            rows = ctl_json(d, "connections")["connections"]
            assert {r["peer"] for r in rows} == set(sent)
            ids = [r["id"] for r in rows]
            assert len(set(ids)) == len(ids) and all(isinstance(i, int) and i > 0 for i in ids)
            for r in rows:
                assert r["bytes_received"] == r["bytes_sent"] == sent[r["peer"]], r
                assert r["thread"] in (0, 1)
                assert r["age_seconds"] >= 0 and r["idle_seconds"] >= 0
            human = ctl_ok(d, "connections").splitlines()
            assert human[0].split()[:2] == ["ID", "PEER"]
            assert human[-1] == "6 connections"
            for r in rows:
                assert any(line.split()[:2] == [str(r["id"]), r["peer"]] for line in human), r
        finally:
            for s in socks:
                s.close()


def find_id(d, sock):
    host, port = sock.getsockname()
    for r in ctl_json(d, "connections")["connections"]:
        if r["peer"] == f"{host}:{port}":
            return r["id"]
    raise AssertionError(f"{host}:{port} not in echoctl connections")


def test_kill_closes_that_connection_only():
    with Echod() as d, EchoTraffic(d) as live, d.connect() as victim, d.connect() as other:
        roundtrip(victim, b"before")
        roundtrip(other, b"before")
        vid = find_id(d, victim)
        out = ctl_ok(d, "kill", str(vid))
        assert out == f"connection {vid} closed\n"
        assert recv_until_eof(victim, timeout=5) == b""
        roundtrip(other, b"still served")
        live.wait_roundtrips(3)
        assert vid not in [r["id"] for r in ctl_json(d, "connections")["connections"]]
        assert stats(d)["connections_active"] == 2  # live + other
        # Unknown (or already killed) id: echod reports an error, exit 1.
        for bad in (str(vid), "999999"):
            rc, out, err = d.ctl("kill", bad)
            assert rc == 1 and out == "" and f"no connection {bad}" in err, (rc, out, err)
        rc, out, err = d.ctl("kill", "abc")
        assert rc == 2 and "not a connection id" in err, (rc, err)


def test_reload_ok_and_rejected():
    with Echod({"max_connections": 50}) as d, EchoTraffic(d) as live:
        d.settings["max_connections"] = 60
        d.write_config(d.settings)
        out = ctl_ok(d, "reload")
        assert out == "configuration reloaded (1 reloads so far)\n"
        assert ctl_json(d, "status")["max_connections"] == 60

        # A broken config is rejected with the reason (file:line), the old one kept.
        d.settings["max_connections"] = 70
        d.write_config(d.settings)
        good = open(d.config_path).read()
        with open(d.config_path, "w") as f:
            f.write(good + "bogus_key = 1;\n")
        bad_line = good.count("\n") + 1
        rc, out, err = d.ctl("reload")
        assert rc == 1, (rc, out, err)
        assert out == ""
        assert f"{d.config_path}:{bad_line}" in err and "bogus_key" in err, err
        j = ctl_json(d, "status")
        assert j["max_connections"] == 60
        assert j["reloads"] == 1 and j["reloads_failed"] == 1
        live.wait_roundtrips(5)
        with d.connect() as s:
            roundtrip(s, b"old config still serving")
        assert "reload failed" in d.log()


def test_log_level_show_set_invalid():
    with Echod({"log_level": "info"}) as d, EchoTraffic(d):
        assert ctl_ok(d, "log-level") == "info\n"
        assert ctl_ok(d, "log-level", "debug") == "debug\n"
        assert ctl_ok(d, "log-level") == "debug\n"
        assert ctl_json(d, "status")["log_level"] == "debug"
        assert ctl_json(d, "log-level") == {"log_level": "debug", "protocol": 1}
        rc, out, err = d.ctl("log-level", "verbose")
        assert rc == 2 and out == "", (rc, out, err)
        assert '"verbose" is not a log level' in err and "debug" in err, err
        assert ctl_ok(d, "log-level") == "debug\n"
        # "until the next reload"
        ctl_ok(d, "reload")
        assert ctl_ok(d, "log-level") == "info\n"
        assert "log level set to debug" in d.log()


def test_stats_reset_zeroes_and_nothing_else_does():
    with Echod({"threads": 2}) as d, d.connect() as held:
        roundtrip(held, b"a" * 1000)
        d.write_config(d.settings)
        ctl_ok(d, "reload")
        before = stats(d)
        assert before["bytes_received"] == 1000 and before["reloads"] == 1
        # Reading, listing and reloading never reset anything.
        for args in (("status",), ("stats",), ("threads",), ("connections",),
                     ("-p", "stats"), ("log-level",), ("ping",), ("reload",)):
            ctl_ok(d, *args)
            now = stats(d)
            for k in REQUIRED_KEYS[2:] + ("control_requests",):
                assert now[k] >= before[k], f"{k} went down after echoctl {args}"
            before = now
        assert before["bytes_received"] == 1000 and before["connections_total"] == 1

        assert ctl_ok(d, "stats-reset") == "counters reset\n"
        j = stats(d)
        for k in ("connections_total", "connections_rejected", "connections_timed_out",
                  "bytes_received", "bytes_sent", "reloads", "reloads_failed",
                  "control_denied", "control_errors", "lines"):
            assert j[k] == 0, f"{k} = {j[k]} after stats-reset"
        assert j["control_requests"] == 1  # this `stats`
        assert j["connections_active"] == 1, "stats-reset must not touch the gauge"
        assert all(w["bytes_received"] == 0 for w in j["workers"])
        # Counting goes on from zero, exactly.
        roundtrip(held, b"b" * 321)
        j = stats(d)
        assert j["bytes_received"] == j["bytes_sent"] == 321
        assert thread_sums(j)["bytes_received"] == 321


def test_ping():
    with Echod() as d:
        assert ctl_ok(d, "ping") == "echod is alive\n"


def test_top_without_terminal_prints_plain_lines():
    with Echod({"threads": 2}) as d, EchoTraffic(d, size=4000) as live:
        t0 = time.monotonic()
        out = ctl_ok(d, "top", "-n", "2", timeout=15)
        took = time.monotonic() - t0
        live.wait_roundtrips(1)
        lines = out.splitlines()
        assert len(lines) == 2, out
        assert "\033" not in out
        for line in lines:
            assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d active=1 conn/s=\d+ "
                            r"in/s=\S+ \S+ out/s=\S+ \S+ thread0=\d+/\d+/\d+/\d+ "
                            r"thread1=\d+/\d+/\d+/\d+$", line), line
        assert any("in/s=0 B" not in line for line in lines), \
            f"top shows no traffic while echo traffic flows: {out}"
        assert 1.5 < took < 6, took


def test_rejected_counts_max_connections_refusals():
    with Echod({"max_connections": 3, "threads": 2}) as d, EchoTraffic(d) as live:
        held = [d.connect() for _ in range(2)]
        for s in held:
            roundtrip(s, b"in")
        for _ in range(5):
            with d.connect() as s:
                try:
                    assert recv_until_eof(s, timeout=5) == b""
                except ConnectionResetError:
                    pass
        wait_until(lambda: stats(d)["connections_rejected"] >= 5, timeout=5,
                   what="5 rejections counted")
        j = stats(d)
        assert j["connections_rejected"] == 5
        assert j["connections_total"] == 3 and j["connections_active"] == 3
        assert thread_sums(j)["connections_rejected"] == 5
        live.wait_roundtrips(3)
        for s in held:
            s.close()


def test_timed_out_counts_idle_closes():
    with Echod({"idle_timeout": 1, "threads": 2}) as d, EchoTraffic(d, pause=0.05) as live:
        idle = [d.connect() for _ in range(3)]
        for s in idle:
            roundtrip(s, b"hi")
        for s in idle:
            assert recv_until_eof(s, timeout=6) == b""
            s.close()
        wait_until(lambda: stats(d)["connections_timed_out"] >= 3, timeout=3,
                   what="3 timeouts counted")
        j = stats(d)
        assert j["connections_timed_out"] == 3, "the busy live connection timed out too?"
        assert j["connections_active"] == 1
        live.wait_roundtrips(3)


def test_config_option_takes_the_socket_from_a_config():
    with Echod() as d:
        rc, out, err = run_echoctl(["-c", d.config_path, "ping"])
        assert (rc, out, err) == (0, "echod is alive\n", "")
        j = json.loads(run_echoctl(["-c", d.config_path, "--json", "status"])[1])
        assert j["pid"] == d.proc.pid
        # -c after -s wins, as the last option does.
        rc, out, err = run_echoctl(["-s", "/nonexistent/x.sock", "-c", d.config_path, "ping"])
        assert rc == 0, err
        rc, out, err = run_echoctl(["-c", os.path.join(d.dir, "missing.conf"), "ping"])
        assert rc == 2 and "no such file" in err, (rc, err)
        nosock = os.path.join(d.dir, "nosock.conf")
        with open(nosock, "w") as f:
            f.write('control_socket = "";\n')
        rc, out, err = run_echoctl(["-c", nosock, "ping"])
        assert rc == 2 and "no control socket" in err, (rc, err)
        broken = os.path.join(d.dir, "broken.conf")
        with open(broken, "w") as f:
            f.write("port = 1;\nthis is not a config\n")
        rc, out, err = run_echoctl(["-c", broken, "ping"])
        assert rc == 2 and f"{broken}:2" in err, (rc, err)


def test_not_running_exits_3_with_hint(tmp_path):
    missing = str(tmp_path / "control.sock")
    for cmd in (["status"], ["ping"], ["stats"], ["--json", "stats"], ["reload"]):
        rc, out, err = run_echoctl(["-s", missing] + cmd)
        assert rc == 3 and out == "", (cmd, rc, out, err)
        assert err == (f"echoctl: cannot connect to {missing}: No such file or directory "
                       "(is echod running?)\n"), err
    # A socket file nobody listens on (echod killed -9): refused, also 3.
    stale = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    rc, out, err = run_echoctl(["-s", stale, "status"])
    assert rc == 3 and "Connection refused (is echod running?)" in err, (rc, err)
    # After a clean stop the socket is gone.
    d = Echod()
    with d:
        ctl_ok(d, "ping")
        assert d.stop() == 0
        assert not os.path.exists(d.control_socket)
        rc, out, err = d.ctl("status")
        assert rc == 3 and "(is echod running?)" in err


def test_usage_errors_exit_2(tmp_path):
    sock = str(tmp_path / "none.sock")  # never contacted: usage is checked first
    cases = [
        ([], "no command given"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["--bogus", "status"], "unknown option '--bogus'"),
        (["-x", "status"], "unknown option"),
        (["kill"], "usage: echoctl kill ID"),
        (["kill", "1", "2"], "usage: echoctl kill ID"),
        (["status", "extra"], "usage: echoctl status"),
        (["log-level", "a", "b"], "usage: echoctl log-level [LEVEL]"),
        (["-p", "status"], "--prometheus applies to stats only"),
        (["top", "-n", "0"], "--count"),
        (["-t", "abc", "ping"], "--timeout"),
        (["-t", "0", "ping"], "--timeout"),
        (["ping", "-s"], "needs an argument"),
    ]
    for args, msg in cases:
        rc, out, err = run_echoctl(["-s", sock] + args)
        assert rc == 2, (args, rc, out, err)
        assert msg in err, (args, err)
        assert err.startswith("echoctl: "), err


def test_help_lists_every_command_and_version():
    rc, out, err = run_echoctl(["--help"])
    assert rc == 0 and err == ""
    for cmd in ("status", "stats", "threads", "connections", "kill", "reload", "log-level",
                "stats-reset", "ping", "top"):
        assert re.search(rf"^  {re.escape(cmd)}\b", out, re.M), cmd
    for opt in ("--socket", "--config", "--json", "--prometheus", "--label", "--count",
                "--timeout", "--help", "--version"):
        assert opt in out, opt
    assert run_echoctl(["-h"])[1] == out
    rc, out, err = run_echoctl(["-V"])
    assert rc == 0 and re.fullmatch(r"echoctl \S+\n", out), out


def test_echo_traffic_byte_exact_through_echo_roundtrip_helper():
    """The counters also agree with a client that half-closes (echo_roundtrip)."""
    with Echod() as d:
        payload = os.urandom(200000)
        with d.connect() as s:
            assert echo_roundtrip(s, payload) == payload
        wait_until(lambda: stats(d)["connections_active"] == 0, what="closed")
        j = stats(d)
        assert j["bytes_received"] == j["bytes_sent"] == 200000


def test_stats_human_shows_only_counters():
    """`stats` prints echod's counters, not the reply envelope's fields."""
    with Echod() as d:
        names = [line.split(" ")[0] for line in ctl_ok(d, "stats").splitlines()]
        assert "ok" not in names
        assert "protocol" not in names, (
            "`echoctl stats` prints the envelope's protocol version as if it were a counter "
            "(`protocol 1`; ctl/format.c format_stats -> print_numbers prints every integer "
            "key of the reply)")


def test_connections_ipv6_peer_format():
    with Echod({"host": "::1"}) as d:
        with socket.create_connection(("::1", d.port), timeout=10) as s:
            roundtrip(s, b"six")
            host, port = s.getsockname()[:2]
            rows = ctl_json(d, "connections")["connections"]
            assert [r["peer"] for r in rows] == [f"[{host}]:{port}"]
            assert ctl_json(d, "status")["listeners"] == [f"[::1]:{d.port}"]


def test_timeout_option_when_echod_does_not_answer(tmp_path):
    """A control socket that accepts but never replies (a hung echod): -t bounds the wait."""
    path = str(tmp_path / "mute.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    try:
        t0 = time.monotonic()
        rc, out, err = run_echoctl(["-s", path, "-t", "1", "status"], timeout=10)
        took = time.monotonic() - t0
        assert rc == 3 and err == f"echoctl: {path} did not answer within 1 s\n", (rc, err)
        assert 0.9 < took < 4, took
    finally:
        srv.close()
    # And one that hangs up without replying.
    path = str(tmp_path / "hangup.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    try:
        def read_then_hang_up():
            conn = srv.accept()[0]
            conn.recv(100)
            conn.close()

        t = threading.Thread(target=read_then_hang_up, daemon=True)
        t.start()
        rc, out, err = run_echoctl(["-s", path, "-t", "3", "ping"], timeout=10)
        assert rc == 3 and "closed the connection without a reply" in err, (rc, err)
    finally:
        srv.close()


def test_socket_path_too_long_is_usage():
    rc, out, err = run_echoctl(["-s", "/tmp/" + "x" * 200, "ping"])
    assert rc == 2 and "too long" in err, (rc, err)


def test_top_on_a_terminal_quits_on_q_and_ctrl_c():
    with Echod() as d:
        for how in ("q", "sigint"):
            master, slave = pty.openpty()
            p = subprocess.Popen([ECHOCTL, "-s", d.control_socket, "top"], stdin=slave,
                                 stdout=slave, stderr=slave, start_new_session=True)
            os.close(slave)
            out = b""
            try:
                deadline = time.monotonic() + 5
                while b"THREAD" not in out and time.monotonic() < deadline:
                    if select.select([master], [], [], 0.1)[0]:
                        out += os.read(master, 65536)
                assert b"\033[H\033[2J" in out and b"q to quit" in out, out
                if how == "q":
                    os.write(master, b"q")
                else:
                    p.send_signal(signal.SIGINT)
                assert p.wait(timeout=5) == 0, how
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                os.close(master)
