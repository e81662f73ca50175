"""TLS on the hub itself: ``serve --certfile --keyfile`` serves wss:// and https:// on one port.

The certificates are made here, in memory, by ``trustme``: a throwaway CA and a
server certificate for 127.0.0.1 and localhost signed by it. A client that
trusts that CA gets in; one that trusts only the system's CAs is refused, as a
browser would refuse a certificate it cannot check.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import trustme
import websockets
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bridge.client import BridgeClient, ConnectFailed
from bridge.hub.config import HubConfig, TLSFileError, make_ssl_context
from bridge.hub.server import HubServer
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import FAST, Client, free_port, hello, within

ROOT = Path(__file__).resolve().parents[1]
cli = importlib.import_module("bridge.cli.main")


@dataclass(frozen=True)
class TLSFiles:
    """A CA's certificate, and a server certificate and key it signed, as PEM files."""

    ca: Path
    cert: Path
    key: Path
    ca_object: trustme.CA
    #: base64 of the SHA-256 of the server certificate's public key (SubjectPublicKeyInfo):
    #: what Chromium's --ignore-certificate-errors-spki-list takes to trust this one key.
    spki_sha256: str

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (and checks the host name, as usual)."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls_files(folder: Path, *names: str) -> TLSFiles:
    """A new CA and a server certificate for ``names`` (default: 127.0.0.1 and localhost), under ``folder``."""
    ca = trustme.CA()
    issued = ca.issue_cert(*(names or ("127.0.0.1", "localhost")))
    files = TLSFiles(folder / "ca.pem", folder / "cert.pem", folder / "key.pem", ca, _spki_sha256(issued))
    ca.cert_pem.write_to_path(str(files.ca))
    for blob in issued.cert_chain_pems:  # the server certificate first, then the chain
        blob.write_to_path(str(files.cert), append=True)
    issued.private_key_pem.write_to_path(str(files.key))
    return files


def _spki_sha256(issued: trustme.LeafCert) -> str:
    certificate = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def tls(tmp_path: Path) -> TLSFiles:
    return make_tls_files(tmp_path)


@pytest.fixture
async def tls_hub(tls: TLSFiles) -> AsyncIterator[HubServer]:
    """An open-mode hub on a free port, serving TLS with the trustme certificate."""
    config = HubConfig(port=0, open_mode=True, certfile=tls.cert, keyfile=tls.key)
    async with HubServer(config) as server:
        yield server


# ----- the hub over TLS -------------------------------------------------------------------


async def test_a_client_that_trusts_the_ca_says_hello_over_wss(tls_hub: HubServer, tls: TLSFiles) -> None:
    assert tls_hub.url == f"wss://127.0.0.1:{tls_hub.port}/ws"
    async with websockets.connect(tls_hub.url, ssl=tls.client_context()) as ws:
        client = Client(ws)
        await client.send(hello("app", agent="agent1"))
        welcome = await client.recv_kind("Welcome")
        assert welcome["message"]["agent"] == "agent1"


async def test_a_client_that_does_not_trust_the_ca_is_refused(tls_hub: HubServer, tls: TLSFiles) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await within(websockets.connect(tls_hub.url))  # the system's CAs only
    # Nor does plain ws:// get a WebSocket on the TLS port.
    with pytest.raises((websockets.InvalidHandshake, OSError)):
        await within(websockets.connect(tls_hub.url.replace("wss://", "ws://", 1)))
    # The hub goes on serving the clients that do trust it.
    async with websockets.connect(tls_hub.url, ssl=tls.client_context()) as ws:
        await Client(ws).send(hello("app", agent="agent1"))
        assert (await Client(ws).recv_kind("Welcome"))["message"]["agent"] == "agent1"


def _get(url: str, context: ssl.SSLContext) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return response.status, json.loads(response.read())


async def test_healthz_answers_over_https(tls_hub: HubServer, tls: TLSFiles) -> None:
    assert tls_hub.http_url == f"https://127.0.0.1:{tls_hub.port}"
    status, health = await asyncio.to_thread(_get, f"{tls_hub.http_url}/healthz", tls.client_context())
    assert status == 200 and "connections" in health


async def test_the_python_client_takes_an_ssl_context(tls_hub: HubServer, tls: TLSFiles) -> None:
    context = tls.client_context()
    async with (
        VirtualAgent(tls_hub.url, agent="agent1", ssl=context, **FAST),
        BridgeClient(tls_hub.url, agent="agent1", ssl=context) as bus,
    ):
        answer = await within(bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}))
        assert answer["message"]["event"] == "Break"
    with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
        async with BridgeClient(tls_hub.url, agent="agent1"):  # no context: the system's CAs
            pass
    with pytest.raises(ValueError, match="wss://"):
        BridgeClient(tls_hub.url.replace("wss://", "ws://", 1), agent="agent1", ssl=context)


# ----- the client commands over wss:// -----------------------------------------------------


async def _command(*args: str, **env: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "SSL_CERT_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", *args, cwd=ROOT, env={**clean, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await within(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_send_trusts_the_ca_named_by_ssl_cert_file(tls_hub: HubServer, tls: TLSFiles) -> None:
    """The documented way (docs/deployment.md): OpenSSL's SSL_CERT_FILE names the CAs to trust."""
    async with VirtualAgent(tls_hub.url, agent="agent1", ssl=tls.client_context(), **FAST):
        args = ("send", "SetNotReady", "--reason", "Break", "--agent", "agent1", "--url", tls_hub.url)
        status, out, err = await _command(*args, SSL_CERT_FILE=str(tls.ca))
        assert status == 0, err
        assert orjson.loads(out)["message"]["event"] == "Break"
        status, out, err = await _command(*args)  # the system's CAs do not know this one
    assert status == 3 and out == ""
    assert "CERTIFICATE_VERIFY_FAILED" in err and "Traceback" not in err
    assert "set SSL_CERT_FILE to the CA's PEM file" in err  # what to do, in the same line


# ----- serve: the start-up line and the errors ----------------------------------------------


def test_serve_says_its_wss_and_https_urls(tls: TLSFiles) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_CERTFILE=str(tls.cert), BRIDGE_KEYFILE=str(tls.key))
    process = subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--open", "--port", str(port)],
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert process.stderr is not None
        line = next(line for line in iter(process.stderr.readline, "") if "listening on" in line)
        assert f"listening on wss://127.0.0.1:{port}/ws (health: https://127.0.0.1:{port}/healthz)" in line
        status, _ = _get(f"https://127.0.0.1:{port}/healthz", tls.client_context())
        assert status == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 0


def _serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["serve", "--open", "--port", "0", *args], env={"BRIDGE_SECRET": None})
    return result.exit_code, result.output


def _bad_files(tls: TLSFiles, folder: Path) -> dict[str, tuple[Path, Path, str]]:
    """Certificate and key pairs that cannot be used, and what the error says about each."""
    (folder / "other").mkdir()
    other = make_tls_files(folder / "other")
    encrypted = folder / "encrypted.pem"
    key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"passphrase")))
    junk = folder / "junk.pem"
    junk.write_text("not a certificate\n")
    return {
        "key as certificate": (tls.key, tls.key, f"{tls.key} holds no PEM certificate"),
        "certificate as key": (tls.cert, tls.cert, f"{tls.cert} holds no PEM private key"),
        "junk": (junk, tls.key, f"{junk} holds no PEM certificate"),
        "another key": (tls.cert, other.key, f"{other.key} is not the private key of {tls.cert}"),
        "encrypted key": (tls.cert, encrypted, f"{encrypted} is encrypted with a passphrase"),
    }


def test_an_unusable_certificate_or_key_is_one_line_and_status_2(tls: TLSFiles, tmp_path: Path) -> None:
    for case, (cert, key, said) in _bad_files(tls, tmp_path).items():
        status, output = _serve("--certfile", str(cert), "--keyfile", str(key))
        lines = [line for line in output.splitlines() if not line.startswith("WARNING: OPEN MODE")]
        assert status == 2, (case, output)
        assert len(lines) == 1 and lines[0].startswith(f"Error: TLS: {said}"), (case, output)
        with pytest.raises(TLSFileError, match="^" + said.replace(".", r"\.")):
            make_ssl_context(HubConfig(certfile=cert, keyfile=key))


def test_a_missing_certificate_file_names_its_option(tls: TLSFiles, tmp_path: Path) -> None:
    status, output = _serve("--certfile", str(tmp_path / "nope.pem"), "--keyfile", str(tls.key))
    assert status == 2 and "'--certfile'" in output and "does not exist" in output


@pytest.mark.parametrize("given", ["--certfile", "--keyfile"])
def test_certfile_and_keyfile_go_together(tls: TLSFiles, given: str) -> None:
    status, output = _serve(given, str(tls.cert if given == "--certfile" else tls.key))
    assert status == 2 and "give both for TLS, or neither" in output
    with pytest.raises(ValueError, match="certfile and keyfile go together"):
        HubConfig(certfile=tls.cert)
