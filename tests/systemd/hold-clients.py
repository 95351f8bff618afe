# SPDX-License-Identifier: MIT
"""Many echo clients that stay connected, for scenario-handover.sh.

  hold-clients.py PORT N STATE_FILE

Opens N connections (all must connect: none refused), then runs rounds until
SIGTERM: every client sends a line naming itself and the round, and the round
ends when every reply is back. A reply must be exactly what was sent; a
client that is closed, reset or answered wrongly is counted and dropped.
After each round STATE_FILE holds JSON: connected, closed, wrong, rounds,
last_round_ms, max_round_ms and median_round_ms (the longest and the usual
wait for every reply, since the start or since the last SIGUSR1, which resets
them) and bytes_sent/bytes_echoed.
When every client is closed the program exits (status 0).
"""
import json
import os
import select
import signal
import socket
import sys
import time

reset = False
stop = False


def on_usr1(*_):
    global reset
    reset = True


def on_term(*_):
    global stop
    stop = True


def main(port, n, state_path):
    global reset
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    socks = {}
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setblocking(False)
        socks[s.fileno()] = s
    ep = select.epoll()
    for fd in socks:
        ep.register(fd, select.EPOLLIN)
    st = {"connected": n, "closed": 0, "wrong": 0, "rounds": 0, "last_round_ms": 0,
          "max_round_ms": 0, "median_round_ms": 0, "bytes_sent": 0, "bytes_echoed": 0}
    times = []

    def drop(fd, key):
        st[key] += 1
        ep.unregister(fd)
        socks.pop(fd).close()
        expect.pop(fd, None)

    def write_state():
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, state_path)

    write_state()
    while socks and not stop:
        if reset:
            st["max_round_ms"] = 0
            times.clear()
            reset = False
        t0 = time.monotonic()
        expect = {}
        for fd, s in list(socks.items()):
            msg = b"client %d round %d\n" % (fd, st["rounds"])
            try:
                s.send(msg)  # small: the socket buffer takes it whole
            except OSError:
                drop(fd, "closed")
                continue
            expect[fd] = msg
            st["bytes_sent"] += len(msg)
        while expect and not stop:
            for fd, _ in ep.poll(1.0):
                if fd not in socks:
                    continue
                try:
                    data = socks[fd].recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    drop(fd, "closed")
                    continue
                if not data:
                    drop(fd, "closed")
                    continue
                want = expect.get(fd, b"")
                if not want.startswith(data):
                    drop(fd, "wrong")
                    continue
                st["bytes_echoed"] += len(data)
                if len(data) == len(want):
                    del expect[fd]
                else:
                    expect[fd] = want[len(data):]
        ms = int((time.monotonic() - t0) * 1000)
        st["rounds"] += 1
        st["last_round_ms"] = ms
        st["max_round_ms"] = max(st["max_round_ms"], ms)
        times.append(ms)
        st["median_round_ms"] = sorted(times)[len(times) // 2]
        write_state()
    write_state()
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
