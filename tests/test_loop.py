"""``serve --loop`` and ``demo --loop``: asyncio's own event loop, uvloop, or auto.

A real ``serve --loop uvloop`` subprocess answers a real client; the choice
itself (flag, variable, file, default, a missing uvloop) is checked
in-process with click's runner and ``run_hub`` replaced by one that records
the loop it runs on. uvloop is "not installed" by a ``None`` in
``sys.modules``, which makes ``import uvloop`` raise ``ImportError`` as a
missing package does.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bridge.cli import apps
from bridge.cli.loops import INSTALL_UVLOOP, running_loop_name
from bridge.hub.config import DEFAULT_LOOP, DEFAULTS, HubConfig

from .helpers import free_port, join, prerequisite_missing

pytestmark = pytest.mark.usefixtures("no_bridge_environment")
cli = importlib.import_module("bridge.cli.main")


@pytest.fixture
def loops_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The loops ``serve`` ran its (replaced) ``run_hub`` on; nothing listens."""
    ran: list[str] = []

    async def run_hub(config: HubConfig, *, ready_message: bool = True) -> int:
        ran.append(running_loop_name())
        return 0

    monkeypatch.setattr(cli, "run_hub", run_hub)
    return ran


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)


def serve(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli.main, ["serve", "--open", *args], env=env)


def needs_uvloop() -> None:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        prerequisite_missing("uvloop is not installed (pip install -e '.[test]')")


# ----- a real node on uvloop --------------------------------------------------------------


async def test_serve_on_uvloop_welcomes_a_real_client() -> None:
    needs_uvloop()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "serve", "--open", "--port", str(port), "--loop", "uvloop",
        stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(30):
            line = (await process.stderr.readline()).decode()
            while line and "listening on" not in line:
                line = (await process.stderr.readline()).decode()
        assert line.rstrip().endswith("; event loop: uvloop"), line
        url = f"ws://127.0.0.1:{port}/ws"
        provider, _ = await join(url, "provider")  # join asserts the Welcome
        app, welcome = await join(url, "app")
        assert welcome["subtopic"] == "Welcome"
        status = await app.recv()
        assert status["subtopic"] == "ProviderStatus" and status["message"] == {"connected": True}, status
        await app.close()
        await provider.close()
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await process.communicate()
    assert process.returncode == 0


# ----- the choice -------------------------------------------------------------------------


def test_the_default_is_the_one_place_it_is_spelled(loops_run: list[str]) -> None:
    """DEFAULT_LOOP is the one line to flip (asyncio until issue 15's measurements say otherwise)."""
    assert DEFAULTS.loop == DEFAULT_LOOP
    assert serve().exit_code == 0
    assert serve("--loop", DEFAULT_LOOP).exit_code == 0
    assert loops_run[0] == loops_run[1]


def test_flag_variable_and_file_pick_the_loop(loops_run: list[str], tmp_path: Path) -> None:
    needs_uvloop()
    config_file = tmp_path / "hub.toml"
    config_file.write_text('loop = "uvloop"\n')
    for result in (serve("--loop", "uvloop"), serve(BRIDGE_LOOP="uvloop"), serve("--config", str(config_file)),
                   serve("--loop", "auto"), serve("--loop", "asyncio", BRIDGE_LOOP="uvloop")):
        assert result.exit_code == 0, result.output
    assert loops_run == ["uvloop", "uvloop", "uvloop", "uvloop", "asyncio"]


def test_print_config_shows_the_loop_and_where_it_came_from(loops_run: list[str]) -> None:
    result = serve("--print-config", BRIDGE_LOOP="auto")
    assert result.exit_code == 0 and not loops_run
    assert [line.split() for line in result.stdout.splitlines() if line.startswith("loop ")] == [
        ["loop", '"auto"', "env"]]


def test_auto_without_uvloop_runs_on_asyncio(loops_run: list[str], no_uvloop: None) -> None:
    assert serve("--loop", "auto").exit_code == 0
    assert loops_run == ["asyncio"]


@pytest.mark.parametrize("args", [("--loop", "uvloop"), ("--loop", "uvloop", "--print-config")])
def test_uvloop_without_the_package_says_what_to_install(
    args: tuple[str, ...], loops_run: list[str], no_uvloop: None
) -> None:
    result = serve(*args)
    assert result.exit_code == 2 and not loops_run
    assert result.output.splitlines() == [
        f"Error: --loop uvloop: the uvloop package is not installed ({INSTALL_UVLOOP})"]
    assert INSTALL_UVLOOP == "pip install 'connect-bridge[uvloop]'"


def test_an_unknown_loop_is_a_usage_error(loops_run: list[str], tmp_path: Path) -> None:
    result = serve(BRIDGE_LOOP="trio")
    assert result.exit_code == 2 and "'--loop'" in result.output and "BRIDGE_LOOP" in result.output
    config_file = tmp_path / "hub.toml"
    config_file.write_text('loop = "trio"\n')
    result = serve("--config", str(config_file))
    assert result.exit_code == 2 and "key 'loop'" in result.output
    assert not loops_run


# ----- demo -------------------------------------------------------------------------------


@pytest.fixture
def demos_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The loops ``demo`` ran its (replaced) ``run_demo`` on; nothing listens."""
    ran: list[str] = []

    async def run_demo(*args: object, **kwargs: object) -> int:
        ran.append(running_loop_name())
        return 0

    monkeypatch.setattr(apps, "run_demo", run_demo)
    return ran


def demo(*args: str) -> Result:
    return CliRunner().invoke(cli.main, ["demo", *args])


def test_demo_takes_the_same_choice(demos_run: list[str]) -> None:
    needs_uvloop()
    for args in ((), ("--loop", DEFAULT_LOOP), ("--loop", "uvloop"), ("--loop", "asyncio")):
        assert demo(*args).exit_code == 0
    assert demos_run[0] == demos_run[1] and demos_run[2:] == ["uvloop", "asyncio"]
    loop_option = next(p for p in apps.demo.params if p.name == "loop")
    assert loop_option.default == DEFAULTS.loop and loop_option.envvar is None  # demo reads no variable


def test_demo_on_uvloop_without_the_package_says_what_to_install(demos_run: list[str], no_uvloop: None) -> None:
    result = demo("--loop", "uvloop")
    assert result.exit_code == 2 and not demos_run
    assert INSTALL_UVLOOP in result.output
