"""The package works from a wheel, away from the checkout: schemas and pages travel with it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
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
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--open", "--port", str(port)],
                            cwd=tmp_path, env=wheel_env(installed), stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/widget.html", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the hub did not start")
        assert b"<html" in page.lower()
    finally:
        proc.terminate()
        proc.wait(10)
