# SPDX-License-Identifier: MIT
"""Control socket access control: echoctl run as another uid (setpriv) against
an echod running as root. Reads for whoever can connect; reload, kill,
log-level LEVEL and stats-reset for root, echod's user or control_admin_group."""

import grp
import os
import shutil
import stat

import pytest

from ctl_util import EchoTraffic, ctl_json, ctl_ok, stats
from harness import Echod, recv_exactly, recv_until_eof

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run echoctl as another uid"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing"),
]

NOBODY = 65534
NOGROUP = 65534


def as_nobody(groups=None):
    """setpriv prefix: uid/gid 65534 and no supplementary groups, or exactly `groups`."""
    extra = [f"--groups={','.join(str(g) for g in groups)}"] if groups else ["--clear-groups"]
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOGROUP}"] + extra + ["--"]


def group_name(gid):
    return grp.getgrgid(gid).gr_name


def open_dir(d):
    """The harness's temp dir is 0700 (root); let others reach the socket in it."""
    os.chmod(d.dir, 0o755)
    rc, out, err = d.ctl("-V", prefix=as_nobody())
    if rc in (126, 127):
        pytest.skip(f"uid {NOBODY} cannot run echoctl here: {err.strip()}")


ADMIN = [("reload",), ("kill", "1"), ("log-level", "debug"), ("stats-reset",)]
READ = [("status",), ("stats",), ("--json", "stats"), ("-p", "stats"), ("threads",),
        ("connections",), ("ping",), ("log-level",)]


def test_socket_mode_default_0660():
    with Echod() as d:
        st = os.stat(d.control_socket)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)


def test_reads_allowed_admin_denied_and_counted():
    with Echod({"control_socket_mode": "0666"}) as d, EchoTraffic(d) as live:
        open_dir(d)
        assert stat.S_IMODE(os.stat(d.control_socket).st_mode) == 0o666
        with d.connect() as c:
            c.sendall(b"x")
            assert recv_exactly(c, 1) == b"x"
            for args in READ:
                rc, out, err = d.ctl(*args, prefix=as_nobody())
                assert rc == 0 and out and err == "", (args, rc, out, err)
            before = stats(d)
            for args in ADMIN:
                rc, out, err = d.ctl(*args, prefix=as_nobody())
                assert rc == 4, (args, rc, out, err)
                assert out == ""
                assert err == (f'echoctl: permission denied: "{args[0]}" needs root, '
                               "echod's own user or a member of control_admin_group\n"), err
            j = stats(d)
            assert j["control_denied"] == before["control_denied"] + len(ADMIN)
            # Nothing the denied requests asked for happened.
            assert j["reloads"] == 0
            assert j["bytes_received"] >= before["bytes_received"] > 0  # not reset
            assert ctl_ok(d, "log-level") == "info\n"
            c.sendall(b"y")
            assert recv_exactly(c, 1) == b"y"  # not killed
            log = d.log()
            assert log.count(f"denied \"reload\" to uid {NOBODY}") == 1, log
            live.wait_roundtrips(3)


def test_admin_group_primary_gid():
    with Echod({"control_socket_mode": "0666",
                "control_admin_group": group_name(NOGROUP)}) as d:
        open_dir(d)
        with d.connect() as victim:
            victim.sendall(b"v")
            assert recv_exactly(victim, 1) == b"v"
            vid = ctl_json(d, "connections")["connections"][0]["id"]
            assert d.ctl("log-level", "debug", prefix=as_nobody())[:2] == (0, "debug\n")
            assert d.ctl("stats-reset", prefix=as_nobody())[0] == 0
            assert stats(d)["bytes_received"] == 0
            rc, out, err = d.ctl("kill", str(vid), prefix=as_nobody())
            assert rc == 0, err
            assert recv_until_eof(victim, timeout=5) == b""
            rc, out, err = d.ctl("reload", prefix=as_nobody())
            assert rc == 0, err
            assert stats(d)["control_denied"] == 0
            assert f"reload requested by uid {NOBODY}" in d.log()


def test_admin_group_supplementary_gid():
    """Membership through a supplementary group (SO_PEERGROUPS), not the primary gid."""
    users = grp.getgrnam("users").gr_gid if "users" in {g.gr_name for g in grp.getgrall()} \
        else None
    if users is None:
        pytest.skip("no 'users' group")
    with Echod({"control_socket_mode": "0666", "control_admin_group": "users"}) as d:
        open_dir(d)
        rc, out, err = d.ctl("log-level", "debug", prefix=as_nobody(groups=[users]))
        assert (rc, out) == (0, "debug\n"), err
        # Without the group: denied.
        rc, out, err = d.ctl("log-level", "info", prefix=as_nobody())
        assert rc == 4 and "permission denied" in err, (rc, err)
        assert ctl_ok(d, "log-level") == "debug\n"


def test_admin_group_takes_effect_on_reload():
    with Echod({"control_socket_mode": "0666"}) as d:
        open_dir(d)
        assert d.ctl("stats-reset", prefix=as_nobody())[0] == 4
        d.settings["control_admin_group"] = group_name(NOGROUP)
        d.write_config(d.settings)
        ctl_ok(d, "reload")
        rc, out, err = d.ctl("stats-reset", prefix=as_nobody())
        assert rc == 0, err


def test_mode_0600_refuses_connect_with_exit_4():
    with Echod({"control_socket_mode": "0600"}) as d, EchoTraffic(d) as live:
        open_dir(d)
        for args in (("ping",), ("status",), ("reload",)):
            rc, out, err = d.ctl(*args, prefix=as_nobody())
            assert rc == 4, (args, rc, out, err)
            assert err == (f"echoctl: cannot connect to {d.control_socket}: Permission denied "
                           "(run as root, or as a member of the socket's group)\n"), err
        ctl_ok(d, "ping")  # root still gets in
        live.wait_roundtrips(3)


def test_socket_group_lets_members_connect():
    with Echod({"control_socket_mode": "0660",
                "control_socket_group": group_name(NOGROUP)}) as d:
        open_dir(d)
        st = os.stat(d.control_socket)
        assert st.st_gid == NOGROUP and stat.S_IMODE(st.st_mode) == 0o660
        # In the group (primary): connects, reads work, admin still denied.
        assert d.ctl("ping", prefix=as_nobody())[0] == 0
        assert d.ctl("reload", prefix=as_nobody())[0] == 4
        # Not in the group: cannot connect.
        prefix = ["setpriv", f"--reuid={NOBODY}", "--regid=4242", "--clear-groups", "--"]
        rc, out, err = d.ctl("ping", prefix=prefix)
        assert rc == 4 and "Permission denied" in err, (rc, err)


def test_socket_mode_change_applies_on_reload():
    with Echod({"control_socket_mode": "0600"}) as d:
        open_dir(d)
        assert d.ctl("ping", prefix=as_nobody())[0] == 4
        d.settings["control_socket_mode"] = "0666"
        d.write_config(d.settings)
        ctl_ok(d, "reload")
        assert stat.S_IMODE(os.stat(d.control_socket).st_mode) == 0o666
        assert d.ctl("ping", prefix=as_nobody())[0] == 0
