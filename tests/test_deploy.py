"""deploy/: the Grafana dashboard queries metrics a real hub exports; the systemd unit and the
Containerfile start ``connect-bridge serve`` with options and variables that exist.

No container is built here (no container engine on the test machines): the
Containerfile is checked for what can be checked without one.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from bridge.cli.main import main
from bridge.hub.server import HubServer
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import join_app, prerequisite_missing, within

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "connect-bridge.json"
UNIT = DEPLOY / "systemd" / "connect-bridge.service"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
README = DEPLOY / "README.md"
#: The settings an operator must give for a site, each marked "# CHANGE:" where it is set.
MUST_CHANGE = ("BRIDGE_PUBLIC_HOSTS", "BRIDGE_ALLOW_ORIGINS", "BRIDGE_REDIS_URL")


def serve_help() -> str:
    result = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def serve_options() -> set[str]:
    return set(re.findall(r"(--[a-z][a-z-]*)", serve_help()))


def serve_variables() -> set[str]:
    return set(re.findall(r"\b(BRIDGE_[A-Z_]+)\b", serve_help()))


# --- the dashboard ---------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    parsed = json.loads(DASHBOARD.read_text())
    assert isinstance(parsed, dict)
    return parsed


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a JSON document, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def queried_metrics() -> set[str]:
    names: set[str] = set()
    for key, value in walk(dashboard()):
        if key in ("expr", "definition") and isinstance(value, str):
            names |= set(re.findall(r"\b(bridge_[a-z_]+)\b", value))
    return names


def test_the_dashboard_uses_only_its_prometheus_input() -> None:
    board = dashboard()
    assert [item["name"] for item in board["__inputs"]] == ["DS_PROMETHEUS"]
    sources = [value for key, value in walk(board) if key == "datasource"]
    assert sources, "no panel names a datasource"
    assert all(source == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"} for source in sources), sources
    assert set(re.findall(r"\$\{(DS_[A-Z_]+)\}", DASHBOARD.read_text())) == {"DS_PROMETHEUS"}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and all(target["expr"] for target in panel["targets"]), panel["title"]


def test_the_dashboard_has_the_panels_an_operator_needs() -> None:
    titles = " | ".join(panel["title"] for panel in dashboard()["panels"]).lower()
    for wanted in ("connections by role", "frames in", "errors sent", "request latency", "slow-consumer",
                   "flood", "broker health", "closed by the hub"):
        assert wanted in titles, wanted


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_every_metric_the_dashboard_queries_is_exported_by_a_hub(hub: HubServer, va: VirtualAgent) -> None:
    """After some traffic (a request answered, an error, a close), every queried name is on /metrics."""
    app = await join_app(hub.url)
    await app.send({"channel": "Amazon", "topic": "Agent", "subtopic": "SetReady", "source": "deploy", "id": "r1"})

    async def answered() -> None:
        while (await app.recv()).get("replyTo") != "r1":
            pass

    await within(answered())  # bridge_request_seconds
    await app.send("not JSON")  # an error envelope: bridge_errors_total
    assert (await app.recv_kind("ApiError"))["data"]["errorType"] == "INVALID_JSON"
    binary = await join_app(hub.url)
    await binary.ws.send(b"\x00")  # closed by the hub: bridge_disconnects_total
    assert await binary.closed() == 1008
    with pytest.raises(urllib.error.HTTPError):  # an error status: bridge_http_errors_total
        await asyncio.to_thread(fetch, hub.http_url + "/no-such-page")
    exposition = await asyncio.to_thread(fetch, hub.http_url + "/metrics")
    exported = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines()
                if line and not line.startswith("#")}
    queried = queried_metrics()
    assert {"bridge_connections", "bridge_request_seconds_bucket", "bridge_disconnects_total",
            "bridge_http_errors_total"} <= queried
    assert queried - exported == set(), f"the dashboard queries metrics no hub exports: {queried - exported}"
    await app.close()


# --- the systemd unit -----------------------------------------------------------------------------------


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) for every setting of the unit, in order (keys may repeat)."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), raw
            section = line[1:-1]
            continue
        key, equals, value = line.partition("=")
        assert equals, f"not a key=value line: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_value(key: str) -> list[str]:
    return [value for section, name, value in unit_entries() if section == "Service" and name == key]


def test_the_unit_runs_serve_with_options_that_exist() -> None:
    [command] = unit_value("ExecStart")
    words = command.split()
    assert words[0].endswith("/connect-bridge") and words[1] == "serve"
    used = {word for word in words if word.startswith("--")}
    assert used and used <= serve_options(), used - serve_options()
    assert "--secret-file" in used and "${CREDENTIALS_DIRECTORY}/secret" in words
    assert [value.split(":")[0] for value in unit_value("LoadCredential")] == ["secret"]


def test_the_unit_sets_only_variables_that_exist_and_marks_what_to_change() -> None:
    text = UNIT.read_text()
    assert set(re.findall(r"\b(BRIDGE_[A-Z_]+)=", text)) <= serve_variables()
    for name in (*MUST_CHANGE, "BRIDGE_HOST"):
        assert re.search(rf"# CHANGE:.*\n(?:#.*\n)*#?Environment=\"?{name}=", text), name
    assert re.search(r"# CHANGE:.*secret", text)


def test_the_unit_is_hardened() -> None:
    settings = {(key, value) for section, key, value in unit_entries() if section == "Service"}
    for wanted in [("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                   ("Restart", "on-failure"), ("CapabilityBoundingSet", ""), ("PrivateTmp", "yes")]:
        assert wanted in settings, wanted
    assert int(unit_value("LimitNOFILE")[0]) >= 65536
    assert unit_value("RestartPreventExitStatus") == ["1 2"]  # a broken schema or setting: no restart loop


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        prerequisite_missing("systemd-analyze is not installed (Debian: apt-get install systemd)")
    command = shutil.which("connect-bridge") or str(ROOT / ".venv" / "bin" / "connect-bridge")
    unit = tmp_path / "connect-bridge.service"  # verify checks that the command exists: this machine's
    unit.write_text(UNIT.read_text().replace("/opt/connect-bridge/bin/connect-bridge", command))
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=60, check=False)
    # verify exits 0 after warnings (an unknown key, a value it cannot parse): any output is a failure.
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr


# --- the Containerfile ----------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    found: list[tuple[str, str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def last(instruction: str) -> str:
    return [rest for word, rest in instructions() if word == instruction][-1]


def test_the_container_runs_serve_with_options_that_exist() -> None:
    entrypoint, command = json.loads(last("ENTRYPOINT")), json.loads(last("CMD"))
    assert entrypoint == ["connect-bridge"] and command[0] == "serve"
    used = {word for word in command if word.startswith("--")}
    assert used <= serve_options(), used - serve_options()
    assert set(re.findall(r"\b(BRIDGE_[A-Z_]+)\b", CONTAINERFILE.read_text())) <= serve_variables()


def test_the_container_runs_as_a_user_on_python_3_11_with_a_health_check_over_loopback() -> None:
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms[-1] == "docker.io/library/python:3.11-slim"
    user = last("USER").split(":")[0]
    assert user not in ("root", "0")
    assert last("EXPOSE") == "8765"
    check = last("HEALTHCHECK")
    assert "http://127.0.0.1:" in check and "/healthz" in check  # /healthz answers loopback only
    for word, rest in instructions():
        if word == "COPY" and "--from=" not in rest:
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_the_container_fetches_the_streams_version_package_json_pins() -> None:
    pinned = orjson.loads((ROOT / "package.json").read_bytes())["dependencies"]["amazon-connect-streams"]
    assert f"ARG STREAMS_VERSION={pinned}" in CONTAINERFILE.read_text()
    assert "npm pack" in CONTAINERFILE.read_text()


def test_the_container_marks_what_to_change() -> None:
    text = CONTAINERFILE.read_text()
    for name in MUST_CHANGE:
        assert re.search(rf"# CHANGE: {name}", text), name
    assert re.search(r"# CHANGE: the token secret", text)


# --- the README -----------------------------------------------------------------------------------------


def test_the_readme_names_every_setting_to_change() -> None:
    text = README.read_text()
    for name in (*MUST_CHANGE, "BRIDGE_HOST", "BRIDGE_SECRET_FILE", "--log-format", "/healthz"):
        assert name in text, name
    for path in ("grafana/connect-bridge.json", "systemd/connect-bridge.service", "container/Containerfile"):
        assert path in text and (DEPLOY / path).is_file(), path
