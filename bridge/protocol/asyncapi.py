"""The catalog as an AsyncAPI 3.0.0 document: the API described the way the ecosystem reads it.

:func:`document` turns a :class:`~bridge.protocol.catalog.Catalog` into a plain
``dict`` (no I/O): the hub serves it at ``GET /asyncapi.json`` with its own
catalog (a deployment's ``--schemas`` included) and ``connect-bridge describe
--asyncapi`` writes it. docs/api-description.md says how to use it.

What the document holds, and the choices made where AsyncAPI and the
protocol do not meet one to one:

* **One channel**, ``bridge``, at address ``/ws``: every kind travels on the one
  WebSocket. Its messages are every kind of the catalog, one message per
  (kind, shape), named like the schema files: ``Amazon.Agent.SetNotReady.request``.
* **Payloads** are the kinds' JSON Schemas as AsyncAPI Schema Objects (the
  default format, a superset of JSON Schema draft-07, which tools read best).
  The built-in schemas use only keywords that mean the same in draft-07 and
  2020-12; two rewrites keep that true: a ``$ref`` with sibling keywords (which
  draft-07 would ignore) becomes an ``allOf`` beside them, and every ``$ref``
  to a schema document's ``$id`` (``urn:connect-bridge:v1:defs#/$defs/source``)
  points into the document instead (``#/components/schemas/defs/$defs/source``),
  so that no tool has to resolve a ``urn:``. ``$id`` and ``$schema`` are dropped.
* **Operations** are per role and per kind, tagged with the role: what an
  *app* sends (requests whose ``x-bridge.senders`` name ``app``) and receives
  (events, errors), and what a *provider* sends (events, errors) and receives
  (the apps' requests the hub routes to it, the hub's events, errors). The
  schemas declare who sends a kind but not who receives the hub's own events;
  the two that go to one role only are named in :data:`HUB_EVENT_RECIPIENTS`.
  Supervisors (docs/supervisors.md) send and receive the same kinds with one
  more top-level key, ``agent``; the schemas do not mark them, so the document
  says so in words rather than with operations of its own.
* **Security**: the token is a JWT sent in the first frame
  (``Bridge/Session/Hello``, ``data.token``), not in an HTTP header. AsyncAPI
  has no scheme for a token inside a message; the document declares an HTTP
  bearer scheme of format JWT whose description says where it really goes.
* Requests carry ``id`` and the answers ``replyTo``: each message's
  ``correlationId`` points at the one it has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urljoin

from bridge import __version__
from bridge.protocol.catalog import ANY_CHANNEL, Catalog, KindSpec
from bridge.protocol.envelopes import BRIDGE, Role
from bridge.protocol.kind import Kind
from bridge.protocol.names import PROVIDER_STATUS, REPLACED

ASYNCAPI_VERSION: Final = "3.0.0"
#: The key of the one channel, the WebSocket endpoint.
CHANNEL: Final = "bridge"
#: The key of the security scheme (the token in Hello).
SECURITY_SCHEME: Final = "helloToken"
#: The roles whose operations the document lists, in this order.
ROLES: Final = (Role.APP, Role.PROVIDER)
#: The hub's own events that reach one role only (the others reach apps and providers alike).
HUB_EVENT_RECIPIENTS: Final[Mapping[Kind, frozenset[str]]] = {
    PROVIDER_STATUS: frozenset({Role.APP}),
    REPLACED: frozenset({Role.PROVIDER}),
}
#: How a message's description names its senders.
_SENDER_WORDS: Final = {"app": "apps", "provider": "the provider", "hub": "the hub"}
#: Names AsyncAPI allows as component and operation keys.
_KEY: Final = re.compile(r"[^\w.\-]")

DESCRIPTION: Final = """\
One WebSocket at `/ws` carries every message kind as one JSON envelope per text frame, checked \
against the kind's JSON Schema in both directions. A connection starts with \
`Bridge/Session/Hello` (a signed token naming the agent and the role) and the hub answers \
`Bridge/Session/Welcome`. *Apps* send requests for their agent and receive the agent's events; \
the agent's *provider* (its Streams page or a virtual agent) receives those requests and answers \
with events, which reach every app of the agent, or with an error to the requester only. A \
request's `id` comes back as the answer's `replyTo`.

Operations are listed per role (tags `app` and `provider`). Supervisors (one connection, many \
agents) send and receive the apps' kinds with one more top-level key, `agent`, naming the agent \
(docs/supervisors.md).

The full protocol: docs/protocol.md of connect-bridge; every kind: docs/kinds.md."""

TOKEN_DESCRIPTION: Final = """\
A JWT (HS256, signed with the hub's secret; claims `sub` = the agent, `role`, `exp`), made by \
`connect-bridge token`. It is not sent in an HTTP header: it travels in the first frame, \
`Bridge/Session/Hello`, as `data.token`, and can be replaced on the open connection with \
`Bridge/Session/Refresh`. An open (demo) hub takes `data.agent` instead of a token."""


def document(
    catalog: Catalog, *, host: str = "127.0.0.1:8765", protocol: str = "ws", version: str = __version__
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every kind in ``catalog``.

    ``host`` (``name:port``) and ``protocol`` (``ws``, or ``wss`` for a hub serving TLS) make
    its one server entry; ``version`` is the document's (the package's, by default).
    """
    specs = sorted(catalog, key=lambda s: (s.kind.channel != BRIDGE, s.kind, s.shape))
    message_ids = _unique_keys(message_key(spec) for spec in specs)
    by_spec = dict(zip((id(spec) for spec in specs), message_ids, strict=True))

    # Every schema document gets a component name; a $ref to its $id points there.
    resources: dict[str, dict[str, Any]] = {}
    for spec in specs:
        resources.update(spec.resources)
    names: dict[str, str] = {}
    for spec in specs:
        schema_id = spec.schema.get("$id")
        if isinstance(schema_id, str):
            names[schema_id] = by_spec[id(spec)]
    shared_ids = sorted(uri for uri in resources if uri not in names)
    for uri, name in zip(shared_ids, _unique_keys((shared_key(uri) for uri in shared_ids), taken=names.values()),
                         strict=True):
        names[uri] = name

    schemas: dict[str, Any] = {}
    for uri in shared_ids:
        schemas[names[uri]] = _portable(resources[uri], uri, names, resources)
    messages: dict[str, Any] = {}
    for spec, key in zip(specs, message_ids, strict=True):
        schemas[key] = _portable(spec.schema, spec.schema.get("$id", ""), names, resources)
        messages[key] = _message(spec, key)

    wire: dict[str, Any] = next((r["x-bridge-protocol"] for r in resources.values() if "x-bridge-protocol" in r), {})
    info: dict[str, Any] = {
        "title": "connect-bridge",
        "version": version,
        "description": DESCRIPTION,
        "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        "tags": [
            {"name": Role.APP.value, "description": "What an app of an agent sends and receives."},
            {"name": Role.PROVIDER.value, "description": "What an agent's provider sends and receives."},
        ],
    }
    if "version" in wire:
        info["x-bridge-protocol-version"] = wire["version"]
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:connect-bridge",
        "info": info,
        "defaultContentType": "application/json",
        "servers": {
            "hub": {
                "host": host,
                "protocol": protocol,
                "title": "connect-bridge hub",
                "description": "A hub node, over TLS." if protocol == "wss" else
                "A hub node. Behind a TLS proxy the endpoint is `wss://` on the proxy's address.",
                "security": [{"$ref": f"#/components/securitySchemes/{SECURITY_SCHEME}"}],
            }
        },
        "channels": {
            CHANNEL: {
                "address": "/ws",
                "title": "The hub's WebSocket",
                "description": "Every message kind travels on this one WebSocket; one JSON envelope per text frame.",
                "servers": [{"$ref": "#/servers/hub"}],
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in message_ids},
            }
        },
        "operations": _operations(specs, by_spec),
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": TOKEN_DESCRIPTION,
                }
            },
        },
    }


def message_key(spec: KindSpec) -> str:
    """``Amazon.Agent.SetNotReady.request``; the error kind (any channel): ``Error.ApiError.error``."""
    parts = [part for part in spec.kind if part != ANY_CHANNEL]
    return _KEY.sub("_", ".".join([*parts, spec.shape]))


def shared_key(uri: str) -> str:
    """A component name for a shared schema document: ``urn:connect-bridge:v1:defs`` -> ``defs``."""
    tail = re.split(r"[:/]", uri.rstrip("/:#"))[-1]
    tail = re.sub(r"\.json$", "", tail)
    return _KEY.sub("_", tail) or "schema"


def receivers(spec: KindSpec) -> frozenset[str]:
    """The roles that receive ``spec``'s frames (of app and provider)."""
    if spec.shape == "error":
        return frozenset(ROLES)
    if spec.shape == "request":
        # Requests on the hub's own channel are the session's (Hello, Refresh): the hub answers them.
        return frozenset() if spec.kind.channel == BRIDGE else frozenset({Role.PROVIDER})
    if "hub" in spec.senders:
        return HUB_EVENT_RECIPIENTS.get(spec.kind, frozenset(ROLES))
    return frozenset({Role.APP})


def _operations(specs: list[KindSpec], by_spec: Mapping[int, str]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for role in ROLES:
        for action in ("send", "receive"):
            for spec in specs:
                if role not in (spec.senders if action == "send" else receivers(spec)):
                    continue
                key = by_spec[id(spec)]
                verb = "sends" if action == "send" else "receives"
                operations[f"{role}.{action}.{key}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{CHANNEL}"},
                    "title": f"{role.capitalize()} {verb} {spec.label} ({spec.shape})",
                    "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{key}"}],
                    "tags": [{"name": role.value}],
                }
    return operations


def _message(spec: KindSpec, key: str) -> dict[str, Any]:
    """The message of one kind: its name, words, payload, correlation and declared behaviour."""
    behaviour: dict[str, Any] = {"kind": spec.label, "shape": spec.shape, "senders": sorted(spec.senders)}
    article = "An" if spec.shape[0] in "aeiou" else "A"
    notes = [f"{article} {spec.shape}, sent by {' or '.join(_SENDER_WORDS[s] for s in sorted(spec.senders))}."]
    if spec.retain is not None:
        behaviour["retain"] = spec.schema["x-bridge"]["retain"]
        notes.append(f"Retained for apps that join later: {spec.retain.describe()}.")
    if spec.timeout is not None:
        behaviour["timeout"] = spec.timeout
        notes.append(f"The provider has {spec.timeout:g} s to answer.")
    if spec.errors:
        behaviour["errors"] = dict(spec.errors)
        label = "Errors the hub raises" if spec.shape == "error" else "Errors a provider may answer with"
        notes.append(f"{label}: {', '.join(f'`{t}`' for t, _ in spec.errors)}.")
    description = str(spec.schema.get("description", "")).strip()
    message: dict[str, Any] = {
        "name": spec.label,
        "title": str(spec.schema.get("title", spec.label)),
        "summary": description.split(". ")[0].rstrip(".") + "." if description else spec.label,
        "description": " ".join([description, *notes]).strip(),
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{key}"},
        "x-bridge": behaviour,
    }
    correlation = "id" if spec.shape == "request" else "replyTo"
    if correlation in spec.schema.get("properties", {}):
        message["correlationId"] = {
            "description": "A request's `id` comes back as its answer's `replyTo`.",
            "location": f"$message.payload#/{correlation}",
        }
    return message


def _portable(
    schema: Any, base: str, names: Mapping[str, str], resources: Mapping[str, dict[str, Any]], *, top: bool = True
) -> Any:
    """``schema`` as an AsyncAPI Schema Object inside the document (see the module's docstring)."""
    if isinstance(schema, list):
        return [_portable(item, base, names, resources, top=False) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$id", "$schema") or (top and key == "x-bridge"):
            continue
        if key == "$ref" and isinstance(value, str):
            continue
        out[key] = _portable(value, base, names, resources, top=False)
    ref = schema.get("$ref")
    if isinstance(ref, str):
        local = {"$ref": _local_ref(ref, base, names, resources)}
        if not out:
            return local
        out["allOf"] = [*out.get("allOf", []), local]  # draft-07 ignores a $ref's siblings; allOf keeps them
    return out


def _local_ref(ref: str, base: str, names: Mapping[str, str], resources: Mapping[str, dict[str, Any]]) -> str:
    """``urn:connect-bridge:v1:defs#/$defs/source`` -> ``#/components/schemas/defs/$defs/source``.

    A reference the catalog could not have resolved is left as it is.
    """
    target, _, fragment = ref.partition("#")
    uri = urljoin(base, target) if target else base
    if uri not in names and target in names:
        uri = target
    if uri not in names:
        return ref
    if fragment and not fragment.startswith("/"):  # a $anchor: find where it is
        found = _anchor_path(resources[uri], fragment)
        if found is None:
            return ref
        fragment = found
    return f"#/components/schemas/{names[uri]}{fragment}"


def _anchor_path(schema: Any, anchor: str, path: str = "") -> str | None:
    """The JSON pointer of the subschema declaring ``$anchor: anchor``, or ``None``."""
    if isinstance(schema, dict):
        if schema.get("$anchor") == anchor:
            return path
        items: Iterable[tuple[str, Any]] = schema.items()
    elif isinstance(schema, list):
        items = ((str(i), v) for i, v in enumerate(schema))
    else:
        return None
    for key, value in items:
        found = _anchor_path(value, anchor, f"{path}/{key.replace('~', '~0').replace('/', '~1')}")
        if found is not None:
            return found
    return None


def _unique_keys(keys: Iterable[str], taken: Iterable[str] = ()) -> list[str]:
    """``keys`` with a counter added to any already used: two files may sanitise to one name."""
    used = set(taken)
    out: list[str] = []
    for key in keys:
        unique, n = key, 1
        while unique in used:
            n += 1
            unique = f"{key}_{n}"
        used.add(unique)
        out.append(unique)
    return out
