# SPDX-License-Identifier: MIT
"""Tiny echo clients for scenario.sh (run with the container's /usr/bin/python3).

  echo PORT [PAYLOAD]         one connection; exit 0 when PAYLOAD comes back unchanged
  expect PORT PAYLOAD REPLY   one connection; exit 0 when the answer is REPLY (line mode)
  load PORT SECONDS           4 threads open connection after connection for SECONDS and
                              print counts as JSON; exit 0 when some were echoed and none
                              was refused, timed out or answered wrongly (connections that
                              were open when echod was killed may be reset or cut short)
"""
import json
import socket
import sys
import threading
import time


def roundtrip(port, payload, want=None, timeout=20.0):
    want = len(payload) if want is None else want
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < want:
            b = s.recv(65536)
            if not b:
                break
            got += b
        return got


def cmd_echo(port, payload=b"hello echod\n"):
    got = roundtrip(port, payload)
    if got != payload:
        print(f"expected {payload!r}, got {got!r}")
        return 1
    print("echoed", len(got), "bytes")
    return 0


def cmd_expect(port, payload, reply):
    got = roundtrip(port, payload, len(reply))
    print(f"sent {payload!r}, got {got!r}")
    return 0 if got == reply else 1


def cmd_load(port, seconds):
    counts = {"ok": 0, "refused": 0, "reset": 0, "cut": 0, "timeout": 0, "wrong": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(n):
        i = 0
        while time.monotonic() < deadline:
            payload = f"thread {n} request {i}\n".encode() * 8
            i += 1
            try:
                got = roundtrip(port, payload)
                if got == payload:
                    key = "ok"
                elif payload.startswith(got):
                    key = "cut"    # open when echod was killed: expected
                else:
                    key = "wrong"
            except ConnectionRefusedError:
                key = "refused"
            except (ConnectionResetError, BrokenPipeError):
                key = "reset"      # established when echod was killed: expected
            except socket.timeout:
                key = "timeout"
            with lock:
                counts[key] += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(counts))
    good = counts["refused"] == 0 and counts["timeout"] == 0 and counts["wrong"] == 0
    return 0 if good and counts["ok"] > 0 else 1


def main(argv):
    if len(argv) >= 2 and argv[0] == "echo":
        return cmd_echo(int(argv[1]), *(a.encode() for a in argv[2:3]))
    if len(argv) == 4 and argv[0] == "expect":
        return cmd_expect(int(argv[1]), argv[2].encode(), argv[3].encode())
    if len(argv) == 3 and argv[0] == "load":
        return cmd_load(int(argv[1]), float(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
