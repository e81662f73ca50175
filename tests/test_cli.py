"""The hub's own commands: token, validate, serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bridge.protocol.tokens import verify_token

from .helpers import SAMPLES

CLI = [sys.executable, "-m", "bridge"]
SECRET = "cli-test-secret-long-enough-for-hs256"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_token_prints_a_token_the_hub_accepts() -> None:
    result = run("token", "--agent", "agent1", "--role", "provider", "--ttl", "60", env={"BRIDGE_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    claims = verify_token(SECRET, result.stdout.strip())
    assert claims.agent == "agent1" and claims.role == "provider"


def test_token_without_a_secret_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_SECRET"}
    result = subprocess.run([*CLI, "token", "--agent", "a"], capture_output=True, text=True, env=env, timeout=30)
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
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_SECRET"}
    result = subprocess.run([*CLI, "serve", "--port", "0"], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2 and "no secret" in result.stderr


def test_serve_stops_on_a_broken_schema_file(tmp_path: Path) -> None:
    (tmp_path / "oops.json").write_text("{")
    result = run("serve", "--open", "--port", "0", "--schemas", str(tmp_path))
    assert result.returncode == 1
    assert "oops.json" in result.stderr and "not valid JSON" in result.stderr
