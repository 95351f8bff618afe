# SPDX-License-Identifier: MIT
"""Runs a real echod for a test: its own temp dir, config, ephemeral loopback
port and NOTIFY_SOCKET, so readiness is known from READY=1, not from polling."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

ECHOD = os.environ.get("ECHOD", "echod")
ECHOCTL = os.environ.get("ECHOCTL", "echoctl")


def free_port():
    """An ephemeral port that was free a moment ago (bind to 0, read, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_config(settings):
    lines = []
    for key, value in settings.items():
        if isinstance(value, str):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{key} = "{escaped}";')
        else:
            lines.append(f"{key} = {value};")
    return "\n".join(lines) + "\n"


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET.

    A thread reads it all the time, as systemd does: an unread AF_UNIX
    datagram queue fills after ~10 messages and then sd_notify() blocks
    echod's main thread. `messages` holds everything received, in order.
    """

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []
        self._taken = 0  # messages already returned by poll()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    def _reader(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data and self._closed:
                return
            with self._cond:
                self.messages.append(data.decode(errors="replace"))
                self._cond.notify_all()

    def poll(self, timeout):
        """Returns the next message not yet returned, waiting up to timeout."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) > self._taken, timeout)
            if len(self.messages) > self._taken:
                self._taken += 1
                return self.messages[self._taken - 1]
            return None

    def wait_for(self, needle, timeout=10.0):
        """Returns the first new message containing needle, or raises."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.poll(max(0.01, deadline - time.monotonic()))
            if msg is not None and needle in msg:
                return msg
        raise TimeoutError(f"no notify message with {needle!r}; got {self.messages!r}")

    def close(self):
        self._closed = True
        try:
            # Wake the reader: an empty datagram to ourselves.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as w:
                w.sendto(b"", self.path)
        except OSError:
            pass
        self._thread.join(timeout=5)
        self.sock.close()


class EchodExited(RuntimeError):
    def __init__(self, returncode, log):
        super().__init__(f"echod exited with {returncode}:\n{log}")
        self.returncode = returncode
        self.log = log


class Echod:
    """echod on 127.0.0.1:<free port> with the given config keys.

    Use as a context manager; `start()` waits for READY=1 and fails the test
    if echod exits first. `log()` returns everything echod wrote to stderr.
    """

    def __init__(self, settings=None, args=(), env=None, wait_ready=True, use_config=True):
        self.dir = tempfile.mkdtemp(prefix="echod-test-")
        self.port = free_port()
        self.settings = {"host": "127.0.0.1", "port": self.port, "threads": 2,
                         "control_socket": os.path.join(self.dir, "control.sock")}
        self.settings.update(settings or {})
        self._port_is_ours = "port" not in (settings or {}) and "--port" not in args
        self.port = self.settings["port"]
        self.config_path = os.path.join(self.dir, "echod.conf")
        self.write_config(self.settings)
        self.args = list(args)
        self.extra_env = env or {}
        self.wait_ready = wait_ready
        self.use_config = use_config  # False: no -c, echod reads its default path
        self.proc = None
        self.notify = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")

    @property
    def control_socket(self):
        return self.settings.get("control_socket")

    def ctl(self, *args, timeout=20.0, prefix=()):
        """Runs `echoctl -s <this instance's control socket> ARGS` to completion;
        returns (returncode, stdout, stderr). prefix goes before echoctl
        (e.g. a setpriv command line to run it as another user)."""
        return run_echoctl(["-s", self.control_socket] + list(args), timeout=timeout,
                           prefix=prefix)

    def write_config(self, settings, raw=None):
        with open(self.config_path, "w") as f:
            f.write(raw if raw is not None else render_config(settings))

    def start(self, timeout=10.0):
        """Starts echod; if it loses a race for its ephemeral port with another
        process, picks a new port and tries again (only when the caller did
        not choose the port)."""
        for attempt in range(5):
            try:
                return self._start_once(timeout)
            except EchodExited as e:
                if not (self._port_is_ours and "Address already in use" in e.log
                        and attempt < 4):
                    raise
                self.close_files()
                self.port = free_port()
                self.settings["port"] = self.port
                self.write_config(self.settings)
        raise AssertionError("unreachable")

    def _start_once(self, timeout):
        self.notify = NotifyListener(os.path.join(self.dir, "notify.sock"))
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        env.update(self.extra_env)
        self.stderr = open(self.stderr_path, "wb")
        config = ["-c", self.config_path] if self.use_config else []
        self.proc = subprocess.Popen([ECHOD] + config + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr, env=env)
        if self.wait_ready:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise EchodExited(self.proc.returncode, self.log())
                msg = self.notify.poll(0.05)
                if msg and "READY=1" in msg:
                    return self
            raise TimeoutError(f"echod not ready after {timeout}s:\n{self.log()}")
        return self

    def connect(self, timeout=10.0):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def signal(self, signo):
        self.proc.send_signal(signo)

    def reload(self):
        self.signal(signal.SIGHUP)

    def wait(self, timeout=30.0):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=30.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode if self.proc else None

    def restart(self, timeout=10.0):
        """Starts echod again after stop(), on the same port: a server that
        comes back must be where its clients (a load balancer) expect it.
        The first run's log is checked for sanitizer reports here, as the
        new run overwrites it."""
        assert not self.running(), "restart() needs a stopped echod"
        report = sanitizer_report(self.log())
        assert not report, f"sanitizer report in echod's log before restart:\n{report}"
        self.close_files()
        return self._start_once(timeout)

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def wait_for_log(self, needle, count=1, timeout=10.0):
        """Waits until needle occurs at least count times in the log; returns the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if text.count(needle) >= count:
                return text
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{needle!r} not logged {count} time(s) in {timeout}s:\n{text}")
            time.sleep(0.02)

    def reload_and_wait(self, timeout=10.0):
        """SIGHUP, then waits for the reload's outcome in the log.

        Returns True if echod logged "configuration reloaded", False if it
        logged "reload failed".
        """
        ok_before = self.log().count("configuration reloaded")
        bad_before = self.log().count("reload failed")
        self.reload()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if text.count("configuration reloaded") > ok_before:
                return True
            if text.count("reload failed") > bad_before:
                return False
            time.sleep(0.02)
        raise TimeoutError(f"no reload outcome logged in {timeout}s:\n{self.log()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def close_files(self):
        if self.notify:
            self.notify.close()
            self.notify = None
            try:
                os.unlink(os.path.join(self.dir, "notify.sock"))
            except FileNotFoundError:
                pass
        if getattr(self, "stderr", None):
            self.stderr.close()
            self.stderr = None

    def __enter__(self):
        """Starts echod, unless start() was already called."""
        return self if self.proc else self.start()

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        finally:
            self.close_files()
        if exc_type is not None:
            return  # keep the log and config of a failed test
        report = sanitizer_report(self.log())
        if report:
            raise AssertionError(f"sanitizer report in echod's log ({self.dir}):\n{report}")
        shutil.rmtree(self.dir, ignore_errors=True)


def echo_roundtrip(sock, payload, chunk=65536, timeout=60.0):
    """Sends payload while reading, half-closes, returns everything received
    up to EOF. A receive error (reset, socket timeout) is raised here."""
    received = bytearray()
    failure = []

    def reader():
        try:
            while True:
                b = sock.recv(chunk)
                if not b:
                    return
                received.extend(b)
        except OSError as e:
            failure.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    t.join(timeout=timeout)
    if t.is_alive():
        raise TimeoutError(f"no EOF after {timeout}s; {len(received)} of "
                           f"{len(payload)} bytes back")
    if failure:
        raise failure[0]
    return bytes(received)


def recv_until_eof(sock, timeout=10.0, limit=None):
    """Reads until EOF (b"" from recv) and returns the bytes; raises
    ConnectionResetError on RST and TimeoutError if no EOF comes in time."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no EOF in {timeout}s; got {len(data)} bytes")
        sock.settimeout(left)
        try:
            b = sock.recv(1 << 16)
        except socket.timeout:
            raise TimeoutError(f"no EOF in {timeout}s; got {len(data)} bytes") from None
        if not b:
            return bytes(data)
        data.extend(b)
        if limit is not None and len(data) > limit:
            raise AssertionError(f"more than {limit} bytes before EOF")


def recv_exactly(sock, n, timeout=10.0):
    """Reads exactly n bytes, or raises (EOF, reset or timeout)."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"got {len(data)} of {n} bytes in {timeout}s: {bytes(data[:200])!r}")
        sock.settimeout(left)
        try:
            b = sock.recv(n - len(data))
        except socket.timeout:
            raise TimeoutError(f"got {len(data)} of {n} bytes in {timeout}s: "
                               f"{bytes(data[:200])!r}") from None
        if not b:
            raise EOFError(f"EOF after {len(data)} of {n} bytes: {bytes(data[:200])!r}")
        data.extend(b)
    return bytes(data)


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls predicate until it returns a true value (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached in {timeout}s")
        time.sleep(interval)


def run_echod(args, timeout=20.0, env=None):
    """Runs echod to completion (for -t, --help, bad arguments); returns
    CompletedProcess with text stdout/stderr."""
    e = dict(os.environ)
    e.pop("NOTIFY_SOCKET", None)
    e.update(env or {})
    return subprocess.run([ECHOD] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, env=e)


def run_echoctl(args, timeout=20.0, prefix=()):
    """Runs echoctl to completion without a terminal; returns
    (returncode, stdout, stderr) as text."""
    p = subprocess.run(list(prefix) + [ECHOCTL] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the IPv4 TCP socket local_port -> remote_port
    from /proc/net/tcp: bytes sent but not yet acknowledged, and bytes
    received but not yet read by the owning process. Works for sockets of
    other processes (echod's side of a connection), so a test can tell how
    much echod has read."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            lport = int(fields[1].split(":")[1], 16)
            rport = int(fields[2].split(":")[1], 16)
            if lport == local_port and rport == remote_port and fields[3] == "01":
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    raise LookupError(f"no established socket {local_port} -> {remote_port}")


def sanitizer_report(log):
    """The first AddressSanitizer/UBSan/LeakSanitizer report in log, or None."""
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        i = log.find(marker)
        if i >= 0:
            return log[max(0, log.rfind("\n", 0, i) + 1):][:4000]
    return None


def built_with_asan(path=None):
    """True if the echod binary is instrumented with AddressSanitizer."""
    exe = shutil.which(path or ECHOD) or (path or ECHOD)
    try:
        with open(exe, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False
