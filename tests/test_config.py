"""Settings spelled once: HubConfig's fields, the ``serve`` options and variables, and docs/configuration.md.

``serve`` runs in-process with click's runner; ``run_hub`` is replaced, so no
server starts: the tests look at the :class:`HubConfig` it would have run.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import click
import pytest
from click.testing import CliRunner, Result

from bridge.brokers import MemoryBroker
from bridge.brokers.redis.settings import RedisSettings
from bridge.cli import apps
from bridge.hub.config import DEFAULTS, HubConfig, env_name, make_broker

pytestmark = pytest.mark.usefixtures("no_bridge_environment")
cli = importlib.import_module("bridge.cli.main")


def serve(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli.main, ["serve", *args], env=env)


ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
SECRET = "config-test-secret-long-enough-for-hs256"
FIELDS = {spec.name: spec for spec in fields(HubConfig)}
HINTS = get_type_hints(HubConfig)
#: ``serve`` options that are not HubConfig fields: each is documented in docs/configuration.md.
NOT_FIELDS = {"secret_file", "open_anywhere", "config"}
#: Every setting of ``serve`` (``--print-config`` is an action, not a setting: tests/test_config_file.py).
SERVE_OPTIONS = {param.name: param for param in cli.serve.params
                 if isinstance(param, click.Option) and param.name != "print_config"}
#: Settings that only go in pairs: their partner is set alongside in the tests of one variable.
PARTNERS = {"certfile": "keyfile", "keyfile": "certfile"}


def served(started: list[HubConfig], *args: str, **env: str) -> HubConfig:
    result = serve(*args, **env)
    assert result.exit_code == 0, result.output
    return started[-1]


# ----- one place -------------------------------------------------------------------------


def test_every_field_has_a_default_and_help() -> None:
    for name, spec in FIELDS.items():
        assert spec.default is not MISSING, name
        assert spec.metadata["help"].strip(), name


def test_every_field_is_a_serve_option_with_its_environment_variable() -> None:
    for name in FIELDS:
        option = SERVE_OPTIONS[name]
        assert option.envvar == env_name(name) == f"BRIDGE_{name.upper()}"
        assert option.show_envvar
        assert option.default == FIELDS[name].default
        # Only the secret is kept off the command line (the process list would show it).
        assert option.hidden == (name == "secret"), name


def test_every_serve_option_is_a_field_or_a_documented_exception() -> None:
    assert set(SERVE_OPTIONS) - set(FIELDS) == NOT_FIELDS
    for name in NOT_FIELDS:
        assert SERVE_OPTIONS[name].envvar == env_name(name)


def test_the_options_keep_their_documented_names() -> None:
    names = {opt for param in SERVE_OPTIONS.values() for opt in param.opts}
    assert {
        "--host", "--port", "--secret-file", "--open", "--open-anywhere", "--allow-origin", "--schemas",
        "--static", "--streams-dir", "--redis", "--redis-prefix", "--redis-heartbeat", "--redis-provider-ttl",
        "--redis-retained-ttl", "--request-timeout", "--hello-timeout", "--token-leeway", "--max-frame-size",
        "--rate-limit", "--rate-burst", "--max-send-buffer", "--max-connections-per-agent", "--compression",
    } <= names


def test_the_redis_defaults_are_the_brokers() -> None:
    assert DEFAULTS.redis_settings() == RedisSettings()


def test_other_commands_take_the_hubs_defaults() -> None:
    assert f"ws://{DEFAULTS.host}:{DEFAULTS.port}/ws" == apps.DEFAULT_URL
    assert DEFAULTS.request_timeout < apps.SEND_TIMEOUT
    demo_port = next(p for p in apps.demo.params if p.name == "port")
    assert demo_port.default == DEFAULTS.port and demo_port.envvar is None


# ----- values from the command line and the environment -----------------------------------


def sample(name: str, tmp_path: Path) -> tuple[str, Any]:
    """A value for the field other than its default: as the environment spells it, and as parsed."""
    hint, default = HINTS[name], FIELDS[name].default
    if hint is bool:
        return "yes", True
    if hint is int:
        return str(default + 1), default + 1
    if hint is float:
        return str(default + 1.5), default + 1.5
    if hint is str:
        return "localhost", "localhost"  # a host --open accepts, and a prefix
    if get_origin(hint) is Literal:  # a choice: another than the default
        other = next(choice for choice in get_args(hint) if choice != default)
        return other, other
    if hint == str | None:
        return "redis://redis.example:6379/2", "redis://redis.example:6379/2"
    if hint == tuple[str, ...]:
        return "https://a.example https://b.example", ("https://a.example", "https://b.example")
    if FIELDS[name].metadata["file"]:
        path = tmp_path / f"{name}.pem"
        path.write_text("PEM\n")  # run_hub is replaced: nothing reads it
        return str(path), path
    folders = [tmp_path / "one", tmp_path / "two"]
    for folder in folders:
        folder.mkdir(exist_ok=True)
    if hint == tuple[Path, ...]:
        return ":".join(map(str, folders)), tuple(folders)
    assert hint == Path | None, hint
    return str(folders[0]), folders[0]


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_an_environment_variable_sets_its_field(name: str, started: list[HubConfig], tmp_path: Path) -> None:
    text, value = sample(name, tmp_path)
    env = {} if name == "secret" else {"BRIDGE_OPEN_MODE": "1"}  # one of the two, or serve refuses
    partner = PARTNERS.get(name)
    if partner is not None:
        env[env_name(partner)] = sample(partner, tmp_path)[0]
    config = served(started, **{**env, env_name(name): text})
    assert getattr(config, name) == value
    assert all(getattr(config, other) == getattr(DEFAULTS, other)
               for other in FIELDS if other not in (name, "open_mode", partner))


def test_the_command_line_wins_over_the_environment(started: list[HubConfig], tmp_path: Path) -> None:
    config = served(started, "--open", "--port", "2222", "--redis-heartbeat", "1",
                    BRIDGE_PORT="1111", BRIDGE_REDIS_HEARTBEAT="3", BRIDGE_RATE_BURST="7")
    assert (config.port, config.redis_heartbeat, config.rate_burst) == (2222, 1.0, 7)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    config = served(started, "--secret-file", str(secret_file), BRIDGE_SECRET="from-the-environment" * 2)
    assert config.secret == SECRET and not config.open_mode


def test_the_secret_file_can_come_from_the_environment(started: list[HubConfig], tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    assert served(started, BRIDGE_SECRET_FILE=str(secret_file)).secret == SECRET


def test_the_old_redis_variables_reach_the_broker(started: list[HubConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    """BRIDGE_REDIS_HEARTBEAT and friends were read by the broker; now serve reads them."""
    config = served(started, "--open", "--redis", "redis://127.0.0.1:6379/0", BRIDGE_REDIS_HEARTBEAT="0.5",
                    BRIDGE_REDIS_PROVIDER_TTL="2.5", BRIDGE_REDIS_RETAINED_TTL="0",
                    BRIDGE_REDIS_RECONNECT_MAX="0.5", BRIDGE_REDIS_TIMEOUT="1", BRIDGE_REDIS_PREFIX="p")
    made: list[tuple[str, RedisSettings]] = []

    class FakeRedisBroker(MemoryBroker):
        def __init__(self, url: str, *, settings: RedisSettings) -> None:
            super().__init__()
            made.append((url, settings))

    import bridge.brokers.redis

    monkeypatch.setattr(bridge.brokers.redis, "RedisBroker", FakeRedisBroker)
    assert isinstance(make_broker(config), FakeRedisBroker)
    assert made == [("redis://127.0.0.1:6379/0", RedisSettings(
        prefix="p", heartbeat=0.5, provider_ttl=2.5, retained_ttl=0, reconnect_max=0.5, timeout=1))]
    assert type(make_broker(HubConfig())) is MemoryBroker


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"BRIDGE_PORT": "abc"}, (), ["'--port'", "BRIDGE_PORT", "'abc'"]),
        ({"BRIDGE_PORT": "70000"}, (), ["'--port'", "BRIDGE_PORT", "70000"]),
        ({}, ("--port", "-1"), ["'--port'", "-1"]),
        ({"BRIDGE_REQUEST_TIMEOUT": "0"}, (), ["'--request-timeout'", "BRIDGE_REQUEST_TIMEOUT", "x>0"]),
        ({"BRIDGE_REDIS_TIMEOUT": "soon"}, (), ["'--redis-timeout'", "BRIDGE_REDIS_TIMEOUT", "'soon'"]),
        ({"BRIDGE_COMPRESSION": "maybe"}, (), ["'--compression'", "BRIDGE_COMPRESSION", "'maybe'"]),
        ({"BRIDGE_REDIS_HEARTBEAT": "7"}, (), ["provider_ttl (6 s) must exceed the heartbeat (7 s)"]),
        ({"BRIDGE_STATIC_DIR": "/no/such/folder"}, (), ["'--static'", "BRIDGE_STATIC_DIR", "does not exist"]),
    ],
)
def test_a_bad_value_names_its_option_and_variable(
    env: dict[str, str], args: tuple[str, ...], named: list[str], started: list[HubConfig]
) -> None:
    result = serve("--open", *args, **env)
    assert result.exit_code == 2 and not started
    for text in named:
        assert text in result.output, result.output


def test_the_secret_is_refused_on_the_command_line(started: list[HubConfig]) -> None:
    result = serve("--secret", SECRET)
    assert result.exit_code == 2 and not started
    assert "BRIDGE_SECRET" in result.output and "process list" in result.output


def test_config_checks_its_bounds_for_code_that_embeds_the_hub() -> None:
    for bad, message in [
        ({"port": 65536}, "port must be at most 65535"),
        ({"request_timeout": 0}, "request_timeout must be above 0"),
        ({"rate_burst": 0}, "rate_burst must be at least 1"),
        ({"redis_heartbeat": 10.0}, "the Redis settings do not fit together"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            HubConfig(**bad)


def test_help_shows_every_variable() -> None:
    result = serve("--help")
    assert result.exit_code == 0
    text = re.sub(r"\s+", " ", result.output)
    for name in SERVE_OPTIONS:
        assert env_name(name) in text, name


# ----- nothing else reads the environment --------------------------------------------------


def environment_reads(source: str) -> list[int]:
    """Lines that read os.environ or call os.getenv / os.putenv."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "getenvb"):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            lines += [node.lineno for alias in node.names if alias.name in ("environ", "getenv")]
    return lines


def test_nothing_in_bridge_reads_the_environment_behind_the_configurations_back() -> None:
    """Variables reach bridge only as click options (``envvar=``), so each one shows in --help."""
    found = {
        str(path.relative_to(ROOT)): reads
        for path in sorted((ROOT / "bridge").rglob("*.py"))
        if (reads := environment_reads(path.read_text()))
    }
    assert found == {}


# ----- docs/configuration.md ------------------------------------------------------------


def cell_default(option: click.Option) -> str:
    if option.is_flag:
        return "off"
    if option.default in (None, ()):
        return "none"
    return f"`{option.default}`"


def expected_table() -> list[str]:
    """The table docs/configuration.md must hold, one row per ``serve`` option in --help order."""
    rows = ["| Option | Environment variable | TOML key | Default | Meaning |", "|---|---|---|---|---|"]
    for option in SERVE_OPTIONS.values():
        flag = "(none: environment only)" if option.hidden else f"`{option.opts[0]}`"
        key = "none" if option.name in ("secret", "config") else f"`{option.name}`"
        rows.append(f"| {flag} | `{option.envvar}` | {key} | {cell_default(option)} | {option.help} |")
    return rows


def documented_table() -> list[str]:
    text = DOC.read_text()
    found = re.search(r"<!-- serve-settings -->\n(.*?)\n<!-- /serve-settings -->", text, re.S)
    assert found, "docs/configuration.md lost its <!-- serve-settings --> markers"
    return found.group(1).strip().splitlines()


def test_the_documentation_lists_exactly_the_settings_there_are() -> None:
    documented = documented_table()
    variables = {re.findall(r"`(BRIDGE_\w+)`", row)[0] for row in documented[2:]}
    assert variables == {env_name(name) for name in (*FIELDS, *NOT_FIELDS)}
    expected = "\n".join(expected_table())
    assert documented == expected_table(), f"docs/configuration.md is out of date; its table should be:\n{expected}"
