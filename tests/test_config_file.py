"""``serve --config FILE.toml`` and ``serve --print-config``.

Precedence is flag > environment > file > default; the file's keys are the
settings' names; its errors name the file and the key; the secret never comes
from the file and never shows in ``--print-config``. ``serve`` runs in-process
with click's runner and ``run_hub`` replaced (nothing listens), as in
tests/test_config.py.
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bridge.hub.config import DEFAULTS, HubConfig

pytestmark = pytest.mark.usefixtures("no_bridge_environment")
cli = importlib.import_module("bridge.cli.main")


def serve(*args: str, **env: str) -> Result:
    return CliRunner().invoke(cli.main, ["serve", *args], env=env)

SECRET = "file-test-secret-never-to-be-printed-0123456789"


def write(folder: Path, text: str, name: str = "hub.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def served(started: list[HubConfig], *args: str, **env: str) -> HubConfig:
    result = serve(*args, **env)
    assert result.exit_code == 0, result.output
    return started[-1]


def settings_shown(result: Result) -> dict[str, tuple[str, str]]:
    """``--print-config``'s lines as setting -> (value, source)."""
    rows = {}
    for line in result.stdout.splitlines()[2:]:
        name, rest = line.split(None, 1)
        value, source = rest.rsplit("  ", 1)
        rows[name] = (value.strip(), source.strip())
    return rows


# ----- precedence ---------------------------------------------------------------------------


def test_flag_beats_environment_beats_file_beats_default(started: list[HubConfig], tmp_path: Path) -> None:
    config_file = write(tmp_path, "open_mode = true\nport = 1111\nrate_burst = 7\nhello_timeout = 3\n")
    only_file = served(started, "--config", str(config_file))
    assert (only_file.port, only_file.rate_burst, only_file.hello_timeout) == (1111, 7, 3.0)
    assert only_file.open_mode and only_file.request_timeout == DEFAULTS.request_timeout
    env_too = served(started, "--config", str(config_file), BRIDGE_PORT="2222", BRIDGE_RATE_BURST="8")
    assert (env_too.port, env_too.rate_burst, env_too.hello_timeout) == (2222, 8, 3.0)
    all_three = served(started, "--config", str(config_file), "--port", "3333", BRIDGE_PORT="2222")
    assert (all_three.port, all_three.rate_burst) == (3333, 7)

    shown = settings_shown(serve("--config", str(config_file), "--port", "3333", "--print-config",
                                 BRIDGE_RATE_BURST="8"))
    assert shown["port"] == ("3333", "flag")
    assert shown["rate_burst"] == ("8", "env")
    assert shown["hello_timeout"] == ("3.0", "file")
    assert shown["open_mode"] == ("true", "file")
    assert shown["request_timeout"] == (repr(DEFAULTS.request_timeout), "default")


def test_the_environment_can_name_the_file(started: list[HubConfig], tmp_path: Path) -> None:
    config_file = write(tmp_path, "open_mode = true\nport = 1111\n")
    assert served(started, BRIDGE_CONFIG=str(config_file)).port == 1111
    other = write(tmp_path, "open_mode = true\nport = 4444\n", "other.toml")
    assert served(started, "--config", str(other), BRIDGE_CONFIG=str(config_file)).port == 4444


def test_every_kind_of_value_from_the_file(
    started: list[HubConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strings, integers, numbers, switches and lists; relative paths from the file's folder."""
    (tmp_path / "etc" / "kinds").mkdir(parents=True)
    (tmp_path / "etc" / "pages").mkdir()
    (tmp_path / "etc" / "secret").write_text(SECRET)
    config_file = write(tmp_path / "etc", """
        host = "localhost"
        max_frame_size = 1024
        rate_limit = 12           # an integer where a number goes
        redis_heartbeat = 0.5
        compression = true
        allow_origins = ["https://crm.example.com", "https://other.example.com"]
        public_hosts = ["bridge.example.com"]
        schema_dirs = ["kinds"]
        static_dir = "pages"
        secret_file = "secret"
        log_format = "json"
    """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths are the file's, not the working directory's
    config = served(started, "--config", str(config_file))
    assert config.host == "localhost" and config.max_frame_size == 1024
    assert config.rate_limit == 12.0 and config.redis_heartbeat == 0.5 and config.compression
    assert config.allow_origins == ("https://crm.example.com", "https://other.example.com")
    assert config.public_hosts == ("bridge.example.com",)
    assert config.schema_dirs == (tmp_path / "etc" / "kinds",)
    assert config.static_dir == tmp_path / "etc" / "pages"
    assert config.secret == SECRET and config.log_format == "json"


def test_a_list_on_the_command_line_replaces_the_files(started: list[HubConfig], tmp_path: Path) -> None:
    config_file = write(tmp_path, 'open_mode = true\nallow_origins = ["https://a.example", "https://b.example"]\n')
    config = served(started, "--config", str(config_file), "--allow-origin", "https://c.example")
    assert config.allow_origins == ("https://c.example",)


# ----- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("prot = 9000\n", "unknown key 'prot'; did you mean 'port'?"),
        ("allow-origin = ['https://a.example']\n", "unknown key 'allow-origin'; did you mean 'allow_origins'?"),
        ("print_config = true\n", "unknown key 'print_config'"),
        ("port = 'abc'\n", "key 'port': expected an integer, not \"abc\""),
        ("port = 80.5\n", "key 'port': expected an integer, not 80.5"),
        ("port = 70000\n", "key 'port': 70000 is not in the range 0<=x<=65535"),
        ("request_timeout = 0\n", "key 'request_timeout': 0.0 is not in the range x>0"),
        ("compression = 1\n", "key 'compression': expected true or false, not 1"),
        ("rate_burst = true\n", "key 'rate_burst': expected an integer, not true"),
        ("allow_origins = 'https://a.example'\n", "key 'allow_origins': expected a list, a string each"),
        ("schema_dirs = ['no-such-folder']\n", "key 'schema_dirs': Directory"),
        ("public_hosts = ['a.example', 7]\n", "key 'public_hosts': expected a string in the list, not 7"),
        ("log_format = 'xml'\n", "key 'log_format': 'xml' is not one of 'text', 'json'"),
        ("port = \n", "not valid TOML"),
    ],
)
def test_a_bad_key_names_the_file_and_the_key(started: list[HubConfig], tmp_path: Path, text: str, said: str) -> None:
    config_file = write(tmp_path, "open_mode = true\n" + text)
    result = serve("--config", str(config_file))
    assert result.exit_code == 2 and not started, result.output
    assert result.output.strip().splitlines() == [result.output.strip()]  # one line
    assert result.output.startswith(f"Error: {config_file}: ") and said in result.output, result.output


def test_a_rule_across_settings_holds_for_the_file_too(started: list[HubConfig], tmp_path: Path) -> None:
    config_file = write(tmp_path, "open_mode = true\nredis_heartbeat = 7\n")
    result = serve("--config", str(config_file))
    assert result.exit_code == 2 and "must exceed the heartbeat" in result.output


def test_a_missing_file_says_so(started: list[HubConfig], tmp_path: Path) -> None:
    result = serve("--open", "--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and not started
    assert result.output.strip() == f"Error: cannot read the configuration file {tmp_path / 'nope.toml'}: " \
        "No such file or directory"


# ----- the secret -----------------------------------------------------------------------------


def test_the_secret_itself_is_refused_in_the_file(started: list[HubConfig], tmp_path: Path) -> None:
    config_file = write(tmp_path, f'secret = "{SECRET}"\n')
    result = serve("--config", str(config_file))
    assert result.exit_code == 2 and not started
    assert f"{config_file}: key 'secret'" in result.output
    assert "secret_file" in result.output and "BRIDGE_SECRET" in result.output
    assert SECRET not in result.output


@pytest.mark.parametrize("where", ["env", "secret_file in the file", "--secret-file"])
def test_print_config_masks_the_secret(started: list[HubConfig], tmp_path: Path, where: str) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    config_file = write(tmp_path, 'secret_file = "secret"\n' if where == "secret_file in the file" else "port = 1\n")
    args = ["--config", str(config_file), "--print-config"]
    env = {"BRIDGE_SECRET": SECRET} if where == "env" else {}
    if where == "--secret-file":
        args += ["--secret-file", str(secret_file)]
    result = serve(*args, **env)
    assert result.exit_code == 0 and not started, result.output
    assert SECRET not in result.output
    expected = {"env": "env", "secret_file in the file": "secret_file (file)", "--secret-file": "secret_file (flag)"}
    assert settings_shown(result)["secret"] == ("(set)", expected[where])


def test_print_config_shows_every_setting_and_serves_nothing(started: list[HubConfig]) -> None:
    result = serve("--print-config")  # no secret, no --open: shown, not refused
    assert result.exit_code == 0 and not started, result.output
    shown = settings_shown(result)
    assert {spec.name for spec in fields(HubConfig)} | {"secret_file", "open_anywhere"} == set(shown)
    assert shown["secret"] == ("(none)", "default")
    assert shown["port"] == ("8765", "default") and shown["allow_origins"] == ("[]", "default")
    assert shown["certfile"] == ("(none)", "default")
    assert result.stdout.splitlines()[0] == "# connect-bridge serve settings; file: (none)"
