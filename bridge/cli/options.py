"""The ``serve`` options, derived from :class:`bridge.hub.config.HubConfig`: one per setting.

Each option's name, type, bounds, default, help and environment variable
(``BRIDGE_<NAME>``) come from the dataclass field, so the command line cannot
drift from the configuration.

``serve --config FILE.toml`` adds a third source under the other two: the
file's keys are the settings' names, and they become click's ``default_map``,
which click consults after the command line and the environment variable
(``Parameter.consume_value``): flag > environment > file > default.
``serve --print-config`` shows each setting's value and which of the four it
came from.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import click
from click.core import ParameterSource

from bridge.hub.config import HubConfig, env_name

F = TypeVar("F", bound=Callable[..., Any])

_HINTS = get_type_hints(HubConfig)
_FIELDS = {spec.name: spec for spec in fields(HubConfig)}


def _click_type(hint: Any, metadata: Mapping[str, Any]) -> click.ParamType[Any]:
    """The click type of one setting (``X | None`` and ``tuple[X, ...]`` give X's)."""
    if get_origin(hint) in (UnionType, tuple):
        hint = get_args(hint)[0]
    if get_origin(hint) is Literal:  # a choice (--log-format)
        return click.Choice(get_args(hint))
    low, high, open_low = metadata["min"], metadata["max"], metadata["min_open"]
    bounded = low is not None or high is not None
    if hint is int:
        return click.IntRange(low, high, min_open=open_low) if bounded else click.INT
    if hint is float:
        return click.FloatRange(low, high, min_open=open_low) if bounded else click.FLOAT
    if hint is Path:
        if metadata["file"]:
            return click.Path(exists=True, dir_okay=False, path_type=Path)
        return click.Path(exists=True, file_okay=False, path_type=Path)
    return click.STRING


def config_option(name: str, **overrides: Any) -> Callable[[F], F]:
    """The ``serve`` option for the HubConfig field ``name``; ``overrides`` replace click attributes.

    ``--field-name`` (or the field's ``option``), its type and bounds, its
    default and help, and ``BRIDGE_FIELD_NAME``. A tuple field is a repeatable
    option whose environment variable holds several values.
    """
    spec = _FIELDS[name]
    metadata = spec.metadata
    hint = _HINTS[name]
    param_type = _click_type(hint, metadata)
    attrs: dict[str, Any] = {
        "type": param_type,
        "default": spec.default,
        "help": metadata["help"],
        "envvar": env_name(name),
        "show_envvar": True,
        "show_default": spec.default not in (None, ()) and hint is not bool,
    }
    if hint is bool:
        attrs.update(is_flag=True, type=None)
    if get_origin(hint) is tuple:
        separator = "':'" if param_type.envvar_list_splitter == ":" else "spaces"
        attrs.update(multiple=True, help=f"{metadata['help']} Repeatable; the env var takes several, separated by {separator}.")
    attrs.update(overrides)
    return click.option(metadata["option"] or "--" + name.replace("_", "-"), name, **attrs)


def _refuse_command_line(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if param.name and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        raise click.UsageError("the secret is not taken on the command line, where any user could read it "
                               "in the process list: set BRIDGE_SECRET or pass --secret-file")
    return value


def secret_options(func: F) -> F:
    """``--secret-file`` (``BRIDGE_SECRET_FILE``), and the secret itself from ``BRIDGE_SECRET`` only."""
    func = config_option("secret", hidden=True, callback=_refuse_command_line)(func)
    return click.option(
        "--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
        envvar=env_name("secret_file"), show_envvar=True,
        help=f"File holding the token secret; without it, the secret comes from {env_name('secret')}.",
    )(func)


def read_secret(secret_file: Path | None, secret: str | None) -> str | None:
    """The secret file's content if there is one, else ``BRIDGE_SECRET`` (click read it)."""
    if secret_file is not None:
        return secret_file.read_text().strip() or None
    return secret or None


def hub_options(func: F) -> F:
    """Every HubConfig field as a ``serve`` option, in field order, plus ``--open-anywhere``."""
    decorators: list[Callable[[F], F]] = []
    for name in _FIELDS:
        decorators.append(secret_options if name == "secret" else config_option(name))
        if name == "open_mode":
            decorators.append(click.option(
                "--open-anywhere", is_flag=True, envvar=env_name("open_anywhere"), show_envvar=True,
                help="Allow --open on a non-loopback address (unsafe).",
            ))
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


# ----- the configuration file --------------------------------------------------------------

#: Where ``--config`` leaves the file it read, for ``--print-config``.
CONFIG_FILE_KEY = "connect_bridge.config_file"

#: What ``--print-config`` calls each of click's sources.
SOURCE_NAMES: Mapping[ParameterSource, str] = {
    ParameterSource.COMMANDLINE: "flag",
    ParameterSource.ENVIRONMENT: "env",
    ParameterSource.DEFAULT_MAP: "file",
    ParameterSource.DEFAULT: "default",
}

#: ``serve`` options that are about the command itself, not settings: no key in the file.
NOT_IN_FILE = frozenset({"config", "print_config", "help"})


class SettingsError(click.ClickException):
    """A setting that cannot be used (a configuration file's key, a certificate): one line, exit status 2."""

    exit_code = 2


def _expected(param: click.Parameter) -> tuple[tuple[type, ...], str]:
    """The TOML types a key may have for ``param``, and how to say them."""
    param_type = param.type
    if isinstance(param_type, click.types.BoolParamType):
        return (bool,), "true or false"
    if isinstance(param_type, click.types.IntParamType):
        return (int,), "an integer"
    if isinstance(param_type, click.types.FloatParamType):
        return (int, float), "a number"
    return (str,), "a string"


def _file_value(param: click.Parameter, value: Any, folder: Path) -> Any:
    """A TOML value checked against its option's type: the value to hand click, or ``ValueError``.

    A relative path is taken from ``folder`` (the file's), not from wherever
    ``serve`` happens to be started.
    """
    types, said = _expected(param)
    multiple = getattr(param, "multiple", False)
    values = value if multiple and isinstance(value, list) else [value]
    if multiple and not isinstance(value, list):
        raise ValueError(f"expected a list, {said} each (even for one value), not {_shown(value)}")
    for item in values:
        if (isinstance(item, bool) and bool not in types) or not isinstance(item, types):
            raise ValueError(f"expected {said}{' in the list' if multiple else ''}, not {_shown(item)}")
    if isinstance(param.type, click.Path):
        values = [str(folder / item) for item in values]
    return values if multiple else values[0]


def _read_config_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """``--config``: check every key of the file and hand the values to click as its ``default_map``.

    Runs first (the option is eager), so that the other options find the
    file's values under their own. Every error names the file and the key.
    """
    if value is None or ctx.resilient_parsing:
        return
    try:
        with value.open("rb") as handle:
            table = tomllib.load(handle)
    except OSError as exc:
        raise SettingsError(f"cannot read the configuration file {value}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{value}: not valid TOML: {exc}") from None
    params = {p.name: p for p in ctx.command.params if p.name and p.name not in NOT_IN_FILE}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key == "secret":
            raise SettingsError(f"{value}: key 'secret': the secret is never read from the configuration file "
                                "(files get copied and shared): set secret_file = \"PATH\" there, or BRIDGE_SECRET")
        if key not in params:
            close = difflib.get_close_matches(key.replace("-", "_"), [*params, "secret"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; the keys are the settings' names (docs/configuration.md)"
            raise SettingsError(f"{value}: unknown key {key!r}{hint}")
        setting = params[key]
        try:
            values[key] = _file_value(setting, raw, value.absolute().parent)
            setting.type_cast_value(ctx, values[key])  # ranges, existing folders: said now, with the key
        except (ValueError, click.BadParameter) as exc:
            message = exc.message if isinstance(exc, click.BadParameter) else str(exc)
            raise SettingsError(f"{value}: key {key!r}: {message}") from None
    ctx.meta[CONFIG_FILE_KEY] = value
    ctx.default_map = {**(ctx.default_map or {}), **values}


def config_file_options(func: F) -> F:
    """``--config FILE`` (``BRIDGE_CONFIG``) and ``--print-config``."""
    func = click.option(
        "--print-config", is_flag=True,
        help="Print every setting, its value and where it came from (flag, env, file, default), "
        "the secret masked; then exit without serving.",
    )(func)
    return click.option(
        "--config", type=click.Path(dir_okay=False, path_type=Path), default=None, envvar=env_name("config"),
        show_envvar=True,
        is_eager=True, expose_value=False, callback=_read_config_file,
        help="A TOML file of settings, keyed by the names of docs/configuration.md (port = 9000); "
        "options and environment variables win over it.",
    )(func)


def _shown(value: Any) -> str:
    """A setting's value as TOML would spell it; ``(none)`` for a setting that is not set."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))
    return repr(value)


def _source(ctx: click.Context, name: str) -> str:
    """Where a setting's value came from: flag, env, file or default."""
    source = ctx.get_parameter_source(name)
    return SOURCE_NAMES[source] if source is not None and source in SOURCE_NAMES else "default"


def effective_settings(ctx: click.Context, secret: str | None) -> list[str]:
    """``--print-config``'s lines: each setting, its value and its source; the secret only as ``(set)``.

    ``secret`` is the secret ``serve`` would use (from the file or the
    variable); its line never holds it, and says where it came from.
    """
    rows: list[tuple[str, str, str]] = []
    for param in ctx.command.params:
        name = param.name
        if not name or name in NOT_IN_FILE:
            continue
        source = _source(ctx, name)
        if name == "secret":
            shown = "(set)" if secret else "(none)"
            if ctx.params.get("secret_file") is not None:
                source = f"secret_file ({_source(ctx, 'secret_file')})"
        else:
            shown = _shown(ctx.params.get(name))
        rows.append((name, shown, source))
    config_file = ctx.meta.get(CONFIG_FILE_KEY)
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(shown) for _, shown, _ in rows)
    lines = [f"# connect-bridge serve settings; file: {config_file if config_file else '(none)'}",
             f"{'setting'.ljust(width)}  {'value'.ljust(value_width)}  from"]
    lines += [f"{name.ljust(width)}  {shown.ljust(value_width)}  {source}" for name, shown, source in rows]
    return lines
