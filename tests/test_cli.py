"""The hub's own commands: token, validate, serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

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
