"""The schema catalog: samples pass, broken files stop start-up, the two validators agree."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bridge.protocol import Kind
from bridge.protocol.catalog import Catalog, CatalogError, envelope_shape

from .helpers import SAMPLES

#: Version 1 at the top, then each later version's own folder (calls.md: samples/calls/).
SAMPLE_FILES = sorted(SAMPLES.glob("*.json")) + sorted((SAMPLES / "calls").glob("*.json"))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_the_contract_samples_are_all_there() -> None:
    names = {p.name for p in SAMPLE_FILES}
    assert {"seed-SetAgentState.event.json", "seed-SetNotReady.request.json"} <= names
    assert len(names) >= 9
    assert {"01-ringing.event.json", "11-dropped.event.json", "24-Hold-default.request.json"} <= names


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_every_sample_passes_unchanged(catalog: Catalog, path: Path) -> None:
    assert catalog.validate(json.loads(path.read_text())) is None


def test_the_v1_catalog_is_complete(catalog: Catalog) -> None:
    names = {(str(spec.kind), spec.shape) for spec in catalog}
    for request in ("SetNotReady", "SetReady", "Logout", "Mute", "Unmute", "GetStates", "StateSync"):
        assert (f"Amazon/Agent/{request}", "request") in names
    for event in ("SetAgentState", "GetStates", "StateSync"):
        assert (f"Amazon/Agent/{event}", "event") in names
    for event in ("Welcome", "ProviderStatus", "Replaced"):
        assert (f"Bridge/Session/{event}", "event") in names
    assert ("Bridge/Session/Hello", "request") in names
    assert ("*/Error/ApiError", "error") in names


def write(folder: Path, name: str, schema: Any) -> None:
    (folder / name).write_text(schema if isinstance(schema, str) else json.dumps(schema))


def kind_schema(subtopic: str = "Whisper", **extra: Any) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:example:{subtopic}",
        "x-bridge": {"shape": "request", "senders": ["app"]},
        "type": "object",
        "properties": {"channel": {"const": "Acme"}, "topic": {"const": "Agent"}, "subtopic": {"const": subtopic},
                       "source": {"type": "string"}},
        "required": ["channel", "topic", "subtopic", "source"],
        "additionalProperties": False,
        **extra,
    }


def test_a_new_kind_is_just_a_new_file(tmp_path: Path) -> None:
    write(tmp_path, "acme.json", kind_schema())
    catalog = Catalog.load([tmp_path])
    envelope = {"channel": "Acme", "topic": "Agent", "subtopic": "Whisper", "source": "x"}
    verdict = catalog.check(envelope, Kind("Acme", "Agent", "Whisper"), "app")
    assert verdict.problem is None and verdict.spec is not None and verdict.spec.shape == "request"
    assert catalog.check(envelope, Kind("Acme", "Agent", "Whisper"), "provider").problem == "forbidden"


@pytest.mark.parametrize(
    "content, fault",
    [
        ("{ not json", "not valid JSON"),
        ("[]", "one JSON object"),
        (kind_schema(type="objekt"), "not a valid JSON Schema"),
        ({**kind_schema(), "x-bridge": {"shape": "notice", "senders": ["app"]}}, "x-bridge.shape"),
        ({**kind_schema(), "x-bridge": {"shape": "request", "senders": ["admin"]}}, "x-bridge.senders"),
        ({**kind_schema(), "properties": {"topic": {"const": "A"}}}, "properties.subtopic"),
        ({**kind_schema(), "$id": "urn:connect-bridge:v1:defs"}, "is also used by"),
        ({**kind_schema(), "properties": {**kind_schema()["properties"], "x": {"$ref": "urn:nowhere#/a"}}},
         "cannot compile"),
        ({**kind_schema(), "x-bridge": {"shape": "request", "senders": ["app"], "retain": "latest"}},
         "retain is for events only"),
        ({**kind_schema(), "x-bridge": {"shape": "request", "senders": ["app"], "timeout": 0}}, "x-bridge.timeout"),
        ({**kind_schema(), "x-bridge": {"shape": "request", "senders": ["app"], "timeout": "5"}}, "x-bridge.timeout"),
        ({**kind_schema(), "x-bridge": {"shape": "request", "senders": ["app"], "errors": {"bad type": "x"}}},
         "x-bridge.errors"),
        ({**kind_schema(), "x-bridge": {"shape": "request", "senders": ["app"], "retian": "latest"}},
         "unknown keys: retian"),
        ({**kind_schema(), "x-bridge": {"shape": "event", "senders": ["provider"], "retain": "newest"}},
         "retain is"),
        ({**kind_schema(), "x-bridge": {"shape": "event", "senders": ["provider"], "retain": {"key": "message.id"}}},
         "JSON pointer"),
        ({**kind_schema(), "x-bridge": {"shape": "event", "senders": ["provider"],
                                        "retain": {"dropWhen": {"/message/event": []}}}}, "non-empty lists"),
    ],
)
def test_a_broken_schema_file_is_named_with_its_fault(tmp_path: Path, content: Any, fault: str) -> None:
    write(tmp_path, "broken.json", content)
    with pytest.raises(CatalogError) as raised:
        Catalog.load([tmp_path])
    assert "broken.json" in str(raised.value) and fault in str(raised.value)


def test_a_kind_defined_twice_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.json", kind_schema())
    write(tmp_path, "b.json", {**kind_schema(), "$id": "urn:example:other"})
    with pytest.raises(CatalogError, match="already defined"):
        Catalog.load([tmp_path])


# --- the compiled validator and the reference one must agree --------------------

def mutations(envelope: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    """Valid and invalid variants of an envelope: dropped keys, wrong types, extra keys, odd values."""
    out = []
    paths: list[list[str]] = []

    def walk(value: Any, path: list[str]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                paths.append([*path, key])
                walk(item, [*path, key])

    walk(envelope, [])
    odd_values: list[Any] = [None, 0, -1, 1.5, True, "", "x", "x" * 200, [], {}, ["a"], {"k": 1},
                             "2020-04-09T13:31:21.183Z", "Ready", "routable", "Enable", "event"]
    for path in paths:
        for _ in range(4):
            variant = copy.deepcopy(envelope)
            parent = variant
            for key in path[:-1]:
                parent = parent[key]
            choice = rng.random()
            if choice < 0.3:
                del parent[path[-1]]
            elif choice < 0.85:
                parent[path[-1]] = rng.choice(odd_values)
            else:
                parent["unexpected"] = rng.choice(odd_values)
            out.append(variant)
    return out


def test_the_compiled_and_reference_validators_agree(catalog: Catalog) -> None:
    rng = random.Random(20261126)
    envelopes = [json.loads(p.read_text()) for p in SAMPLE_FILES]
    generated = [m for e in list(envelopes) for m in mutations(e, rng)]
    assert len(generated) >= 300
    compared = valid = 0
    for envelope in envelopes + generated:
        kind = Kind(envelope.get("channel"), envelope.get("topic"), envelope.get("subtopic"))  # type: ignore[arg-type]
        if not all(isinstance(part, str) for part in kind):
            continue
        spec = catalog.spec(kind, envelope_shape(envelope, kind))
        if spec is None:
            continue
        fast = spec.fast.is_valid(envelope)
        reference = jsonschema.Draft202012Validator(spec.schema, registry=spec.reference._registry)
        assert fast == reference.is_valid(envelope), (spec.label, envelope)
        compared += 1
        valid += fast
    assert compared >= 300 and 0 < valid < compared  # both verdicts were exercised


def test_names_a_client_makes_up_are_not_remembered(catalog: Catalog) -> None:
    """A cache keyed by client-chosen names would let one client grow the hub's memory."""
    fresh = Catalog(list(catalog))
    for n in range(50):
        error = {"channel": f"Made-up-{n}", "topic": "Error", "subtopic": "ApiError",
                 "data": {"errorType": "X", "errorMessage": "x", "msg": "x"}}
        assert fresh.check(error, Kind(f"Made-up-{n}", "Error", "ApiError"), "app").problem == "forbidden"
        unknown = {"channel": "Amazon", "topic": "Agent", "subtopic": f"Nope{n}", "source": "x"}
        assert fresh.check(unknown, Kind("Amazon", "Agent", f"Nope{n}"), "app").problem == "unknown"
    assert len(fresh._decided) == 0
    request = {"channel": "Amazon", "topic": "Agent", "subtopic": "Logout", "source": "x"}
    assert fresh.check(request, Kind("Amazon", "Agent", "Logout"), "app").problem is None
    assert len(fresh._decided) == 1
