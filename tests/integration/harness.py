# SPDX-License-Identifier: MIT
"""Runs a real echod for a test: its own temp dir, config, ephemeral loopback
port and NOTIFY_SOCKET, so readiness is known from READY=1, not from polling."""

import os
import signal
import socket
import subprocess
import tempfile
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
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []

    def poll(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return None
        msg = data.decode()
        self.messages.append(msg)
        return msg

    def wait_for(self, needle, timeout=10.0):
        """Returns the first new message containing needle, or raises."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.poll(max(0.01, deadline - time.monotonic()))
            if msg is not None and needle in msg:
                return msg
        raise TimeoutError(f"no notify message with {needle!r}; got {self.messages!r}")

    def close(self):
        self.sock.close()


class Echod:
    """echod on 127.0.0.1:<free port> with the given config keys.

    Use as a context manager; `start()` waits for READY=1 and fails the test
    if echod exits first. `log()` returns everything echod wrote to stderr.
    """

    def __init__(self, settings=None, args=(), env=None, wait_ready=True):
        self.dir = tempfile.mkdtemp(prefix="echod-test-")
        self.port = free_port()
        self.settings = {"host": "127.0.0.1", "port": self.port, "threads": 2,
                         "control_socket": os.path.join(self.dir, "control.sock")}
        self.settings.update(settings or {})
        self.port = self.settings["port"]
        self.config_path = os.path.join(self.dir, "echod.conf")
        self.write_config(self.settings)
        self.args = list(args)
        self.extra_env = env or {}
        self.wait_ready = wait_ready
        self.proc = None
        self.notify = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")

    @property
    def control_socket(self):
        return self.settings.get("control_socket")

    def write_config(self, settings, raw=None):
        with open(self.config_path, "w") as f:
            f.write(raw if raw is not None else render_config(settings))

    def start(self, timeout=10.0):
        self.notify = NotifyListener(os.path.join(self.dir, "notify.sock"))
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path)
        env.pop("LISTEN_FDS", None)
        env.pop("LISTEN_PID", None)
        env.update(self.extra_env)
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([ECHOD, "-c", self.config_path] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr, env=env)
        if self.wait_ready:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"echod exited with {self.proc.returncode}:\n{self.log()}")
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        finally:
            if self.notify:
                self.notify.close()
            if getattr(self, "stderr", None):
                self.stderr.close()


def echo_roundtrip(sock, payload, chunk=65536):
    """Sends payload while reading, half-closes, returns everything received."""
    import threading
    received = bytearray()

    def reader():
        while True:
            b = sock.recv(chunk)
            if not b:
                return
            received.extend(b)

    t = threading.Thread(target=reader)
    t.start()
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    t.join(timeout=60)
    return bytes(received)
