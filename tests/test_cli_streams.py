"""The Streams bundle for a pip install: ``fetch-streams``, the lookup order, the start-up warning.

``npm`` here is a stand-in script that writes a package tarball as ``npm pack``
does, so the tests need no network; the real command is the same call.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli.main import main as connect_bridge
from bridge.cli.streams import BUNDLE_IN_PACKAGE, STREAMS_VERSION
from bridge.hub import http

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = b"/* amazon-connect-streams stand-in */ window.connect = {core: {}};\n"


def fake_npm(folder: Path, *, bundle: bytes | None = BUNDLE) -> Path:
    """An ``npm`` that answers ``npm pack NAME --pack-destination DIR`` with a tarball
    holding ``package/release/connect-streams-min.js`` (or no bundle), and records its arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
        files = {"package/package.json": b'{"name": "amazon-connect-streams"}'}
        if bundle is not None:
            files[BUNDLE_IN_PACKAGE] = bundle
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    (folder / "package.tgz").write_bytes(tarball.getvalue())
    script = folder / "npm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, shutil, sys\n"
        f"open({str(folder / 'args.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "destination = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
        f"shutil.copy({str(folder / 'package.tgz')!r}, destination + '/amazon-connect-streams-x.tgz')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user data folder, and a working directory with no node_modules."""
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


def test_the_pinned_release_is_the_one_package_json_pins() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["amazon-connect-streams"]
    assert pinned == STREAMS_VERSION


def test_fetch_streams_puts_the_bundle_where_the_hub_looks(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npm = fake_npm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{npm}{os.pathsep}{os.environ['PATH']}")
    assert http.default_streams_dir() in (None, *_checkout_bundle())  # nothing in the user folder yet

    result = CliRunner().invoke(connect_bridge, ["fetch-streams"])

    assert result.exit_code == 0, result.output
    saved = http.user_streams_dir() / http.STREAMS_BUNDLE
    assert saved.read_bytes() == BUNDLE
    assert saved.is_relative_to(data_home)
    assert str(saved) in result.output
    assert json.loads((npm / "args.json").read_text())[:2] == ["pack", f"amazon-connect-streams@{STREAMS_VERSION}"]
    if not _checkout_bundle():  # a checkout's node_modules comes first
        assert http.default_streams_dir() == http.user_streams_dir()
    assert http.streams_warning(http.user_streams_dir()) is None


def test_fetch_streams_into_a_folder_says_to_pass_it(data_home: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    npm = fake_npm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{npm}{os.pathsep}{os.environ['PATH']}")
    result = CliRunner().invoke(connect_bridge, ["fetch-streams", "--dir", str(tmp_path / "vendor")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "vendor" / http.STREAMS_BUNDLE).read_bytes() == BUNDLE
    assert f"--streams-dir {tmp_path / 'vendor'}" in result.output


def test_fetch_streams_without_npm_says_what_to_do(data_home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = CliRunner().invoke(connect_bridge, ["fetch-streams"])
    assert result.exit_code == 1
    assert "npm is not on PATH" in result.output and "--streams-dir" in result.output
    assert not http.user_streams_dir().exists()


def test_fetch_streams_says_when_the_package_has_no_bundle(data_home: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    npm = fake_npm(tmp_path / "bin", bundle=None)
    monkeypatch.setenv("PATH", f"{npm}{os.pathsep}{os.environ['PATH']}")
    result = CliRunner().invoke(connect_bridge, ["fetch-streams"])
    assert result.exit_code == 1
    assert BUNDLE_IN_PACKAGE in result.output
    assert not (http.user_streams_dir() / http.STREAMS_BUNDLE).exists()


def test_the_warning_names_the_command_and_the_option(tmp_path: Path) -> None:
    warning = http.streams_warning(None)
    assert warning is not None and "connect-bridge fetch-streams" in warning and "--streams-dir" in warning
    assert "`" not in warning
    named = http.streams_warning(tmp_path)
    assert named is not None and str(tmp_path) in named
    (tmp_path / http.STREAMS_BUNDLE).write_bytes(BUNDLE)
    assert http.streams_warning(tmp_path) is None


def _checkout_bundle() -> tuple[Path, ...]:
    """The checkout's own node_modules bundle, when ``npm ci`` ran here (it comes before the user folder)."""
    release = ROOT / "node_modules" / "amazon-connect-streams" / "release"
    return (release,) if (release / http.STREAMS_BUNDLE).is_file() else ()


def test_the_ccp_page_says_what_to_run_when_the_bundle_is_missing() -> None:
    """The page's words fit a pip install and a checkout alike, with no Markdown in them."""
    page = (ROOT / "static" / "js" / "pages" / "ccp.js").read_text()
    start = page.index("The Amazon Connect Streams library did not load")
    message = page[start : page.index(");", start)]
    assert "connect-bridge fetch-streams" in message and "npm ci" in message
    assert "`" not in message
