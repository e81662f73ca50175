"""``connect-bridge fetch-streams``: put the Amazon Connect Streams bundle where the hub finds it.

The CCP page (static/ccp.html) loads ``connect-streams-min.js`` from the hub.
A checkout gets it with ``npm ci``; a pip install has no checkout, so this
command asks npm for the pinned ``amazon-connect-streams`` package (``npm
pack``, which downloads the package tarball and installs nothing) and keeps the
one bundle file in the user data folder that ``serve`` and ``demo`` look in
(:func:`bridge.hub.http.user_streams_dir`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Final

import click

from bridge.hub.http import STREAMS_BUNDLE, user_streams_dir

#: The amazon-connect-streams release the pages are tested with (package.json pins the same).
STREAMS_VERSION: Final = "2.28.2"
#: The bundle's path inside the npm package tarball.
BUNDLE_IN_PACKAGE: Final = f"package/release/{STREAMS_BUNDLE}"


class FetchError(Exception):
    """Why the bundle could not be fetched, in one line that says what to do."""


def fetch_bundle(target: Path, version: str = STREAMS_VERSION, npm: str | None = None) -> Path:
    """Download ``amazon-connect-streams@version`` with npm and save its bundle in ``target``.

    Returns the saved file. The file is written beside its final name and then
    renamed, so a hub never serves half a bundle. Raises :class:`FetchError`.
    """
    npm = npm or shutil.which("npm")
    if npm is None:
        raise FetchError("npm is not on PATH: install Node.js (it comes with npm) and run this again, "
                         f"or put {STREAMS_BUNDLE} in a folder and pass it as --streams-dir")
    with tempfile.TemporaryDirectory(prefix="connect-bridge-streams-") as tmp:
        try:
            result = subprocess.run(
                [npm, "pack", f"amazon-connect-streams@{version}", "--pack-destination", tmp,
                 "--silent", "--no-audit", "--no-fund"],
                capture_output=True, text=True, timeout=300, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FetchError(f"npm pack did not run: {exc}") from exc
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            said = (result.stderr.strip().splitlines() or ["no package file"])[-1]
            raise FetchError(f"npm pack amazon-connect-streams@{version} failed: {said}")
        try:
            with tarfile.open(tarballs[0]) as tar:
                member = tar.extractfile(BUNDLE_IN_PACKAGE)
                if member is None:
                    raise KeyError(BUNDLE_IN_PACKAGE)
                bundle = member.read()
        except (KeyError, tarfile.TarError) as exc:
            raise FetchError(f"the npm package has no {BUNDLE_IN_PACKAGE} ({exc})") from exc
    target.mkdir(parents=True, exist_ok=True)
    saved = target / STREAMS_BUNDLE
    partial = target / f".{STREAMS_BUNDLE}.partial"
    partial.write_bytes(bundle)
    os.replace(partial, saved)
    return saved


@click.command("fetch-streams")
@click.option(
    "--dir",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save the bundle in this folder instead of the user data folder; then give "
    "serve and demo --streams-dir with it.",
)
@click.option(
    "--release",
    "version",
    default=STREAMS_VERSION,
    show_default=True,
    help="The amazon-connect-streams release to fetch (the pages are tested with the default).",
)
def fetch_streams(target: Path | None, version: str) -> None:
    """Fetch the Amazon Connect Streams bundle that the CCP page (ccp.html) loads.

    Needs npm on PATH. It downloads the amazon-connect-streams package with
    npm pack (nothing is installed) and keeps connect-streams-min.js in the
    user data folder, where serve and demo find it without options. In a
    checkout, npm ci does the same for the hub started there.

    Exit status: 0 saved, 1 npm missing or failed.
    """
    folder = target if target is not None else user_streams_dir()
    try:
        saved = fetch_bundle(folder, version)
    except FetchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"saved {saved} (amazon-connect-streams {version})")
    if target is not None:
        click.echo(f"serve and demo use it with: --streams-dir {folder}")
    else:
        click.echo("serve and demo find it there by themselves")
