# SPDX-License-Identifier: MIT
"""Fault (h): the config file is replaced by something that is not a valid
config, then SIGHUP and `echoctl reload`, while echo traffic runs. Each time
echod keeps the running config (max_connections stays 777, visible in
`echoctl --json stats`), logs the reason, counts reloads_failed, and
`echoctl reload` exits 1 with the reason on stderr. A valid file afterwards
reloads fine.

"Unreadable": chmod 000 stops only non-root; as root echod still reads it, so
for root the unreadable cases are a directory, a symlink loop, a dangling
symlink and a file whose read() fails (/proc/self/mem: EIO)."""

import os
import shutil
import time

from faultlib import (Echod, Traffic, assert_fds_back, assert_rss_within, quiet_fd_count,
                      stats, wait_until)

GOOD = {"max_connections": 777}


def replace(d, kind):
    """Puts `kind` where d's config file was; returns the reason echod must give."""
    path = d.config_path
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    if kind == "garbage":
        with open(path, "wb") as f:
            f.write(b"this is { not ; a config\n\x7f\x80\xfe garbage\n")
        return "syntax error"
    if kind == "bad value":
        with open(path, "w") as f:
            f.write("max_connections = 0;\nport = 99999;\n")
        return "max_connections"
    if kind == "NUL byte":
        with open(path, "wb") as f:
            f.write(b"max_connections = 778;\n\0\n")
        return "contains a NUL byte"
    if kind == "directory":
        os.mkdir(path)
        return "Is a directory"
    if kind == "over 16 MiB":
        with open(path, "wb") as f:
            f.write((b"# padding\n" * 1024 * 1024) * 2)
        return "larger than 16 MiB"
    if kind == "symlink loop":
        os.symlink(os.path.basename(path), path)
        return "Too many levels of symbolic links"
    if kind == "missing":
        return "No such file or directory"
    if kind == "read fails (EIO)":
        os.symlink("/proc/self/mem", path)
        return "Input/output error"
    if kind == "chmod 000":
        d.write_config(d.settings)  # the running config, but unreadable (except for root)
        os.chmod(path, 0)
        return "Permission denied"
    raise ValueError(kind)


KINDS = ["garbage", "bad value", "NUL byte", "directory", "over 16 MiB", "symlink loop",
         "missing", "read fails (EIO)", "chmod 000"]


def test_config_replaced_by_junk_keeps_running_config():
    with Echod(GOOD) as d:
        fds0 = quiet_fd_count(d)
        rss0 = d.rss_kib()
        s0 = stats(d)
        failed = 0
        with Traffic(d, clients=3, size=2000, pause=0.01, fresh=10) as t:
            for kind in KINDS:
                reason = replace(d, kind)
                if kind == "chmod 000" and os.geteuid() == 0:
                    # Root reads it anyway (CAP_DAC_OVERRIDE): the reload succeeds.
                    assert d.reload_and_wait() is True, "chmod 000 as root: reload failed"
                    rc, out, err = d.ctl("reload")
                    assert rc == 0, f"chmod 000 as root: echoctl reload {rc} {err}"
                    assert stats(d)["max_connections"] == 777
                    continue
                before = d.log()
                assert d.reload_and_wait() is False, f"{kind}: SIGHUP reload did not fail"
                new_log = d.log()[len(before):]
                assert reason in new_log, f"{kind}: reason {reason!r} not logged:\n{new_log}"
                assert "keeping the running configuration" in new_log
                rc, out, err = d.ctl("reload")
                assert rc == 1, f"{kind}: echoctl reload exited {rc} (want 1): {out} {err}"
                assert reason in err, f"{kind}: echoctl reload stderr lacks {reason!r}: {err!r}"
                failed += 2
                st = stats(d)
                assert st["max_connections"] == 777, f"{kind}: running config changed"
                assert st["reloads_failed"] - s0["reloads_failed"] == failed
                assert d.running()
            # A valid file is taken again.
            replace(d, "missing")
            d.write_config(dict(d.settings, max_connections=778))
            assert d.reload_and_wait() is True
            rc, out, err = d.ctl("reload")
            assert rc == 0, err
            assert stats(d)["max_connections"] == 778
        t.check(max_rtt=2.0, what="echo traffic during reloads")
        assert_fds_back(d, fds0)
        assert_rss_within(d, rss0, 4096, "config faults")
        print(f"\nconfig faults: {len(KINDS)} kinds, {failed} rejected reloads, old config "
              f"kept each time; traffic {t.roundtrips} round trips, max {t.max_rtt * 1000:.1f} ms")


def test_config_replaced_by_a_fifo_does_not_hang_echod():
    """A FIFO (or any file whose open() blocks) in place of the config must not
    freeze echod: the reload runs on the main thread, which also serves the
    control socket, signals and the watchdog."""
    with Echod(GOOD) as d:
        replace(d, "missing")
        os.mkfifo(d.config_path)
        d.reload()
        time.sleep(0.5)
        t0 = time.monotonic()
        rc, out, err = d.ctl("--timeout", "3", "ping", timeout=10)
        took = time.monotonic() - t0
        hung = rc != 0
        # Unblock echod if it is stuck in open(): a writer that sends nothing.
        fd = os.open(d.config_path, os.O_WRONLY | os.O_NONBLOCK) if hung else None
        if fd is not None:
            os.close(fd)
        assert not hung, (
            f"BUG daemon/config.c read_whole_file(): after the config was replaced by a FIFO "
            f"and SIGHUP, echod's main thread blocks in fopen() until a writer appears: "
            f"`echoctl ping` got no answer in {took:.1f} s (rc {rc}: {err.strip()}); signals, "
            f"the control socket and the watchdog are all stuck. Open with O_NONBLOCK and "
            f"refuse anything that is not a regular file (fstat S_ISREG).")
        wait_until(lambda: "reload failed" in d.log(), timeout=5, what="reload failed logged")
