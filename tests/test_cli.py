"""The hub's own commands: token, validate, serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import warnings
from pathlib import Path

import click
from jwt.warnings import InsecureKeyLengthWarning

from bridge.cli.main import main as connect_bridge
from bridge.cli.urls import local_host
from bridge.protocol.tokens import verify_token

from .helpers import SAMPLES, free_port

CLI = [sys.executable, "-m", "bridge"]
SECRET = "cli-test-secret-long-enough-for-hs256"


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any BRIDGE_ variable, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}, **extra}


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env=environment(**(env or {})))


def test_token_prints_a_token_the_hub_accepts() -> None:
    result = run("token", "--agent", "agent1", "--role", "provider", "--ttl", "60", env={"BRIDGE_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    claims = verify_token(SECRET, result.stdout.strip())
    assert claims.agent == "agent1" and claims.role == "provider"


def test_token_without_a_secret_says_so() -> None:
    result = run("token", "--agent", "a")
    assert result.returncode == 2 and "BRIDGE_SECRET" in result.stderr


def test_validate_passes_every_sample() -> None:
    files = sorted(str(p) for p in SAMPLES.glob("*.json"))
    result = run("validate", *files)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count(": OK") == len(files)


def test_validate_names_the_path_and_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"channel": "Amazon", "topic": "Agent", "subtopic": "SetNotReady",
                               "source": "x", "data": {"ReasonCodeId": 5}}))
    good = SAMPLES / "SetReady.request.json"
    result = run("validate", str(good), str(bad))
    assert result.returncode == 1
    assert f"{good}: OK" in result.stdout
    assert f"{bad}: FAIL $.data.ReasonCodeId: 5 is not of type 'string' (type)" in result.stdout


def test_serve_refuses_open_mode_off_loopback() -> None:
    result = run("serve", "--open", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2 and "--open-anywhere" in result.stderr


def test_serve_needs_a_secret_unless_open() -> None:
    result = run("serve", "--port", "0")
    assert result.returncode == 2 and "no secret" in result.stderr


def test_serve_stops_on_a_broken_schema_file(tmp_path: Path) -> None:
    (tmp_path / "oops.json").write_text("{")
    result = run("serve", "--open", "--port", "0", "--schemas", str(tmp_path))
    assert result.returncode == 1
    assert "oops.json" in result.stderr and "not valid JSON" in result.stderr


def test_serve_takes_its_settings_from_the_environment() -> None:
    """The variables reach a real node: BRIDGE_OPEN_MODE and BRIDGE_PORT, no option given."""
    port = free_port()
    env = environment(BRIDGE_OPEN_MODE="yes", BRIDGE_PORT=str(port))
    process = subprocess.Popen([*CLI, "serve"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        lines = iter(process.stderr.readline, "")
        assert any(f"listening on ws://127.0.0.1:{port}/ws" in line for line in lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200 and "connections" in json.loads(response.read())
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_token_reads_the_secret_file_from_the_environment(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    result = run("token", "--agent", "agent1", env={"BRIDGE_SECRET_FILE": str(secret_file)})
    assert result.returncode == 0, result.stderr
    assert verify_token(SECRET, result.stdout.strip()).agent == "agent1"


def test_token_refuses_a_secret_on_the_command_line() -> None:
    result = run("token", "--agent", "agent1", "--secret", SECRET)
    assert result.returncode == 2 and "process list" in result.stderr


def test_serve_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--open", "--port", str(port))
    assert result.returncode == 3, result.stderr  # demo's status, and the clients' "cannot connect"
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot listen on 127.0.0.1:{port}: address already in use"]  # as demo says it


def test_serve_on_an_address_not_on_this_machine_says_so() -> None:
    result = run("serve", "--open", "--open-anywhere", "--host", "203.0.113.5", "--port", "0")
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "error: cannot listen on 203.0.113.5:0: cannot assign requested address" in result.stderr


def test_serve_on_every_address_shows_a_health_url_that_opens() -> None:
    """Bound to 0.0.0.0, the start-up line's health URL is a loopback one a browser can open."""
    port = free_port()
    env = environment(BRIDGE_SECRET=SECRET)
    process = subprocess.Popen([*CLI, "serve", "--host", "0.0.0.0", "--port", str(port)],
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        line = next(line for line in iter(process.stderr.readline, "") if "listening on" in line)
        assert f"(health: http://127.0.0.1:{port}/healthz)" in line and "http://0.0.0.0" not in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_local_host_for_every_address() -> None:
    assert [local_host(h) for h in ("0.0.0.0", "::", "127.0.0.1", "::1", "hub.example.com")] == [
        "127.0.0.1", "[::1]", "127.0.0.1", "[::1]", "hub.example.com"]


def test_token_with_a_short_secret_warns_in_one_line_of_our_own() -> None:
    result = run("token", "--agent", "agent1", env={"BRIDGE_SECRET": "short", "PYTHONWARNINGS": "always"})
    assert result.returncode == 0, result.stderr
    with warnings.catch_warnings():  # the check below, not the command, meets PyJWT's warning here
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        assert verify_token("short", result.stdout.strip()).agent == "agent1"
    assert "InsecureKeyLengthWarning" not in result.stderr  # PyJWT's own, with a source line
    assert result.stderr.strip().splitlines() == [
        "WARNING: the token secret is shorter than 32 bytes; tokens signed with it are easier to forge "
        "(make one with: openssl rand -hex 32)."]


def test_token_with_a_long_secret_says_nothing() -> None:
    result = run("token", "--agent", "agent1", env={"BRIDGE_SECRET": SECRET, "PYTHONWARNINGS": "always"})
    assert result.returncode == 0 and result.stderr == ""


def test_every_option_has_help() -> None:
    """``--help`` explains every option of every command."""
    def missing(command: click.Command, path: str) -> list[str]:
        if isinstance(command, click.Group):
            return [gap for name, sub in command.commands.items() for gap in missing(sub, f"{path} {name}")]
        return [f"{path} {param.opts[0]}" for param in command.params
                if isinstance(param, click.Option) and not param.hidden and not param.help]

    assert missing(connect_bridge, "connect-bridge") == []
