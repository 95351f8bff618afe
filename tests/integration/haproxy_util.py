# SPDX-License-Identifier: MIT
"""Runs HAProxy for a test, on the shipped conf/haproxy-echod.cfg.

The test's config is that file with only what must differ on a test machine
replaced: the frontend's bind address, the server lines and the check timing.
Each replacement must match exactly where expected, so an edit of the shipped
file that this module no longer understands fails the test instead of
silently testing something else. A global section in front adds a stats
socket in the test's directory (the shipped file has none: Debian's
haproxy.cfg provides it) and logs to stderr.
"""

import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from harness import free_port

SHIPPED_CFG = os.environ.get(
    "HAPROXY_ECHOD_CFG",
    os.path.join(os.path.dirname(__file__), "..", "..", "conf", "haproxy-echod.cfg"))


def find_haproxy():
    """HAProxy's path ($HAPROXY, else PATH plus the sbin dirs), or None."""
    if os.environ.get("HAPROXY"):
        return os.environ["HAPROXY"]
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which("haproxy", path=path)


HAPROXY = find_haproxy()


def sub_exactly(pattern, repl, text, count=1):
    """re.sub with a check that pattern matched `count` times (None: at least once)."""
    new, n = re.subn(pattern, repl, text, flags=re.M)
    if (count is None and n == 0) or (count is not None and n != count):
        raise AssertionError(f"{SHIPPED_CFG}: /{pattern}/ matched {n} times, "
                             f"expected {count or 'at least 1'}; update haproxy_util.py")
    return new


def probe_line():
    """The health check's probe, from the shipped file's `tcp-check send`."""
    with open(SHIPPED_CFG) as f:
        m = re.search(r"^\ttcp-check send (\S+)$", f.read(), flags=re.M)
    assert m, f"{SHIPPED_CFG}: no 'tcp-check send' line; update haproxy_util.py"
    return m.group(1).replace("\\n", "\n").encode()


def shipped_maxconn():
    """The `maxconn` of the shipped file's default-server line."""
    with open(SHIPPED_CFG) as f:
        m = re.search(r"^\tdefault-server .* maxconn (\d+)", f.read(), flags=re.M)
    assert m, f"{SHIPPED_CFG}: no maxconn on the default-server line; update haproxy_util.py"
    return int(m.group(1))


def seconds(text):
    """An HAProxy time ("200ms", "2s", "5m", "300") in seconds."""
    m = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", text)
    assert m, f"not an HAProxy time: {text!r}"
    unit = {"us": 1e-6, "ms": 1e-3, None: 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(m.group(1)) * unit[m.group(2)]


def loopback_config(stats_socket, port, servers, inter="200ms", fall=2, rise=2,
                    timeout_check="500ms", maxconn=None):
    """The shipped file adapted to loopback. servers: [(name, port)];
    maxconn: the servers' (None: the shipped one)."""
    with open(SHIPPED_CFG) as f:
        text = f.read()
    text = sub_exactly(r"^\tbind :7007$", f"\tbind 127.0.0.1:{port}", text)
    lines = "".join(f"\tserver {name} 127.0.0.1:{p} check\n" for name, p in servers)
    text = sub_exactly(r"^\tserver .*\n", "", text, count=None)
    text = sub_exactly(r"^(\tdefault-server .*\n)", r"\1" + lines, text)
    text = sub_exactly(r"(default-server.*) inter \S+", rf"\1 inter {inter}", text)
    text = sub_exactly(r"(default-server.*) fall \d+", rf"\1 fall {fall}", text)
    text = sub_exactly(r"(default-server.*) rise \d+", rf"\1 rise {rise}", text)
    text = sub_exactly(r"^\ttimeout check \S+$", f"\ttimeout check {timeout_check}", text)
    if maxconn is not None:
        text = sub_exactly(r"(default-server.*) maxconn \d+", rf"\1 maxconn {maxconn}", text)
    head = ("global\n"
            "\tlog stderr format raw local0 info\n"
            f"\tstats socket {stats_socket} mode 600 level admin\n\n")
    return head + text


class HAProxy:
    """haproxy -db (foreground) on a generated config; a context manager.

    `stat()` reads `show stat` from the stats socket; `wait_status()` polls
    it until a server reaches a state and returns when it did.
    """

    def __init__(self, workdir, servers, **timing):
        self.dir = workdir
        self.servers = servers
        self.timing = dict(inter="200ms", fall=2, rise=2, timeout_check="500ms")
        self.timing.update(timing)
        self.stats_socket = os.path.join(workdir, "haproxy.sock")
        self.cfg_path = os.path.join(workdir, "haproxy.cfg")
        self.log_path = os.path.join(workdir, "haproxy.log")
        self.proc = None
        self.port = None

    def write_config(self):
        with open(self.cfg_path, "w") as f:
            f.write(loopback_config(self.stats_socket, self.port, self.servers, **self.timing))

    def check_config(self):
        """`haproxy -c` on the generated config: (returncode, output)."""
        p = subprocess.run([HAPROXY, "-c", "-f", self.cfg_path], capture_output=True,
                           text=True, timeout=30)
        return p.returncode, p.stdout + p.stderr

    def start(self, timeout=10.0):
        """Starts HAProxy on a free port (another one if that port was taken
        meanwhile) and waits until its stats socket answers."""
        for _ in range(5):
            self.port = free_port()
            self.write_config()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg_path],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    self.stat()
                    return self
                except OSError:
                    time.sleep(0.02)
            if self.proc.poll() is None:
                self.stop()
                raise TimeoutError(f"haproxy's stats socket silent for {timeout}s:\n{self.log()}")
            if "cannot bind socket" not in self.log():
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}:\n{self.log()}")
        raise RuntimeError(f"haproxy found no free port in 5 tries:\n{self.log()}")

    def stop(self):
        """SIGTERM (HAProxy's immediate stop), then SIGKILL if it lingers."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self if self.proc else self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def command(self, line, timeout=5.0):
        """One command on the stats socket; returns the whole answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.stats_socket)
            s.sendall(line.encode() + b"\n")
            out = bytearray()
            while True:
                b = s.recv(65536)
                if not b:
                    return out.decode()
                out.extend(b)

    def stat(self):
        """`show stat` of the echod backend's servers: {name: row dict}."""
        text = self.command("show stat").lstrip("# ")
        return {r["svname"]: r for r in csv.DictReader(io.StringIO(text))
                if r["pxname"] == "echod" and r["svname"] != "BACKEND"}

    def sessions(self):
        """{server: sessions HAProxy sent it so far} (stot; checks not included)."""
        return {name: int(r["stot"]) for name, r in self.stat().items()}

    def wait_status(self, server, status, timeout, check_status=None):
        """Polls every 10 ms until server's status is exactly `status` ("UP",
        "DOWN"; "UP 1/2" is still on its way down), and, if given, its last
        check result is check_status. Returns the monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.stat()[server]
            now = time.monotonic()
            # "* L7OK": the last result, with a check under way.
            last = row["check_status"].removeprefix("* ")
            if row["status"] == status and check_status in (None, last):
                return now
            if now >= deadline:
                raise TimeoutError(f"{server} not {status} ({check_status}) after {timeout}s: "
                                   f"status {row['status']!r}, check {row['check_status']!r} "
                                   f"{row.get('last_chk')!r}\n{self.log()}")
            time.sleep(0.01)
