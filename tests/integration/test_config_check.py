# SPDX-License-Identifier: MIT
"""`echod -t`, bad configs, bad command-line arguments, the default path."""

import os
import re

import pytest

from harness import Echod, EchodExited, echo_roundtrip, free_port, run_echod


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def check(tmp, text, name="echod.conf"):
    path = tmp / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return str(path), run_echod(["-t", "-c", str(path)])


def test_valid_config_ok(tmp):
    path, r = check(tmp, 'host = "127.0.0.1";\nport = 7007;\nmode = "line";\n'
                         'line_prefix = "";\nthreads = 0;\nmax_line = 16;\n'
                         'max_connections = 1;\nidle_timeout = 0;\nshutdown_timeout = 0;\n'
                         'control_socket = "";\nlog_level = "debug";\n')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "configuration OK\n"


def test_shipped_config_ok():
    conf = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "echod.conf")
    r = run_echod(["-t", "-c", conf])
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout


BAD = [
    # (config text, line, message fragment)
    ("port = 7007;\nmode = \"echo\";\nthreads = ;\n", 3, "syntax error"),
    ("port = 1;\nport = 2;\n", 2, "duplicate setting"),
    ("port = 1;\nprot = 7007;\n", 2, 'prot: unknown key (did you mean "port"?)'),
    ("max_lines = 100;\n", 1, 'max_lines: unknown key (did you mean "max_line"?)'),
    ("port = \"7007\";\n", 1, "port: expected an integer"),
    ("mode = 1;\n", 1, "mode: expected a string"),
    ("port = 70000;\n", 1, "port: 70000 is out of range (1-65535)"),
    ("port = 0;\n", 1, "port: 0 is out of range (1-65535)"),
    ("threads = 1025;\n", 1, "threads: 1025 is out of range"),
    ("max_line = 15;\n", 1, "max_line: 15 is out of range"),
    ("max_line = 16777217;\n", 1, "max_line: 16777217 is out of range"),
    ("max_connections = 0;\n", 1, "max_connections: 0 is out of range"),
    ("idle_timeout = -1;\n", 1, "idle_timeout: -1 is out of range"),
    ("shutdown_timeout = 3601;\n", 1, "shutdown_timeout: 3601 is out of range"),
    ("\n\nmode = \"lines\";\n", 3, 'mode: "lines" is not a mode'),
    ("log_level = \"verbose\";\n", 1, 'log_level: "verbose" is not a log level'),
    ("control_socket = \"run/echod.sock\";\n", 1, "control_socket: \"run/echod.sock\" is not an absolute path"),
    ("line_prefix = \"" + "p" * 1025 + "\";\n", 1, "line_prefix: is 1025 bytes long"),
    ("host = \"\";\n", 1, "host: must not be empty"),
]


@pytest.mark.parametrize("text,line,message", BAD, ids=[b[2][:30] for b in BAD])
def test_bad_config_reported_with_file_and_line(tmp, text, line, message):
    path, r = check(tmp, text)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "configuration OK" not in r.stdout
    assert f"{path}:{line}: " in r.stderr, r.stderr
    assert message in r.stderr, r.stderr


def test_every_error_is_reported(tmp):
    path, r = check(tmp, 'port = 70000;\nprot = 1;\nmode = "x";\nthreads = "2";\n'
                         'log_level = "loud";\n')
    assert r.returncode == 1
    for line in range(1, 6):
        assert f"{path}:{line}: " in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 5, r.stderr


def test_missing_config_file_named_with_c(tmp):
    path = str(tmp / "nope.conf")
    r = run_echod(["-t", "-c", path])
    assert r.returncode == 1
    assert path in r.stderr and "cannot open" in r.stderr, r.stderr


def test_config_path_is_a_directory(tmp):
    r = run_echod(["-t", "-c", str(tmp)])
    assert r.returncode == 1
    assert str(tmp) in r.stderr, r.stderr


def test_echod_does_not_start_on_invalid_config():
    d = Echod()
    d.write_config(None, raw=f'port = {d.port};\ncontrol_socket = "";\nidle_timeout = "soon";\n')
    with pytest.raises(EchodExited) as e:
        with d:
            pass
    assert e.value.returncode == 1
    assert f"{d.config_path}:3: idle_timeout:" in e.value.log
    assert "not starting" in e.value.log


@pytest.mark.parametrize("args,message", [
    (["--bogus"], "unknown option"),
    (["-x"], "unknown option"),
    (["--port", "70000"], "out of range"),
    (["--port", "http"], "not an integer"),
    (["--threads", "x"], "not an integer"),
    (["--threads", "-1"], "out of range"),
    (["--host", ""], "host"),
    (["-c"], "needs an argument"),
    (["extra"], "unexpected argument"),
    (["-c", ""], "empty"),
])
def test_bad_arguments_exit_2(args, message):
    r = run_echod(args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr


def test_bad_argument_with_check_config_exits_2(tmp):
    path, _ = check(tmp, "port = 7007;\n")
    r = run_echod(["-t", "-c", path, "--port", "70000"])
    assert r.returncode == 2, r.stderr


def test_help_and_version():
    r = run_echod(["--help"])
    assert r.returncode == 0 and "Usage: echod" in r.stdout
    r = run_echod(["-V"])
    assert r.returncode == 0 and re.match(r"echod \d+\.\d+", r.stdout)


def test_command_line_overrides_file():
    port = free_port()
    with Echod({"port": 1}, args=["--port", str(port), "--threads", "1"]) as d:
        d.port = port
        with d.connect() as s:
            assert echo_roundtrip(s, b"override") == b"override"
        assert "with 1 thread" in d.log()


def default_config_path():
    m = re.search(r"configuration file \(default (\S+)\)", run_echod(["--help"]).stdout)
    assert m, "echod --help does not name the default config path"
    return m.group(1)


def test_default_path_missing_means_defaults_with_notice():
    path = default_config_path()
    if os.path.exists(path):
        pytest.skip(f"{path} exists on this machine")
    port = free_port()
    r = run_echod(["-t", "--port", str(port)])
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout
    assert f"no config file at {path}" in r.stderr, r.stderr
    # And it really serves with the built-in defaults. Those include the
    # control socket under the runtime directory (/run/echod), which only
    # root may create.
    d = Echod(args=["--port", str(port), "--threads", "1"], use_config=False)
    d.port = port
    try:
        d.start()
    except EchodExited as e:
        if "control" in e.log and os.geteuid() != 0:
            d.close_files()
            pytest.skip(f"the default control socket needs root:\n{e.log}")
        raise
    with d:
        with d.connect() as s:
            assert echo_roundtrip(s, b"\0defaults\n") == b"\0defaults\n"
        assert f"no config file at {path}" in d.log()
        assert d.stop() == 0  # and removes its control socket
