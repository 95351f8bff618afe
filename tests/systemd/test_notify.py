# SPDX-License-Identifier: MIT
"""sd_notify and socket activation without systemd: echod runs under
systemd-socket-activate (named fd "echo") with a datagram NOTIFY_SOCKET that
the test binds, so every READY/STATUS/RELOADING/STOPPING/WATCHDOG message can
be checked in order. The real-systemd counterpart is run-nspawn.sh."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
TEST_HOOKS = os.environ.get("ECHOD_TEST_HOOKS") == "true"

pytestmark = pytest.mark.skipif(SOCKET_ACTIVATE is None,
                                reason="systemd-socket-activate not installed")

STATUS_RE = re.compile(r"^STATUS=Serving (\d+) connections? on 127\.0\.0\.1:(\d+) with 2 threads$")


class Activated:
    """echod exec'd by systemd-socket-activate on 127.0.0.1:<free port>.

    The activator binds the port and execs echod (same pid) on the first
    connection, as systemd would. watchdog_usec sets WATCHDOG_USEC, and
    WATCHDOG_PID to echod's pid (or to watchdog_pid when given).
    """

    def __init__(self, tmp_path, settings=None, watchdog_usec=None, watchdog_pid=None,
                 fdname="echo", datagram=False):
        self.dir = tmp_path
        self.port = harness.free_port()
        self.config_path = str(tmp_path / "echod.conf")
        self.write_config(settings)
        self.notify = harness.NotifyListener(str(tmp_path / "notify.sock"))
        self.log_path = tmp_path / "echod.log"
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path)
        for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(k, None)
        # glibc fills fresh malloc() memory with this byte: use of uninitialized
        # heap memory shows up as garbage instead of as a lucky leftover.
        env.setdefault("MALLOC_PERTURB_", "165")
        passed = ["-E", "NOTIFY_SOCKET", "-E", "MALLOC_PERTURB_"]
        # The activator passes on only what -E names; sanitizer builds need theirs.
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"):
            if k in env:
                passed += ["-E", k]
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
            passed += ["-E", "WATCHDOG_USEC", "-E", "WATCHDOG_PID"]
        cmd = [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{self.port}", f"--fdname={fdname}",
               *(["--datagram"] if datagram else []), *passed,
               harness.ECHOD, "-c", self.config_path]
        # exec keeps the pid, so the shell's $$ is echod's pid.
        pid_expr = str(watchdog_pid) if watchdog_pid is not None else "$$"
        script = f'WATCHDOG_PID={pid_expr}; export WATCHDOG_PID; exec "$@"'
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["/bin/sh", "-c", script, "sh", *cmd],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env)
        # The activator says "Listening on ..." once it has bound the port.
        deadline = time.monotonic() + 10
        while "Listening on" not in self.log():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log()
            time.sleep(0.01)

    def write_config(self, settings=None, raw=None):
        base = {"threads": 2, "control_socket": str(self.dir / "control.sock")}
        base.update(settings or {})
        with open(self.config_path, "w") as f:
            f.write(raw if raw is not None else harness.render_config(base))

    def connect(self):
        # The activator listens from the start: connect() succeeds before echod runs.
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def activate(self):
        """First connection: execs echod; returns once READY=1 arrived."""
        s = self.connect()
        s.sendall(b"first\n")
        self.notify.wait_for("READY=1", timeout=10)
        assert s.recv(64) == b"first\n"
        s.close()
        return self

    def log(self):
        return self.log_path.read_text(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.close()


@pytest.fixture
def make(tmp_path):
    made = []

    def factory(**kw):
        a = Activated(tmp_path, **kw)
        made.append(a)
        return a

    yield factory
    for a in made:
        a.close()


def collect(notify, seconds):
    """Every message that arrives within seconds."""
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        msg = notify.poll(left)
        if msg is not None:
            got.append(msg)
    return got


def test_ready_only_once_serving(make):
    a = make()
    s = a.connect()
    s.sendall(b"before ready\n")
    msg = a.notify.wait_for("READY=1", timeout=10)
    assert msg == "READY=1"
    # At READY=1 the passed listener is served: a new client is echoed at once.
    with socket.create_connection(("127.0.0.1", a.port), timeout=2) as c:
        assert harness.echo_roundtrip(c, b"after ready\n") == b"after ready\n"
    assert s.recv(64) == b"before ready\n"
    log = a.log()
    assert "socket-activated with 1 listener; host and port from the config are not used" in log
    # Nothing before READY=1 but STATUS: no premature readiness.
    before = a.notify.messages[:a.notify.messages.index("READY=1")]
    assert before and all(m.startswith("STATUS=") for m in before), before


def test_ready_after_binding_itself(tmp_path):
    """Without passed fds echod binds from the config; READY=1 still means serving."""
    with harness.Echod() as e:
        with socket.create_connection(("127.0.0.1", e.port), timeout=2) as c:
            assert harness.echo_roundtrip(c, b"x\n") == b"x\n"


def test_status_follows_connections(make):
    a = make().activate()
    statuses = [m for m in a.notify.messages if m.startswith("STATUS=")]
    m = STATUS_RE.match(statuses[-1])
    assert m and int(m.group(2)) == a.port, statuses
    held = [a.connect() for _ in range(3)]
    # Updated when it changes, at most once a second.
    msg = a.notify.wait_for("STATUS=Serving 3 connections", timeout=5)
    assert STATUS_RE.match(msg)
    for s in held:
        s.close()
    a.notify.wait_for("STATUS=Serving 0 connections", timeout=5)
    # Nothing changes, so nothing more is sent.
    assert [m for m in collect(a.notify, 2.5) if m.startswith("STATUS=")] == []


def reload_messages(a):
    """SIGHUP, then everything up to and including the next READY=1."""
    before = len(a.notify.messages)
    sent_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    a.proc.send_signal(signal.SIGHUP)
    a.notify.wait_for("READY=1", timeout=10)
    return sent_usec, a.notify.messages[before:]


def check_reloading(msg, sent_usec):
    fields = dict(line.split("=", 1) for line in msg.split("\n") if line)
    assert fields.get("RELOADING") == "1", msg
    # MONOTONIC_USEC in the same datagram, from CLOCK_MONOTONIC.
    usec = int(fields["MONOTONIC_USEC"])
    assert sent_usec <= usec < sent_usec + 5_000_000, (sent_usec, usec)


def test_reload_good_config(make):
    a = make().activate()
    a.write_config({"mode": "line", "line_prefix": "Got: "})
    sent_usec, msgs = reload_messages(a)
    reloading = [m for m in msgs if "RELOADING=1" in m]
    assert len(reloading) == 1, msgs
    check_reloading(reloading[0], sent_usec)
    assert msgs.index(reloading[0]) < msgs.index("READY=1")
    assert not any(m.startswith("STATUS=Reload failed") for m in msgs), msgs
    # The new settings reach every worker (new connections may land on either).
    for _ in range(6):
        with a.connect() as c:
            assert harness.echo_roundtrip(c, b"now line mode\n") == b"Got: now line mode\n"


def test_reload_bad_config(make):
    a = make().activate()
    a.write_config(raw='threads = "many";\n')
    sent_usec, msgs = reload_messages(a)
    reloading = [m for m in msgs if "RELOADING=1" in m]
    assert len(reloading) == 1, msgs
    check_reloading(reloading[0], sent_usec)
    failed = [m for m in msgs if m.startswith("STATUS=Reload failed: ")]
    assert failed and "threads" in failed[0], msgs
    assert msgs.index(reloading[0]) < msgs.index(failed[0]) < msgs.index("READY=1")
    assert a.proc.poll() is None
    with a.connect() as c:
        assert harness.echo_roundtrip(c, b"kept serving\n") == b"kept serving\n"


def test_stopping_on_sigterm(make):
    a = make().activate()
    a.proc.send_signal(signal.SIGTERM)
    a.notify.wait_for("STOPPING=1", timeout=10)
    assert a.proc.wait(timeout=20) == 0
    assert "READY=1" not in a.notify.messages[a.notify.messages.index("STOPPING=1"):]


def test_watchdog_pings(make):
    a = make(watchdog_usec=2_000_000).activate()
    # Pings at half the interval (1 s): a healthy echod sends several.
    pings = [m for m in collect(a.notify, 4.5) if m == "WATCHDOG=1"]
    assert len(pings) >= 2, a.notify.messages


def test_watchdog_for_another_pid_is_ignored(make):
    a = make(watchdog_usec=2_000_000, watchdog_pid=1).activate()
    assert "WATCHDOG=1" not in collect(a.notify, 3), a.notify.messages


@pytest.mark.skipif(not TEST_HOOKS, reason="echod built without -Dtest_hooks=true")
def test_watchdog_stops_when_a_worker_stalls(make):
    a = make(watchdog_usec=2_000_000).activate()
    a.notify.wait_for("WATCHDOG=1", timeout=5)
    a.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while "test hook: worker 0 stalls now" not in a.log():
        assert time.monotonic() < deadline, a.log()
        time.sleep(0.05)
    # A ping already on its way may still arrive; after that, silence.
    late = [m for m in collect(a.notify, 4) if m == "WATCHDOG=1"]
    assert len(late) <= 1, a.notify.messages
    assert "worker 0 made no progress" in a.log()
    assert a.proc.poll() is None  # stalled, not dead: killing it is systemd's job


@pytest.mark.parametrize("fdname,datagram,expected", [
    ("echo", True, 'named "echo" is not a listening TCP socket'),
    ("control", False, 'named "control" is not a listening Unix stream socket'),
])
def test_wrong_fd_type_is_refused(make, fdname, datagram, expected):
    """A passed fd that is not what its name says is closed with a log line;
    echod then binds from its config, as if nothing had been passed."""
    own_port = harness.free_port()
    a = make(fdname=fdname, datagram=datagram,
             settings={"host": "127.0.0.1", "port": own_port})
    if datagram:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"wake up", ("127.0.0.1", a.port))
    else:
        a.connect().close()
    a.notify.wait_for("READY=1", timeout=10)
    assert expected in a.log(), a.log()
    with socket.create_connection(("127.0.0.1", own_port), timeout=5) as c:
        assert harness.echo_roundtrip(c, b"own listener\n") == b"own listener\n"
