# SPDX-License-Identifier: MIT
"""echod-metrics (what echod-metrics.service runs) and node_exporter's
textfile collector, for real: live echod instances with known traffic, the
script writing into a temporary textfile directory, the Debian
prometheus-node-exporter serving that directory on loopback, and its
/metrics read series by series. Instances that do not answer (a stale
socket, a hung one, a unit systemd reports failed) must show echod_up 0."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import NODE_EXPORTER
from ctl_util import stats
from harness import ECHOCTL, Echod, echo_roundtrip, free_port, wait_until

ECHOD_METRICS = os.environ.get("ECHOD_METRICS", "echod-metrics")
SERIES = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

# What a failed echod@crashed.service looks like to echod-metrics; hung is
# reported failed too but has a socket, so it must still appear only once.
FAKE_SYSTEMCTL = """#!/bin/sh
[ "$*" = "list-units --plain --no-legend --state=failed echod.service echod@*.service" ] || {
    echo "fake systemctl: unexpected arguments: $*" >&2; exit 9; }
echo "echod@crashed.service loaded failed failed TCP echo daemon, instance crashed"
echo "echod@hung.service loaded failed failed TCP echo daemon, instance hung"
"""


def parse(text):
    """[(name, {label: value}, float)] of the text format's series lines."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES.fullmatch(line)
        assert m, f"not a series line: {line!r}"
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def values(series, name, **labels):
    """Values of name's series that carry the given labels."""
    return [v for n, ls, v in series
            if n == name and all(ls.get(k) == want for k, want in labels.items())]


def total(series, name, instance):
    got = values(series, name, instance=instance)
    assert got, f"no {name}{{instance={instance!r}}}"
    return sum(got)


def up(series):
    return {ls["instance"]: v for n, ls, v in series if n == "echod_up"}


def promtool_check(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr


class NodeExporter:
    """prometheus-node-exporter on 127.0.0.1:<free port> with only the
    textfile collector, reading textfile_dir."""

    def __init__(self, textfile_dir):
        self.textfile_dir = textfile_dir
        self.proc = None
        self.log = tempfile.TemporaryFile()

    def __enter__(self):
        for _ in range(5):  # another process may take the free port first
            self.port = free_port()
            self.proc = subprocess.Popen(
                [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{self.port}",
                 "--collector.disable-defaults", "--collector.textfile",
                 f"--collector.textfile.directory={self.textfile_dir}",
                 "--web.disable-exporter-metrics"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
            if wait_until(self._ready, timeout=10, what="node_exporter answering") == "up":
                return self
        raise AssertionError(f"node_exporter did not start:\n{self.output()}")

    def _ready(self):
        if self.proc.poll() is not None:
            return "exited"
        try:
            self.get()
            return "up"
        except OSError:
            return None

    def get(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            assert r.status == 200
            return r.read().decode()

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="echod-prom-")
    for sub in ("text", "sock"):
        os.mkdir(os.path.join(d, sub))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_metrics(textfile_dir, socket_dir, systemctl="", seconds="3"):
    """Runs echod-metrics as the service does, with -d and -s for the test's
    directories and -t 3: the hung instance costs 3 s, and a live one has
    time to answer on a busy machine; returns (rc, stderr)."""
    env = dict(os.environ, ECHOCTL=ECHOCTL, SYSTEMCTL=systemctl)
    env.pop("JOURNAL_STREAM", None)
    p = subprocess.run(["sh", ECHOD_METRICS, "-d", textfile_dir, "-s", socket_dir, "-t", seconds],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.stdout == ""
    return p.returncode, p.stderr


def roundtrips(d, sizes):
    """One connection per size, each echoing that many bytes, then closed."""
    for n in sizes:
        with d.connect() as s:
            payload = bytes(i % 251 for i in range(n))
            assert echo_roundtrip(s, payload) == payload


def test_node_exporter_serves_every_instance(tmp):
    textdir, sockdir = os.path.join(tmp, "text"), os.path.join(tmp, "sock")
    fake = os.path.join(tmp, "systemctl")
    with open(fake, "w") as f:
        f.write(FAKE_SYSTEMCTL)
    os.chmod(fake, 0o755)

    a_sizes = [1, 1000, 65536, 70001, 12345]
    a = Echod({"threads": 2, "max_connections": 50,
               "control_socket": os.path.join(sockdir, "a.sock")})
    default = Echod({"threads": 1, "control_socket": os.path.join(sockdir, "control.sock")})
    # gone: a socket nobody listens on (echod killed); hung: one that
    # accepts connections into its backlog and never answers.
    gone = socket.socket(socket.AF_UNIX)
    gone.bind(os.path.join(sockdir, "gone.sock"))
    gone.close()
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(os.path.join(sockdir, "hung.sock"))
    hung.listen(8)
    # Not instances: a regular file, and a socket whose name is no label.
    open(os.path.join(sockdir, "notes.sock"), "w").close()
    odd = socket.socket(socket.AF_UNIX)
    odd.bind(os.path.join(sockdir, 'x"y.sock'))
    odd.listen(1)

    with a, default, hung, odd, default.connect() as c1, default.connect() as c2:
        roundtrips(a, a_sizes)
        for c in (c1, c2):  # held open: 2 active connections on default
            c.sendall(b"hi")
            assert c.recv(2) == b"hi"
        a.write_config(None, raw="threads = \"many\";\n")
        assert a.reload_and_wait() is False
        wait_until(lambda: stats(a)["connections_active"] == 0, what="a's connections closed")
        version = stats(a)["version"]

        t0 = time.time()
        rc, err = run_metrics(textdir, sockdir, systemctl=fake)
        assert rc == 0, err
        assert "instance gone" in err and "instance hung" in err, err
        assert 'x"y.sock: skipped' in err, err
        # One file, replaced by rename: no temporary file left behind.
        assert os.listdir(textdir) == ["echod.prom"]
        path = os.path.join(textdir, "echod.prom")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        with open(path) as f:
            textfile = f.read()
        promtool_check(textfile)

        with NodeExporter(textdir) as ne:
            page = ne.get()
            promtool_check(page)
            series = parse(page)
            assert up(series) == {"a": 1, "default": 1, "gone": 0, "hung": 0, "crashed": 0}
            assert values(series, "node_textfile_scrape_error") == [0]
            mtime = values(series, "node_textfile_mtime_seconds", file=path)
            assert len(mtime) == 1 and t0 - 5 <= mtime[0] <= time.time() + 5, mtime

            assert len(values(series, "echod_connections_total", instance="a")) == 2  # threads
            assert total(series, "echod_connections_total", "a") == len(a_sizes)
            assert total(series, "echod_bytes_received_total", "a") == sum(a_sizes)
            assert total(series, "echod_bytes_sent_total", "a") == sum(a_sizes)
            assert total(series, "echod_connections_active", "a") == 0
            assert total(series, "echod_max_connections", "a") == 50
            assert total(series, "echod_threads", "a") == 2
            assert total(series, "echod_reloads_failed_total", "a") == 1
            assert total(series, "echod_reloads_total", "a") == 0
            assert values(series, "echod_info", instance="a", version=version) == [1]

            assert total(series, "echod_connections_active", "default") == 2
            assert total(series, "echod_connections_total", "default") == 2
            assert total(series, "echod_bytes_received_total", "default") == 4
            assert total(series, "echod_threads", "default") == 1
            assert total(series, "echod_reloads_failed_total", "default") == 0
            # The instances that did not answer have echod_up and nothing else.
            for name in ("gone", "hung", "crashed"):
                assert [n for n, ls, v in series if ls.get("instance") == name] == ["echod_up"]

            # a dies without cleaning up (its socket stays): the next run
            # replaces the file and a shows as down, with no other series.
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)
            rc, err = run_metrics(textdir, sockdir)
            assert rc == 0 and "instance a " in err, err
            assert os.listdir(textdir) == ["echod.prom"]
            series = parse(ne.get())
            assert up(series) == {"a": 0, "default": 1, "gone": 0, "hung": 0}
            assert [n for n, ls, v in series if ls.get("instance") == "a"] == ["echod_up"]
            assert total(series, "echod_connections_active", "default") == 2


def test_missing_textfile_directory_is_an_error(tmp):
    missing = os.path.join(tmp, "no-such-dir")
    rc, err = run_metrics(missing, os.path.join(tmp, "sock"))
    assert rc == 1 and f"{missing}: no such directory" in err, err
    assert not os.path.exists(missing)


def test_timeout_out_of_echoctls_range_is_a_usage_error(tmp):
    """A -t that echoctl refuses would make every instance fail to answer:
    a usage error instead, and the last file stays as it was."""
    textdir = os.path.join(tmp, "text")
    prom = os.path.join(textdir, "echod.prom")
    with open(prom, "w") as f:
        f.write("echod_up{instance=\"a\"} 1\n")
    for bad in ("0", "3601", "007", "-1", "1.5", ""):
        rc, err = run_metrics(textdir, os.path.join(tmp, "sock"), seconds=bad)
        assert rc == 2 and "usage: echod-metrics" in err, (bad, rc, err)
    with open(prom) as f:
        assert f.read() == "echod_up{instance=\"a\"} 1\n"
    assert os.listdir(textdir) == ["echod.prom"]


def test_no_instances_writes_an_empty_family(tmp):
    textdir = os.path.join(tmp, "text")
    rc, err = run_metrics(textdir, os.path.join(tmp, "sock"))
    assert rc == 0 and err == "", err
    with open(os.path.join(textdir, "echod.prom")) as f:
        text = f.read()
    promtool_check(text)
    assert parse(text) == []


def test_sigterm_mid_run_is_a_clean_stop(tmp):
    """systemd stopping a run (package removal, shutdown) sends SIGTERM: the
    script must die of that signal (a clean stop, not a failed unit), take
    its scrape jobs with it and leave no temporary file behind."""
    textdir, sockdir = os.path.join(tmp, "text"), os.path.join(tmp, "sock")
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(os.path.join(sockdir, "hung.sock"))
    hung.listen(8)
    hung.setblocking(False)
    held = []  # the script's connection, accepted and never answered

    def connected():
        try:
            held.append(hung.accept()[0])
        except BlockingIOError:
            pass
        return held

    env = dict(os.environ, ECHOCTL=ECHOCTL, SYSTEMCTL="", TMPDIR=tmp)
    env.pop("JOURNAL_STREAM", None)
    try:
        p = subprocess.Popen(["sh", ECHOD_METRICS, "-d", textdir, "-s", sockdir, "-t", "30"],
                             env=env, stderr=subprocess.DEVNULL)
        # Stopped while echoctl waits for the hung instance's answer.
        wait_until(connected, timeout=10, what="echoctl connected")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == -signal.SIGTERM
    finally:
        for c in held:
            c.close()
        hung.close()
    assert os.listdir(textdir) == []
    assert sorted(os.listdir(tmp)) == ["sock", "text"]  # its work directory is gone
