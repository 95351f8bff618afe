# SPDX-License-Identifier: MIT
"""SIGHUP: a valid config takes effect (at once or for new connections, per
key); an invalid one is rejected with file:line and the old one stays."""

import socket

from harness import Echod, echo_roundtrip, free_port, recv_exactly, recv_until_eof


def line_answer(s, line):
    """Sends one line on an open connection, returns the one-line answer."""
    s.sendall(line)
    data = bytearray()
    while not data.endswith(b"\n"):
        data.extend(recv_exactly(s, 1))
    return bytes(data)


def test_valid_reload_changes_prefix_and_max_line_at_once():
    with Echod({"mode": "line", "line_prefix": "old: "}) as d, d.connect() as s:
        assert line_answer(s, b"a\n") == b"old: a\n"
        d.settings.update(line_prefix="new: ", max_line=16)
        d.write_config(d.settings)
        assert d.reload_and_wait() is True
        # The open connection gets the new prefix on its next line ...
        assert line_answer(s, b"b\n") == b"new: b\n"
        # ... and new connections too.
        with d.connect() as s2:
            assert echo_roundtrip(s2, b"c\r\n") == b"new: c\r\n"
        # max_line applies at once as well.
        s.sendall(b"x" * 17 + b"\n")
        assert recv_until_eof(s) == b"ERROR line too long (max 16 bytes)\n"


def test_valid_reload_mode_applies_to_new_connections_only():
    with Echod({"mode": "echo"}) as d, d.connect() as old:
        old.sendall(b"1\n")
        assert recv_exactly(old, 2) == b"1\n"
        d.settings.update(mode="line", line_prefix="L ")
        d.write_config(d.settings)
        assert d.reload_and_wait() is True
        with d.connect() as new:
            assert echo_roundtrip(new, b"2\n") == b"L 2\n"
        old.sendall(b"3\n")
        assert recv_exactly(old, 2) == b"3\n"


def test_reload_of_fixed_settings_warns_and_keeps_listening():
    with Echod({"threads": 2}) as d:
        old_port = d.port
        d.settings.update(port=free_port(), threads=3,
                          control_socket=d.settings["control_socket"] + ".new")
        d.write_config(d.settings)
        assert d.reload_and_wait() is True
        log = d.log()
        for what in ("host/port changed", "threads changed", "control_socket changed"):
            assert what in log and "takes effect on restart" in log, log
        with socket.create_connection(("127.0.0.1", old_port), timeout=5) as s:
            assert echo_roundtrip(s, b"still on the old port") == b"still on the old port"


def test_invalid_reload_keeps_old_config_and_logs_file_line():
    with Echod({"mode": "line", "line_prefix": "keep: "}) as d, d.connect() as s:
        assert line_answer(s, b"a\n") == b"keep: a\n"

        # A syntax error on line 3.
        d.write_config(None, raw='mode = "line";\nline_prefix = "bad: ";\nport = ;\n')
        assert d.reload_and_wait() is False
        assert f"{d.config_path}:3:" in d.log()

        # Valid syntax, two invalid values: each is reported with its line.
        d.write_config(None, raw='mode = "line";\nline_prefix = "bad: ";\n'
                                 'max_line = 3;\nlog_level = "loud";\n')
        assert d.reload_and_wait() is False
        log = d.log()
        assert f"{d.config_path}:3: max_line: 3 is out of range" in log, log
        assert f"{d.config_path}:4: log_level:" in log, log
        assert "keeping the running configuration" in log

        # The old config is in force, for the open and for new connections.
        assert line_answer(s, b"b\n") == b"keep: b\n"
        with d.connect() as s2:
            assert echo_roundtrip(s2, b"c\n") == b"keep: c\n"

        # A missing file is rejected too (the running one was named with -c).
        import os
        os.unlink(d.config_path)
        assert d.reload_and_wait() is False
        assert line_answer(s, b"d\n") == b"keep: d\n"

        # And a later valid reload still works.
        d.settings.update(mode="line", line_prefix="fixed: ")
        d.write_config(d.settings)
        assert d.reload_and_wait() is True
        assert line_answer(s, b"e\n") == b"fixed: e\n"
        assert d.running()
        assert d.stop() == 0
