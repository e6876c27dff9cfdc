"""Typed config: precedence, conversion, validation, and the one-line exit-2 error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ferlite.services.common.config import ConfigError, load_config
from tests.support.procs import ROOT
from tests.support.sleepy import SleepyConfig


def test_flags_beat_environment_beat_defaults() -> None:
    env = {"FERLITE_SLEEPY_PORT": "6000", "FERLITE_SLEEPY_GRACE_SECONDS": "3.5"}
    cfg = load_config(SleepyConfig, ["--port", "7000"], environ=env)
    assert cfg.port == 7000
    assert cfg.grace_seconds == 3.5
    assert cfg.max_workers == SleepyConfig().max_workers


@pytest.mark.parametrize(("argv", "env", "needle"), [
    (["--port", "70000"], {}, "port=70000 is not a port number"),
    ([], {"FERLITE_SLEEPY_PORT": "http"}, "FERLITE_SLEEPY_PORT='http' is not an integer"),
    (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"], {},
     "tls_cert='/nonexistent/cert.pem': no such file"),
    (["--tls-cert", "/etc/hostname"], {}, "tls_cert and tls_key must be given together"),
    (["--log-level", "LOUD"], {}, "log_level='LOUD'"),
])
def test_invalid_settings_raise_one_clear_message(argv, env, needle) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(SleepyConfig, argv, environ=env)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("argv", [
    ["--port", "99999"],
    ["--tls-cert", "/missing/cert.pem", "--tls-key", "/missing/key.pem"],
])
def test_service_exits_2_with_one_line(argv) -> None:
    result = subprocess.run([sys.executable, "-m", "tests.support.sleepy", *argv], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sleepy: config error:")


def test_port_in_use_exits_1_with_one_line() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "tests.support.sleepy", "--port", str(port),
                                 "--metrics-port", "-1"], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1
    assert "sleepy: cannot start:" in result.stderr


def test_a_port_the_last_run_left_in_time_wait_is_free_for_the_next_stack() -> None:
    """`ferlite demo` twice in a row: the first run's closed connections (its /metrics reads) leave
    the service ports in TIME_WAIT. The servers bind with SO_REUSEADDR, so the port is usable; the
    free-port check must bind the same way, not refuse the second run."""
    import socket

    from ferlite.app.stack import _port_free

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    assert not _port_free("127.0.0.1", port)  # a listener: busy
    conn.close()  # the server's side closes first, so its end waits in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # the old check (a plain bind) calls this port busy
    assert _port_free("127.0.0.1", port)
