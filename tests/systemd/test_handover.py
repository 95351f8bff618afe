# SPDX-License-Identifier: MIT
"""Restart without dropping clients, without systemd: the test stands in for
systemd's fd store. Its datagram NOTIFY_SOCKET receives the fds echod stores
on SIGTERM (FDSTORE=1, SCM_RIGHTS); a second echod is then started with them
as LISTEN_FDS/LISTEN_FDNAMES (fdexec.py), beside the listener the test owns,
as systemd passes the store on `systemctl restart`. Every client must stay
connected and be echoed byte-exact. The real-systemd counterpart is
scenario-handover.sh."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402

FDEXEC = os.path.join(os.path.dirname(__file__), "fdexec.py")
ECHOCTL = os.environ.get("ECHOCTL")


class FakeStore:
    """systemd's notify socket and fd store: keeps what FDSTORE=1 passes,
    drops what FDSTOREREMOVE=1 names, records every message."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []
        self.stored = []  # (name, fd)
        self.removed = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 65536, 253)
            except OSError:
                return
            if not data and not fds:
                return
            text = data.decode(errors="replace")
            fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            with self.cond:
                self.messages.append(text)
                if fields.get("FDSTORE") == "1":
                    self.stored += [(fields.get("FDNAME", "stored"), fd) for fd in fds]
                    fds = []
                if fields.get("FDSTOREREMOVE") == "1":
                    name = fields.get("FDNAME")
                    self.removed.append(name)
                    for n, fd in [x for x in self.stored if x[0] == name]:
                        os.close(fd)
                    self.stored = [x for x in self.stored if x[0] != name]
                for fd in fds:
                    os.close(fd)
                self.cond.notify_all()

    def wait_for(self, pred, timeout=15.0):
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self), timeout), self.messages[-20:]

    def take(self):
        """The stored fds, handed to the caller (as systemd passes them on a start)."""
        with self.cond:
            out, self.stored = self.stored, []
            return out

    def close(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as w:
                w.sendto(b"", self.path)
        except OSError:
            pass
        self.thread.join(timeout=5)
        self.sock.close()
        for _, fd in self.stored:
            os.close(fd)


class Instance:
    """One echod started by fdexec.py with named fds, NOTIFY_SOCKET = store."""

    def __init__(self, tmp_path, store, fds, settings, tag):
        self.config = str(tmp_path / f"echod-{tag}.conf")
        self.control = str(tmp_path / f"control-{tag}.sock")
        base = {"threads": 2, "control_socket": self.control, "shutdown_timeout": 5}
        base.update(settings)
        with open(self.config, "w") as f:
            f.write(harness.render_config(base))
        self.log_path = tmp_path / f"echod-{tag}.log"
        high = [(name, os.dup2(fd, 1000 + i, inheritable=True)) for i, (name, fd) in
                enumerate(fds)]
        env = dict(os.environ, NOTIFY_SOCKET=store.path)
        for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "FDSTORE", "SYSTEMD_EXEC_PID"):
            env.pop(k, None)
        ready = len([m for m in store.messages if "READY=1" in m])
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, FDEXEC, *[f"{n}={fd}" for n, fd in high], "--",
                 harness.ECHOD, "-c", self.config],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                pass_fds=[fd for _, fd in high])
        for _, fd in high:
            os.close(fd)
        deadline = time.monotonic() + 15
        while len([m for m in store.messages if "READY=1" in m]) <= ready:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log()
            time.sleep(0.01)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def env(tmp_path):
    store = FakeStore(str(tmp_path / "notify.sock"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    instances = []
    yield store, listener, instances, tmp_path
    for i in instances:
        i.kill()
    store.close()
    listener.close()


def connect(port, n):
    return [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(n)]


def recv_exact(s, n):
    got = bytearray()
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            break
        got += b
    return bytes(got)


def restart(store, listener, instances, tmp_path, settings, settings2=None):
    """SIGTERMs the last instance, starts the next with what it stored."""
    old = instances[-1]
    assert old.stop() == 0, old.log()
    stored = store.take()
    new = Instance(tmp_path, store, [("echo", listener.fileno())] + stored,
                   settings2 or settings, f"{len(instances)}")
    instances.append(new)
    for _, fd in stored:
        os.close(fd)
    return old, new, stored


def adopted(inst):
    if not ECHOCTL:
        return None
    out = subprocess.run([ECHOCTL, "-s", inst.control, "--json", "stats"], capture_output=True,
                         timeout=20, check=True).stdout
    return json.loads(out)["connections_adopted"]


def test_echo_mode_clients_survive_restart(env):
    store, listener, instances, tmp = env
    port = listener.getsockname()[1]
    settings = {"mode": "echo"}
    instances.append(Instance(tmp, store, [("echo", listener.fileno())], settings, "0"))
    clients = connect(port, 40)
    for i, c in enumerate(clients):
        c.sendall(b"hello %d\n" % i)
        assert recv_exact(c, len(b"hello %d\n" % i)) == b"hello %d\n" % i

    # One client streams 4 MiB across the restart while reading.
    bulk = socket.create_connection(("127.0.0.1", port), timeout=30)
    payload = os.urandom(4 << 20)
    got = bytearray()

    def writer():
        for off in range(0, len(payload), 16384):
            bulk.sendall(payload[off:off + 16384])
            time.sleep(0.0005)

    def reader():
        while len(got) < len(payload):
            b = bulk.recv(65536)
            if not b:
                return
            got.extend(b)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    # Bytes in flight at SIGTERM, and more sent while no echod runs.
    for i, c in enumerate(clients):
        c.sendall(b"before %d\n" % i)
    old, new, stored = restart(store, listener, instances, tmp, settings,
                               {"mode": "echo", "threads": 3})
    # One queue per worker holds the clients; no unfinished lines in echo mode.
    assert sorted(n for n, _ in stored) == ["connq", "connq"], stored
    for i, c in enumerate(clients):
        c.sendall(b"after %d\n" % i)
    for i, c in enumerate(clients):
        want = b"before %d\nafter %d\n" % (i, i)
        assert recv_exact(c, len(want)) == want
    for t in threads:
        t.join(timeout=60)
    assert bytes(got) == payload
    store.wait_for(lambda s: "connq" in s.removed)
    assert "adopted 41 connections from the previous echod" in new.log(), new.log()
    assert "handed" in old.log()
    if ECHOCTL:
        assert adopted(new) == 41
    # Served as usual afterwards, by the new process only.
    for i, c in enumerate(clients):
        c.sendall(b"again %d\n" % i)
        assert recv_exact(c, len(b"again %d\n" % i)) == b"again %d\n" % i
    fresh = socket.create_connection(("127.0.0.1", port), timeout=10)
    fresh.sendall(b"new client\n")
    assert recv_exact(fresh, 11) == b"new client\n"
    for c in clients + [bulk, fresh]:
        c.close()
    time.sleep(0.5)  # echod reads the FINs and closes
    # Nothing is left in the store: a second restart passes nothing stale.
    old, new, stored = restart(store, listener, instances, tmp, settings)
    assert stored == []
    assert new.stop() == 0


def test_line_mode_unfinished_line_survives(env):
    store, listener, instances, tmp = env
    port = listener.getsockname()[1]
    settings = {"mode": "line"}
    instances.append(Instance(tmp, store, [("echo", listener.fileno())], settings, "0"))
    clients = connect(port, 20)
    for i, c in enumerate(clients):
        c.sendall(b"first %d\npart-%d" % (i, i))
        want = b"Received: first %d\n" % i
        assert recv_exact(c, len(want)) == want
    time.sleep(0.2)  # the partial lines are read
    old, new, stored = restart(store, listener, instances, tmp, settings)
    names = [n for n, _ in stored]
    assert names.count("connq") == 2 and names.count("connstate") == 2, names
    for i, c in enumerate(clients):
        c.sendall(b"-rest\nnext %d\n" % i)
    for i, c in enumerate(clients):
        want = b"Received: part-%d-rest\nReceived: next %d\n" % (i, i)
        assert recv_exact(c, len(want)) == want
    assert "(20 with an unfinished line)" in new.log(), new.log()
    store.wait_for(lambda s: "connstate" in s.removed and "connq" in s.removed)
    for c in clients:
        c.close()
    assert new.stop() == 0


def test_preserve_connections_false_drains(env):
    store, listener, instances, tmp = env
    port = listener.getsockname()[1]
    instances.append(Instance(tmp, store, [("echo", listener.fileno())],
                              {"preserve_connections": False}, "0"))
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(b"x" * 1000)
    assert recv_exact(c, 1000) == b"x" * 1000
    assert instances[0].stop() == 0
    assert c.recv(10) == b""  # drained: FIN after the reply
    assert store.take() == []


def test_without_systemd_connections_are_not_preserved():
    """A NOTIFY_SOCKET alone (a test's, or inherited) is no fd store."""
    with harness.Echod() as e:
        c = e.connect()
        c.sendall(b"bye\n")
        assert recv_exact(c, 4) == b"bye\n"
        assert e.stop() == 0
        assert c.recv(10) == b""
        assert "connections are not preserved across the restart" in e.log()


def test_store_unreachable_falls_back_to_drain(env):
    store, listener, instances, tmp = env
    port = listener.getsockname()[1]
    instances.append(Instance(tmp, store, [("echo", listener.fileno())], {}, "0"))
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(b"y" * 100)
    assert recv_exact(c, 100) == b"y" * 100
    os.unlink(store.path)  # systemd gone: sendmsg fails
    assert instances[0].stop() == 0
    assert c.recv(10) == b""
    log = instances[0].log()
    assert "cannot hand 1 connections to the fd store" in log, log
    assert "not handed over; draining them" in log


def test_single_conn_fds_are_adopted(env):
    """Connections stored one by one (FDNAME=conn, as a tool may) are adopted
    too; an fd that is not a connected TCP socket is closed with a warning."""
    store, listener, instances, tmp = env
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    server_side, _ = listener.accept()
    r, w = os.pipe()
    try:
        inst = Instance(tmp, store, [("echo", listener.fileno()), ("conn", server_side.fileno()),
                                     ("conn", r)], {}, "0")
        instances.append(inst)
        server_side.close()
        client.sendall(b"adopted?\n")
        assert recv_exact(client, 9) == b"adopted?\n"
        log = inst.log()
        assert "is not a connected TCP socket; closing it" in log, log
        assert "adopted 1 connection from the previous echod" in log, log
        store.wait_for(lambda s: "conn" in s.removed)
    finally:
        os.close(w)
        client.close()
