"""The ``serve`` options, derived from :class:`bridge.hub.config.HubConfig`: one per setting.

Each option's name, type, bounds, default, help and environment variable
(``BRIDGE_<NAME>``) come from the dataclass field, so the command line cannot
drift from the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

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
    low, high, open_low = metadata["min"], metadata["max"], metadata["min_open"]
    bounded = low is not None or high is not None
    if hint is int:
        return click.IntRange(low, high, min_open=open_low) if bounded else click.INT
    if hint is float:
        return click.FloatRange(low, high, min_open=open_low) if bounded else click.FLOAT
    if hint is Path:
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
