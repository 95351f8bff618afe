#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Soak: mixed load against echod for a given time, sampling its RSS, fd
count and errors every 10 s. Not part of the test suite; run it by hand:

    ECHOD=build/daemon/echod ECHOCTL=build/ctl/echoctl \\
        /usr/bin/python3 tests/faults/soak.py --duration 600

Two echod instances run side by side, one in echo mode and one in line mode
(the mode is per process). Against each, from separate processes:
  - persistent clients that check every byte (random sizes up to 64 KiB in
    echo mode; batches of random-length lines in line mode), reconnecting
    now and then;
  - connection churn (connect/send/check/close, 1 in 10 reset with RST);
  - an occasional large transfer (4 MiB round trip);
and from this process: `echoctl --json stats` every 2 s and a valid
`echoctl reload` every 30 s.

Prints one row per sample and a summary; exits 1 if a client saw a wrong
byte or error, echod died, or fds/RSS at the end exceed the start by more
than the bounds (--rss-bound-kib; fds must be equal once load has stopped).
"""

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    p.add_argument("--interval", type=float, default=10, help="seconds between samples")
    p.add_argument("--clients", type=int, default=6, help="persistent clients per instance")
    p.add_argument("--churn-rate", type=float, default=300,
                   help="connect/close cycles per second per instance (default 300)")
    p.add_argument("--threads", type=int, default=2, help="echod worker threads")
    p.add_argument("--rss-bound-kib", type=int, default=8192,
                   help="allowed RSS growth start -> end per instance (default 8192)")
    p.add_argument("--echod", default=os.environ.get("ECHOD", os.path.join(ROOT, "build",
                                                                          "daemon", "echod")))
    p.add_argument("--echoctl", default=os.environ.get("ECHOCTL", os.path.join(ROOT, "build",
                                                                              "ctl", "echoctl")))
    return p.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS:
    os.environ["ECHOD"] = os.path.abspath(ARGS.echod)
    os.environ["ECHOCTL"] = os.path.abspath(ARGS.echoctl)

sys.path.insert(0, HERE)
from faultlib import (PREFIX, Echod, cpu_seconds, echo_roundtrip, recv_exactly,  # noqa: E402
                      recv_until_eof, set_linger_zero)


# ---------------------------------------------------------------- load processes

class Counters:
    """Shared between the load processes (several threads each) and the sampler."""

    def __init__(self):
        self.roundtrips = mp.Value("q", 0)
        self.bytes = mp.Value("q", 0)
        self.cycles = mp.Value("q", 0)
        self.big = mp.Value("q", 0)
        self.errors = mp.Value("q", 0)


def inc(v, n=1):
    with v.get_lock():
        v.value += n


def report_error(errq, where, e):
    try:
        errq.put_nowait(f"{time.strftime('%H:%M:%S')} {where}: {type(e).__name__}: {e}")
    except Exception:  # noqa: BLE001 - the queue is only a report
        pass


def make_message(rng, mode):
    """(bytes to send, bytes expected back)."""
    if mode == "echo":
        n = rng.choice([1, 7, 100, 1500, 4096, 16384, 65536]) if rng.random() < 0.7 \
            else rng.randint(1, 65536)
        msg = rng.randbytes(n)
        return msg, msg
    lines = []
    for _ in range(rng.randint(1, 20)):
        n = rng.choice([0, 1, 10, 80, 1000, 4000]) if rng.random() < 0.7 else rng.randint(0, 4000)
        line = rng.randbytes(n).replace(b"\n", b"_")
        end = b"\r\n" if rng.random() < 0.2 and not line.endswith(b"\r") else b"\n"
        if end == b"\r\n":
            line = line.rstrip(b"\r")
        lines.append((line, end))
    sent = b"".join(line + end for line, end in lines)
    want = b"".join(PREFIX + line + (b"\r\n" if end == b"\r\n" else b"\n") for line, end in lines)
    return sent, want


def persistent_client(port, mode, seed, stop, c, errq):
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                for _ in range(rng.randint(50, 400)):
                    if stop.is_set():
                        break
                    msg, want = make_message(rng, mode)
                    # Send and read concurrently-enough: replies are small relative to buffers.
                    s.sendall(msg)
                    got = recv_exactly(s, len(want), timeout=30)
                    if got != want:
                        raise AssertionError(f"{mode}: wrong bytes back ({len(want)} expected)")
                    inc(c.roundtrips, 1)
                    inc(c.bytes, len(want))
                    time.sleep(rng.random() * 0.01)
                s.shutdown(socket.SHUT_WR)
                if recv_until_eof(s, timeout=30):
                    raise AssertionError("bytes after the last answer")
        except Exception as e:  # noqa: BLE001 - counted and reported
            inc(c.errors, 1)
            report_error(errq, f"{mode} persistent client", e)
            time.sleep(0.5)


def churn_client(port, mode, rate, stop, c, errq):
    period = 1.0 / rate if rate > 0 else 0
    next_t = time.monotonic()
    i = 0
    while not stop.is_set():
        i += 1
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            with s:
                if i % 10 == 0:
                    s.sendall(b"reset me\n" * 10)
                    set_linger_zero(s)  # close() sends RST, maybe before the answer
                else:
                    msg = b"churn %d %d\n" % (os.getpid(), i)
                    want = msg if mode == "echo" else PREFIX + msg
                    s.sendall(msg)
                    got = recv_exactly(s, len(want), timeout=30)
                    if got != want:
                        raise AssertionError(f"churn: got {got!r}")
            inc(c.cycles, 1)
        except Exception as e:  # noqa: BLE001
            inc(c.errors, 1)
            report_error(errq, f"{mode} churn", e)
            time.sleep(0.5)
        if period:
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1:
                next_t = time.monotonic()


def big_transfers(port, mode, stop, c, errq):
    rng = random.Random(7)
    while not stop.wait(rng.uniform(5, 15)):
        try:
            if mode == "echo":
                data = rng.randbytes(4 << 20)
                want = data
            else:
                line = rng.randbytes(60000).replace(b"\n", b"_") + b"\n"
                data = line * 70
                want = (PREFIX + line) * 70
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                got = echo_roundtrip(s, data, timeout=60)
                if got != want:
                    raise AssertionError(f"large transfer: {len(got)} of {len(want)} bytes, "
                                         f"equal={got == want}")
            inc(c.big, 1)
            inc(c.bytes, len(want))
        except Exception as e:  # noqa: BLE001
            inc(c.errors, 1)
            report_error(errq, f"{mode} large transfer", e)


def load_process(kind, port, mode, n, rate, stop, c, errq):
    threads = []
    if kind == "persistent":
        for k in range(n):
            threads.append(threading.Thread(target=persistent_client,
                                            args=(port, mode, hash((mode, k)), stop, c, errq)))
        threads.append(threading.Thread(target=big_transfers, args=(port, mode, stop, c, errq)))
    else:
        threads.append(threading.Thread(target=churn_client,
                                        args=(port, mode, rate, stop, c, errq)))
    for t in threads:
        t.daemon = True
        t.start()
    for t in threads:
        t.join()


# ---------------------------------------------------------------- sampling

class Instance:
    def __init__(self, mode, args):
        self.mode = mode
        self.d = Echod({"threads": args.threads, "mode": mode, "idle_timeout": 60})
        self.c = Counters()
        self.procs = []
        self.samples = []
        self.ctl_queries = 0
        self.ctl_failures = 0
        self.reloads = 0

    def stats(self):
        rc, out, err = self.d.ctl("--json", "stats", timeout=20)
        self.ctl_queries += 1
        if rc != 0:
            self.ctl_failures += 1
            return None
        return json.loads(out)

    def quiet_fds(self):
        """sd_notify() holds a socket for a moment: the smallest of a few samples."""
        n = []
        for _ in range(5):
            n.append(self._fds())
            time.sleep(0.05)
        return min(n)

    def _fds(self):
        return len(os.listdir(f"/proc/{self.d.proc.pid}/fd"))

    def log_problems(self):
        return sum(1 for line in self.d.log().splitlines()
                   if "error" in line.lower() or "warning" in line.lower())


def main():
    args = ARGS
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    errq = ctx.Queue()
    errors = []
    inst = [Instance("echo", args), Instance("line", args)]
    for i in inst:
        i.d.start()
    try:
        for i in inst:
            i.start_fds = i.quiet_fds()
            i.start_rss = i.d.rss_kib()
            i.start_cpu = cpu_seconds(i.d.proc.pid)
            i.stats()
        for i in inst:
            for kind in ("persistent", "churn"):
                p = ctx.Process(target=load_process,
                                args=(kind, i.d.port, i.mode, args.clients, args.churn_rate,
                                      stop, i.c, errq), daemon=True)
                p.start()
                i.procs.append(p)
        t0 = time.monotonic()
        hdr = (f"{'time':>6} | {'mode':4} {'RSS KiB':>8} {'fds':>5} {'conns':>5} "
               f"{'rtrips':>8} {'MiB ok':>8} {'cycles':>8} {'big':>4} {'cpu s':>6} "
               f"{'acc.err':>7} {'errors':>6}")
        print(f"soak: {args.duration:.0f} s, echod {args.threads} threads, "
              f"{args.clients} clients + churn {args.churn_rate:.0f}/s per instance; "
              f"pids echo={inst[0].d.proc.pid} line={inst[1].d.proc.pid}")
        print(hdr)
        print("-" * len(hdr))
        next_sample = t0
        next_reload = t0 + 30
        while True:
            now = time.monotonic()
            if now >= next_sample:
                for i in inst:
                    if not i.d.running():
                        raise SystemExit(f"echod ({i.mode}) died:\n{i.d.log()[-3000:]}")
                    st = i.stats() or {}
                    row = {
                        "t": now - t0, "rss": i.d.rss_kib(), "fds": i._fds(),
                        "conns": st.get("connections_active", -1),
                        "rt": i.c.roundtrips.value, "mib": i.c.bytes.value >> 20,
                        "cycles": i.c.cycles.value, "big": i.c.big.value,
                        "cpu": cpu_seconds(i.d.proc.pid) - i.start_cpu,
                        "acc": st.get("accept_errors", -1),
                        "err": i.c.errors.value + i.ctl_failures,
                    }
                    i.samples.append(row)
                    print(f"{row['t']:6.0f} | {i.mode:4} {row['rss']:8d} {row['fds']:5d} "
                          f"{row['conns']:5d} {row['rt']:8d} {row['mib']:8d} "
                          f"{row['cycles']:8d} {row['big']:4d} {row['cpu']:6.1f} "
                          f"{row['acc']:7d} {row['err']:6d}", flush=True)
                next_sample += args.interval
                if now - t0 >= args.duration:
                    break
            while not errq.empty():
                e = errq.get_nowait()
                errors.append(e)
                print(f"  client error: {e}", flush=True)
            if now >= next_reload:
                for i in inst:
                    rc, _, err = i.d.ctl("reload", timeout=20)
                    i.reloads += 1
                    if rc != 0:
                        i.ctl_failures += 1
                        errors.append(f"{i.mode}: echoctl reload failed: {err.strip()}")
                next_reload += 30
            for i in inst:
                if i.stats() is None:
                    errors.append(f"{i.mode}: echoctl stats failed")
            time.sleep(min(2.0, max(0.0, next_sample - time.monotonic())))
        stop.set()
        for i in inst:
            for p in i.procs:
                p.join(timeout=90)
                if p.is_alive():
                    p.kill()
                    errors.append(f"{i.mode}: a load process did not stop")
        while not errq.empty():
            errors.append(errq.get_nowait())
        # Let closing connections linger out (2 s) before the final figures.
        time.sleep(3)
        ok = True
        print()
        print("summary")
        for i in inst:
            end_fds = i.quiet_fds()
            end_rss = i.d.rss_kib()
            st = i.stats() or {}
            rss = [s["rss"] for s in i.samples]
            fds = [s["fds"] for s in i.samples]
            client_errors = i.c.errors.value
            print(f"  {i.mode:4}: RSS start {i.start_rss} KiB, end {end_rss} KiB "
                  f"(+{end_rss - i.start_rss}), max {max(rss)} KiB; "
                  f"fds start {i.start_fds}, end {end_fds}, max {max(fds)}; "
                  f"connections_total {st.get('connections_total')}, "
                  f"active at end {st.get('connections_active')}; "
                  f"{i.c.roundtrips.value} verified round trips, {i.c.bytes.value >> 20} MiB "
                  f"verified, {i.c.cycles.value} churn cycles, {i.c.big.value} large "
                  f"transfers; control: {i.ctl_queries} stats queries, {i.reloads} reloads, "
                  f"{i.ctl_failures} failed; client errors {client_errors}; accept_errors "
                  f"{st.get('accept_errors')}; echod CPU "
                  f"{cpu_seconds(i.d.proc.pid) - i.start_cpu:.1f} s; log warnings/errors "
                  f"{i.log_problems()}")
            if client_errors or i.ctl_failures:
                ok = False
            if end_fds != i.start_fds:
                print(f"  {i.mode}: FD LEAK? {i.start_fds} -> {end_fds}")
                ok = False
            if end_rss - i.start_rss > args.rss_bound_kib:
                print(f"  {i.mode}: RSS grew {end_rss - i.start_rss} KiB "
                      f"(bound {args.rss_bound_kib})")
                ok = False
        if errors:
            print(f"  {len(errors)} errors; first: {errors[:5]}")
            ok = False
        print(f"  result: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        stop.set()
        for i in inst:
            for p in i.procs:
                if p.is_alive():
                    p.kill()
            i.d.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
