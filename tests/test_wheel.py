"""The package works from a wheel, away from the checkout: schemas and pages travel with it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .helpers import SAMPLES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel and install it (without dependencies) into a folder of its own."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, timeout=300)
    [wheel] = out.glob("connect_bridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bridge/_data/schemas/defs.json" in names
    assert "bridge/_data/static/widget.html" in names
    target = out / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, timeout=300)
    return target


def wheel_env(target: Path) -> dict[str, str]:
    # The wheel's copy comes first on the path; the dependencies come from this environment.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])}


def test_the_installed_package_is_the_wheel(installed: Path, tmp_path: Path) -> None:
    code = "import bridge, bridge.protocol.catalog as c; print(bridge.__file__); print(c.builtin_schema_dir())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env=wheel_env(installed), check=True)
    module, schemas = result.stdout.split()
    assert module.startswith(str(installed)) and schemas.startswith(str(installed))


def test_validate_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    files = sorted(str(p) for p in SAMPLES.glob("*.json"))
    result = subprocess.run([sys.executable, "-m", "bridge", "validate", *files], capture_output=True,
                            text=True, cwd=tmp_path, env=wheel_env(installed), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_serve_from_the_wheel_serves_its_pages(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    with running(installed, tmp_path, "serve", "--open", "--port", str(port)):
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/widget.html", timeout=5).read()
        assert b"<html" in page.lower()


@pytest.mark.parametrize("command", [["serve", "--open"], ["demo", "--agents", "1", "--call-every", "0"]])
def test_an_installed_hub_without_the_streams_bundle_says_what_to_run(
    installed: Path, tmp_path: Path, command: list[str]
) -> None:
    port = free_port()
    with running(installed, tmp_path, *command, "--port", str(port)) as stderr:
        status = _status(f"http://127.0.0.1:{port}/vendor/streams/connect-streams-min.js")
    assert status == 404
    [warning] = [line for line in stderr() if "Streams bundle" in line]
    assert "run: connect-bridge fetch-streams" in warning and "--streams-dir" in warning
    assert "npm ci" not in warning and "`" not in warning


@pytest.mark.parametrize("command", [["serve", "--open"], ["demo", "--agents", "1", "--call-every", "0"]])
def test_an_installed_hub_serves_the_bundle_from_streams_dir(
    installed: Path, tmp_path: Path, command: list[str]
) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "connect-streams-min.js").write_text("window.connect = {};\n")
    port = free_port()
    with running(installed, tmp_path, *command, "--port", str(port), "--streams-dir", str(vendor)) as stderr:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/vendor/streams/connect-streams-min.js",
                                      timeout=5).read()
    assert body == b"window.connect = {};\n"
    assert not [line for line in stderr() if "Streams bundle" in line or "connect-streams-min.js" in line]


def test_an_installed_hub_finds_the_bundle_fetch_streams_keeps(installed: Path, tmp_path: Path) -> None:
    """The user data folder (where ``fetch-streams`` saves it) is looked in with no option."""
    kept = tmp_path / "data" / "connect-bridge" / "streams"
    kept.mkdir(parents=True)
    (kept / "connect-streams-min.js").write_text("window.connect = {};\n")
    port = free_port()
    with running(installed, tmp_path, "demo", "--agents", "1", "--call-every", "0", "--port", str(port)):
        status = _status(f"http://127.0.0.1:{port}/vendor/streams/connect-streams-min.js")
    assert status == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(installed: Path, tmp_path: Path, *args: str) -> Iterator[Callable[[], list[str]]]:
    """The installed ``connect-bridge ARGS``, started in an empty folder with an empty user data
    folder (``tmp_path/data``), once its health check answers; yields a function that stops it
    and returns its stderr lines."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {k: v for k, v in wheel_env(installed).items() if not k.startswith("BRIDGE_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    port = args[args.index("--port") + 1]
    proc = subprocess.Popen([sys.executable, "-m", "bridge", *args], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def stop() -> list[str]:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
            lines.extend(err.splitlines())
        return lines

    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(f"{args[0]} exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
            if _status(f"http://127.0.0.1:{port}/healthz") == 200:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"{args[0]} did not start")
        yield stop
    finally:
        stop()


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
