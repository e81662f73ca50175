"""The API described the ecosystem's way (issue 13): an AsyncAPI 3.0.0 document of every kind.

The document is checked against the official AsyncAPI 3.0.0 specification
schema from the npm package ``@asyncapi/specs`` (a devDependency: ``npm ci``),
offline: the file bundles every definition it refers to, and any reference
outside it fails the test instead of reaching the network.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import referencing
import referencing.jsonschema
from click.testing import CliRunner
from referencing.exceptions import NoSuchResource

from bridge import __version__
from bridge.cli.main import main
from bridge.hub import http
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol import asyncapi
from bridge.protocol.catalog import Catalog

from .helpers import prerequisite_missing, within

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"

#: A deployment's own kind with its own shared definitions, as a --schemas folder holds them.
ACME_DEFS = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:acme:defs",
    "$defs": {"words": {"type": "string", "minLength": 1, "maxLength": 200}},
}
ACME_WHISPER = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:acme:Acme/Agent/Whisper:request",
    "description": "Say something only the agent hears.",
    "x-bridge": {"shape": "request", "senders": ["app"], "timeout": 5},
    "type": "object",
    "properties": {
        "channel": {"const": "Acme"}, "topic": {"const": "Agent"}, "subtopic": {"const": "Whisper"},
        "source": {"$ref": "urn:connect-bridge:v1:defs#/$defs/source"},
        "id": {"$ref": "urn:connect-bridge:v1:defs#/$defs/id"},
        "data": {"type": "object", "properties": {"text": {"$ref": "urn:acme:defs#/$defs/words"}},
                 "required": ["text"], "additionalProperties": False},
    },
    "required": ["channel", "topic", "subtopic", "source", "data"],
    "additionalProperties": False,
}


def write_acme(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "acme.defs.json").write_text(json.dumps(ACME_DEFS))
    (folder / "Acme.Agent.Whisper.request.json").write_text(json.dumps(ACME_WHISPER))
    return folder


@cache
def _spec_validator() -> jsonschema.Draft7Validator:
    spec = json.loads(SPEC.read_text())

    def offline(uri: str) -> referencing.Resource[Any]:
        raise NoSuchResource(ref=uri)  # the spec file bundles its definitions; nothing is fetched

    registry: referencing.Registry[Any] = referencing.Registry(retrieve=offline).with_resource(
        spec["$id"], referencing.jsonschema.DRAFT7.create_resource(spec)
    ).crawl()
    return jsonschema.Draft7Validator(spec, registry=registry)


def spec_validator() -> jsonschema.Draft7Validator:
    """The official AsyncAPI 3.0.0 schema (draft-07), its $refs resolved inside the file only."""
    if not SPEC.is_file():
        prerequisite_missing(f"{SPEC.relative_to(REPO)} is missing: run npm ci")
    return _spec_validator()


def assert_valid_asyncapi(document: dict[str, Any]) -> None:
    errors = sorted(spec_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


def payload_validator(document: dict[str, Any], message: str) -> jsonschema.Draft7Validator:
    """A message's payload as a tool reads it: JSON Schema draft-07, refs inside the document."""
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        "urn:doc", referencing.jsonschema.DRAFT7.create_resource(document)
    )
    ref = document["components"]["messages"][message]["payload"]["$ref"]
    return jsonschema.Draft7Validator({"$ref": "urn:doc" + ref}, registry=registry)


async def get(port: int, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    raw = await within(reader.read())
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status.split()[1]), headers, body


def test_the_official_schema_refuses_a_broken_document() -> None:
    """The check bites: an AsyncAPI 2 verb where 3.0.0 wants send/receive is refused."""
    document = asyncapi.document(Catalog.load())
    broken = {**document, "operations": {"x": {"action": "publish", "channel": {"$ref": "#/channels/bridge"}}}}
    assert not spec_validator().is_valid(broken)
    assert not spec_validator().is_valid({**document, "asyncapi": "2.6.0"})


async def test_the_hub_serves_its_api_as_valid_asyncapi_with_every_kind(open_hub: HubServer) -> None:
    host = f"localhost:{open_hub.port}"
    status, headers, body = await get(open_hub.port, http.ASYNCAPI_PATH, host)
    assert status == 200
    assert headers["content-type"] == "application/json"
    document = orjson.loads(body)
    assert_valid_asyncapi(document)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["version"] == __version__
    assert document["servers"]["hub"]["host"] == host  # the name this client used
    assert document["servers"]["hub"]["protocol"] == "ws"
    assert document["channels"]["bridge"]["address"] == http.WS_PATH
    messages = document["components"]["messages"]
    described = {(m["name"], m["x-bridge"]["shape"]) for m in messages.values()}
    assert described == {(spec.label, spec.shape) for spec in open_hub.catalog}
    assert set(document["channels"]["bridge"]["messages"]) == set(messages)
    operations = document["operations"]
    assert operations["app.send.Amazon.Agent.SetNotReady.request"]["action"] == "send"
    assert operations["app.receive.Amazon.Agent.SetAgentState.event"]["action"] == "receive"
    assert operations["app.receive.Error.ApiError.error"]["action"] == "receive"
    assert operations["provider.receive.Amazon.Agent.SetNotReady.request"]["action"] == "receive"
    assert operations["provider.send.Amazon.Agent.SetAgentState.event"]["action"] == "send"
    assert "app.send.Amazon.Agent.SetAgentState.event" not in operations  # apps send no events
    assert "provider.receive.Bridge.Session.Hello.request" not in operations  # the hub answers Hello
    assert "app.receive.Bridge.Session.Replaced.event" not in operations  # only a provider is replaced
    for operation in operations.values():  # every operation names messages of the channel
        for ref in operation["messages"]:
            assert ref["$ref"].removeprefix("#/channels/bridge/messages/") in messages
    scheme = document["components"]["securitySchemes"]["helloToken"]
    assert "Bridge/Session/Hello" in scheme["description"] and "data.token" in scheme["description"]


async def test_a_hostile_host_port_stays_inside_its_json_string(open_hub: HubServer) -> None:
    """Host is checked by name only: whatever follows the colon is echoed, as JSON string content."""
    status, _, body = await get(open_hub.port, http.ASYNCAPI_PATH, 'localhost:1"}]\\{')
    assert status == 200
    assert orjson.loads(body)["servers"]["hub"]["host"] == 'localhost:1"}]\\{'


async def test_a_kind_added_with_schemas_is_described(tmp_path: Path) -> None:
    config = HubConfig(host="127.0.0.1", port=0, open_mode=True, schema_dirs=(write_acme(tmp_path / "acme"),))
    async with HubServer(config) as hub:
        status, _, body = await get(hub.port, http.ASYNCAPI_PATH, f"127.0.0.1:{hub.port}")
    assert status == 200
    document = orjson.loads(body)
    assert_valid_asyncapi(document)
    whisper = document["components"]["messages"]["Acme.Agent.Whisper.request"]
    assert whisper["name"] == "Acme/Agent/Whisper"
    assert whisper["x-bridge"]["timeout"] == 5
    assert "Say something only the agent hears." in whisper["description"]
    assert "app.send.Acme.Agent.Whisper.request" in document["operations"]
    assert "provider.receive.Acme.Agent.Whisper.request" in document["operations"]
    # Its own shared definitions travel with it, and its payload checks envelopes as the hub does.
    validator = payload_validator(document, "Acme.Agent.Whisper.request")
    good = {"channel": "Acme", "topic": "Agent", "subtopic": "Whisper", "source": "crm", "data": {"text": "hi"}}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "data": {"text": ""}})
    assert not validator.is_valid({**good, "source": ""})


def test_payloads_accept_and_refuse_what_the_hub_does() -> None:
    """Read as draft-07 by a tool, every payload agrees with the hub's own (2020-12) verdicts."""
    catalog = Catalog.load()
    document = asyncapi.document(catalog)
    set_not_ready = {"channel": "Amazon", "topic": "Agent", "subtopic": "SetNotReady", "source": "crm",
                     "data": {"ReasonCodeId": "Break"}, "id": "r-1"}
    refreshed = {"channel": "Bridge", "topic": "Session", "subtopic": "Refreshed",
                 "message": {"expiresAt": "2026-11-26T09:45:37.151Z"}}
    cases = [
        ("Amazon.Agent.SetNotReady.request", set_not_ready),
        ("Amazon.Agent.SetNotReady.request", {**set_not_ready, "data": {"ReasonCodeId": 5}}),
        ("Amazon.Agent.SetNotReady.request", {**set_not_ready, "subject": "crm"}),
        ("Amazon.Agent.SetNotReady.request", {**set_not_ready, "data": {}}),
        # A $ref with a sibling description: still checked once draft-07 reads it.
        ("Bridge.Session.Refreshed.event", refreshed),
        ("Bridge.Session.Refreshed.event", {**refreshed, "message": {"expiresAt": "tomorrow"}}),
    ]
    for message, envelope in cases:
        hub_says = catalog.validate(envelope) is None
        assert payload_validator(document, message).is_valid(envelope) is hub_says, (message, envelope)
    assert [catalog.validate(envelope) is None for _, envelope in cases] == [True, False, False, False, True, False]


def test_payloads_point_inside_the_document() -> None:
    """No urn: for a tool to resolve, no $id or $schema to rebase references on."""
    text = orjson.dumps(asyncapi.document(Catalog.load())).decode()
    assert "urn:connect-bridge:v1:" not in text
    assert '"$schema"' not in text and '"$id"' not in text


def test_describe_writes_the_same_document(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.json"
    result = CliRunner().invoke(main, ["describe", "--asyncapi", "--schemas", str(write_acme(tmp_path / "acme")),
                                       "--host", "bridge.example.com:443", "--tls", "-o", str(target)])
    assert result.exit_code == 0, result.output
    document = orjson.loads(target.read_bytes())
    assert_valid_asyncapi(document)
    assert document["servers"]["hub"] == {**document["servers"]["hub"], "host": "bridge.example.com:443",
                                          "protocol": "wss"}
    assert "Acme.Agent.Whisper.request" in document["components"]["messages"]
    printed = CliRunner().invoke(main, ["describe"])
    assert printed.exit_code == 0
    assert orjson.loads(printed.output) == asyncapi.document(Catalog.load())


def test_describe_says_which_schema_file_is_broken(tmp_path: Path) -> None:
    (tmp_path / "Broken.request.json").write_text("{")
    result = CliRunner().invoke(main, ["describe", "--schemas", str(tmp_path)])
    assert result.exit_code == 1
    assert "Broken.request.json" in result.output and "not valid JSON" in result.output

