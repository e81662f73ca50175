"""``connect-bridge describe``: the hub's API in a format the ecosystem's tools read (AsyncAPI 3.0.0).

The same document a running hub serves at ``GET /asyncapi.json``, written
without a hub: for a repository, a CI step or a code generator. See
docs/api-description.md.
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from bridge.protocol import asyncapi
from bridge.protocol.catalog import Catalog, CatalogError


@click.command()
@click.option("--asyncapi", "what", flag_value="asyncapi", default=True,
              help="An AsyncAPI 3.0.0 document, JSON (the default, and so far the only format).")
@click.option("--schemas", "schema_dirs", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extra schema folder (repeatable), as given to serve --schemas.")
@click.option("--host", default="127.0.0.1:8765", show_default=True,
              help="The hub's address as clients reach it (name:port), for the document's server.")
@click.option("--tls", is_flag=True, help="The hub is reached with wss:// (its own TLS, or a TLS proxy).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of standard output.")
def describe(what: str, schema_dirs: tuple[Path, ...], host: str, tls: bool, output: Path | None) -> None:
    """Write the hub's API: every message kind with its JSON Schema, as AsyncAPI 3.0.0.

    \b
      connect-bridge describe --asyncapi -o asyncapi.json
      connect-bridge describe --schemas ./my-schemas --host bridge.example.com:443 --tls

    Exit status: 0 written, 1 for a broken schema file or a FILE that cannot
    be written, 2 for a usage error.
    """
    try:
        catalog = Catalog.load(schema_dirs)
    except CatalogError as exc:
        raise click.ClickException(f"schema error: {exc}") from exc
    described = asyncapi.document(catalog, host=host.strip(), protocol="wss" if tls else "ws")
    text = orjson.dumps(described, option=orjson.OPT_INDENT_2).decode() + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
