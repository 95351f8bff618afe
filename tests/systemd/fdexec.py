# SPDX-License-Identifier: MIT
"""Execs a program as systemd would start it with passed fds.

  fdexec.py NAME=FD... -- PROGRAM ARGS...

Each FD (inherited, numbered above the ones it moves to) is moved to 3, 4, ...
in order and described by LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID; exec
keeps the pid, so LISTEN_PID and SYSTEMD_EXEC_PID name the program. Used by
test_handover.py, which stands in for systemd's fd store.
"""
import os
import sys


def main(argv):
    sep = argv.index("--")
    pairs = [a.split("=", 1) for a in argv[:sep]]
    for i, (_, fd) in enumerate(pairs):
        assert int(fd) > 3 + len(pairs), "pass fds numbered above their targets"
        os.dup2(int(fd), 3 + i, inheritable=True)
        os.close(int(fd))
    os.environ["LISTEN_FDS"] = str(len(pairs))
    os.environ["LISTEN_FDNAMES"] = ":".join(name for name, _ in pairs)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["SYSTEMD_EXEC_PID"] = str(os.getpid())
    os.execv(argv[sep + 1], argv[sep + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
