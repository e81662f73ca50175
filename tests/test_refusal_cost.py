"""Refusing a frame costs little and never raises (issue 10: items 4 and 9, and odd token claims).

These are tests of behaviour, not of time: the explanation of a hostile frame
is short and says what it must, deep frames get the documented error, and the
connection lives on where the protocol says it does.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol import Kind
from bridge.protocol.catalog import KEYWORD_BUDGET, MAX_DEPTH, MAX_DETAIL, Catalog, too_deep, within_depth
from bridge.protocol.tokens import TokenError, verify_token

from .conftest import SECRET
from .helpers import connect, hello, join, join_app, sample, seed_event
from .test_bad_input import still_works

REQ = sample("seed-SetNotReady.request.json")
SET_NOT_READY = Kind("Amazon", "Agent", "SetNotReady")
SET_AGENT_STATE = Kind("Amazon", "Agent", "SetAgentState")
#: ``$.json.path: what is wrong (rule)``
DETAIL = re.compile(r"^\$\S*: .+ \(\w+\)$", re.DOTALL)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def nested(levels: int, leaf: Any = 1, *, key: str | None = "a") -> Any:
    """``levels`` objects (or arrays, when ``key`` is None) around ``leaf``."""
    value = leaf
    for _ in range(levels):
        value = [value] if key is None else {key: value}
    return value


def deep_text(levels: int, *, array: bool = False) -> str:
    """The same nesting as JSON text, built without recursion (orjson caps its own at 255 levels)."""
    opening, closing = ("[", "]") if array else ('{"a":', "}")
    return opening * levels + "1" + closing * levels


def with_unknown_keys(count: int) -> dict[str, Any]:
    envelope = dict(REQ)
    envelope.update({f"k{n:04d}": 1 for n in range(count)})
    return envelope


def with_bad_buttons(count: int, *, valid_first: int = 0) -> dict[str, Any]:
    event = seed_event()
    items = {f"button{n:04d}": "Enable" for n in range(valid_first)}
    items.update({f"button{n:04d}": "Maybe" for n in range(valid_first, valid_first + count)})
    event["message"]["rules"]["ButtonStates"]["items"] = items
    return event


# --- item 4: the explanation is bounded ------------------------------------------------

def test_six_thousand_unknown_keys_are_named_a_few_and_counted(catalog: Catalog) -> None:
    envelope = with_unknown_keys(6000)
    assert len(orjson.dumps(envelope)) > 55_000  # the frame of the report: about 59 KB
    verdict = catalog.check(envelope, SET_NOT_READY, "app")
    assert verdict.problem == "schema"
    assert len(verdict.detail) <= MAX_DETAIL and DETAIL.match(verdict.detail)
    assert verdict.detail == (
        "$: Additional properties are not allowed ('k0000', 'k0001', 'k0002' and 5,997 more were unexpected)"
        " (additionalProperties)"
    )
    assert catalog.validate(envelope) == verdict.detail


def test_one_unknown_key_keeps_the_message_clients_know(catalog: Catalog) -> None:
    detail = catalog.validate({**REQ, "subject": "x"})
    assert detail == "$: Additional properties are not allowed ('subject' was unexpected) (additionalProperties)"


def test_four_thousand_bad_items_are_explained_by_the_first(catalog: Catalog) -> None:
    verdict = catalog.check(with_bad_buttons(4000), SET_AGENT_STATE, "provider")
    assert verdict.problem == "schema"
    assert verdict.detail == (
        "$.message.rules.ButtonStates.items.button0000: 'Maybe' is not one of ['Enable', 'Disable', 'Hide'] (enum)"
    )


def test_a_bad_item_behind_thousands_of_good_ones_is_still_explained(catalog: Catalog) -> None:
    """Past the reference validator's budget, the compiled validator's first error is described."""
    envelope = with_bad_buttons(1, valid_first=3999)
    verdict = catalog.check(envelope, SET_AGENT_STATE, "provider")
    assert verdict.problem == "schema"
    assert len(verdict.detail) <= MAX_DETAIL and DETAIL.match(verdict.detail)
    assert verdict.detail.startswith("$.message.rules")


def test_the_reference_validators_work_does_not_grow_with_the_frame(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Explaining costs at most a fixed number of schema steps in Python, whatever the
    frame holds (the rest is the compiled validator's), so refusing stays cheap."""
    spec = catalog.spec(SET_AGENT_STATE, "event")
    assert spec is not None
    validator = type(spec.reference)
    real = validator.descend
    steps = [0]

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        steps[0] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(validator, "descend", counted)
    spent = []
    for good in (10, 400, 3999):
        steps[0] = 0
        catalog.check(with_bad_buttons(1, valid_first=good), SET_AGENT_STATE, "provider")
        spent.append(steps[0])
    assert max(spent) <= 2 * KEYWORD_BUDGET, spent
    assert spent[2] <= spent[1] + KEYWORD_BUDGET // 10, spent  # past the budget it stops growing


def test_a_huge_wrong_value_is_not_repeated_in_full(catalog: Catalog) -> None:
    envelope = {**REQ, "data": {"ReasonCodeId": ["x" * 50] * 1000}}
    detail = catalog.validate(envelope)
    assert detail is not None and len(detail) <= MAX_DETAIL and DETAIL.match(detail)
    assert detail.startswith("$.data.ReasonCodeId: ") and detail.endswith(" (type)")


def test_long_unknown_key_names_are_shortened(catalog: Catalog) -> None:
    detail = catalog.validate({**REQ, "x" * 20_000: 1, "y" * 20_000: 2})
    assert detail is not None and len(detail) <= MAX_DETAIL
    assert "were unexpected" in detail and detail.endswith("(additionalProperties)")


# --- item 9: deep nesting -----------------------------------------------------------------

DEEP_PLACES = {
    "data-object": lambda deep: {**REQ, "data": {"ReasonCodeId": deep}},
    "source": lambda deep: {**REQ, "source": deep},
    "unknown-key": lambda deep: {**REQ, "extra": deep},
    "id": lambda deep: {**REQ, "id": deep},
}


@pytest.mark.parametrize("place", DEEP_PLACES)
@pytest.mark.parametrize("array", [False, True], ids=["objects", "arrays"])
def test_a_frame_a_thousand_deep_is_refused_with_the_limit(catalog: Catalog, place: str, array: bool) -> None:
    envelope = DEEP_PLACES[place](orjson.loads(deep_text(1000, array=array)))
    for verdict in (catalog.check(envelope, SET_NOT_READY, "app"), catalog.check(envelope, Kind(
            "Bridge", "Session", "Hello"), "app")):
        assert verdict.problem == "schema"
        assert f"nested deeper than {MAX_DEPTH} levels (maxDepth)" in verdict.detail
        assert len(verdict.detail) <= MAX_DETAIL
    spec = catalog.spec(SET_NOT_READY, "request")
    assert spec is not None and "maxDepth" in spec.explain(envelope)
    assert "maxDepth" in (catalog.validate(envelope) or "")


def test_the_limit_counts_the_envelope_as_level_one() -> None:
    assert too_deep(nested(MAX_DEPTH)) is None  # 64 objects in all
    assert too_deep(nested(MAX_DEPTH + 1)) == ["a"] * MAX_DEPTH  # the path to the 65th
    assert too_deep(nested(MAX_DEPTH + 1, key=None)) == [0] * MAX_DEPTH
    assert too_deep("scalar") is None and too_deep({}) is None
    for levels in (1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 500):
        for key in ("a", None):
            assert within_depth(nested(levels, key=key)) == (too_deep(nested(levels, key=key)) is None)


BLOB_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:example:Blob",
    "x-bridge": {"shape": "request", "senders": ["app"]},
    "type": "object",
    "properties": {"channel": {"const": "Acme"}, "topic": {"const": "Agent"}, "subtopic": {"const": "Blob"},
                   "source": {"type": "string"}, "id": {"type": "string"}, "blob": {}},
    "required": ["channel", "topic", "subtopic", "source"],
}


def test_a_schema_that_allows_anything_decides_depth_itself(tmp_path: Path) -> None:
    """Depth is measured only on frames the validator refuses: explaining them is what costs."""
    (tmp_path / "blob.json").write_text(json.dumps(BLOB_SCHEMA))
    catalog = Catalog.load([tmp_path])
    kind = Kind("Acme", "Agent", "Blob")
    base = {"channel": "Acme", "topic": "Agent", "subtopic": "Blob", "source": "x"}
    assert catalog.check({**base, "blob": nested(500)}, kind, "app").problem is None
    broken = {**base, "source": 5, "blob": nested(MAX_DEPTH)}  # refused, and too deep to explain
    verdict = catalog.check(broken, kind, "app")
    assert verdict.problem == "schema" and verdict.detail.endswith(f"deeper than {MAX_DEPTH} levels (maxDepth)")
    assert catalog.validate(broken) == verdict.detail
    shallow = {**base, "source": 5, "blob": nested(MAX_DEPTH - 1)}
    assert catalog.check(shallow, kind, "app").detail.startswith("$.source:")


async def test_a_free_form_frame_too_deep_to_forward_is_refused_not_crashed(tmp_path: Path) -> None:
    """A valid frame nested past what orjson writes (255) cannot get its request id added: refused."""
    (tmp_path / "blob.json").write_text(json.dumps(BLOB_SCHEMA))
    config = HubConfig(port=0, open_mode=True, schema_dirs=(tmp_path,))
    async with HubServer(config) as hub:
        app = await join_app(hub.url)
        await app.send('{"channel":"Acme","topic":"Agent","subtopic":"Blob","source":"x","blob":' + deep_text(300) + "}")
        error = await app.recv()
        assert error["data"]["errorType"] == "SCHEMA_VIOLATION" and "cannot be forwarded" in error["data"]["errorMessage"]
        await app.send({"channel": "Acme", "topic": "Agent", "subtopic": "Blob", "source": "x", "id": "b1"})
        assert (await app.recv())["data"]["errorType"] == "PROVIDER_UNAVAILABLE"  # still served


def deep_request(levels: int, *, array: bool = False) -> str:
    """A SetNotReady whose ``data.ReasonCodeId`` is nested ``levels`` deep, with an id to echo."""
    return (
        '{"channel":"Amazon","topic":"Agent","subtopic":"SetNotReady","source":"x","id":"deep-1",'
        f'"data":{{"ReasonCodeId":{deep_text(levels, array=array)}}}}}'
    )


@pytest.mark.parametrize("array", [False, True], ids=["objects", "arrays"])
async def test_a_deep_frame_from_an_app_gets_the_documented_error(open_hub: HubServer, array: bool) -> None:
    app = await join_app(open_hub.url)
    await app.send(deep_request(1000, array=array))
    err = await app.recv()
    assert err["data"]["errorType"] == "SCHEMA_VIOLATION" and err["replyTo"] == "deep-1"
    assert f"deeper than {MAX_DEPTH} levels" in err["data"]["errorMessage"]
    await app.send(deep_request(2000, array=array))  # beyond the JSON parser's own limit
    assert (await app.recv())["data"]["errorType"] == "INVALID_JSON"
    await still_works(app)


async def test_a_deep_event_from_a_provider_gets_the_documented_error(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    app = await join_app(open_hub.url)
    event = seed_event()
    event["message"]["event"] = "@@"
    text = orjson.dumps(event).decode().replace('"@@"', deep_text(1000))
    await provider.send(text)
    err = await provider.recv()
    assert err["data"]["errorType"] == "SCHEMA_VIOLATION" and "maxDepth" in err["data"]["errorMessage"]
    await app.nothing()
    await provider.send(seed_event())
    assert (await app.recv())["subtopic"] == "SetAgentState"


@pytest.mark.parametrize("levels", [1000, 2000])
async def test_a_deep_first_frame_is_refused_and_closed(open_hub: HubServer, levels: int) -> None:
    client = await connect(open_hub.url)
    await client.send(
        '{"channel":"Bridge","topic":"Session","subtopic":"Hello","source":"x",'
        f'"data":{{"role":"app","agent":{deep_text(levels)}}}}}'
    )
    err = await client.recv()
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED"
    assert await client.closed() == 1008


async def test_a_deep_hello_token_is_refused_and_closed(secure_hub: HubServer) -> None:
    client = await connect(secure_hub.url)
    await client.send(hello("app", token="@@").replace('"@@"', deep_text(1000, array=True)))
    err = await client.recv()
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED" and "maxDepth" in err["data"]["errorMessage"]
    assert await client.closed() == 1008


# --- odd token claims ------------------------------------------------------------------

def signed(**claims: Any) -> str:
    payload = {"sub": "agent1", "role": "app", "exp": 4_000_000_000, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


async def test_a_token_expiring_in_ten_to_the_400_is_refused_and_closed(secure_hub: HubServer) -> None:
    client = await connect(secure_hub.url)
    await client.send(hello("app", token=signed(exp=10**400)))
    err = await client.recv()
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED" and "'exp'" in err["data"]["errorMessage"]
    assert await client.closed() == 1008
    _, welcome = await join(secure_hub.url, "app", token=signed())  # the hub is fine
    assert welcome["message"]["agent"] == "agent1"


@pytest.mark.parametrize(
    "claims, why",
    [
        ({"exp": 10**400}, "'exp'"),
        ({"exp": -(10**400)}, "expired"),
        ({"exp": 10**20}, "'exp'"),
        ({"exp": 1e300}, "'exp'"),
        ({"exp": "4000000000"}, "'exp'"),
        ({"exp": True}, ""),
        ({"exp": [1]}, "exp"),
        ({"exp": None}, "exp"),
        ({"iat": 10**400}, "iat"),
        ({"nbf": "soon"}, "nbf"),
        ({"sub": 7}, "ubject"),
        ({"sub": ""}, "'sub'"),
        ({"sub": "a" * 65}, "'sub'"),
        ({"sub": ["agent1"]}, "ubject"),
        ({"role": ["app"]}, "role"),
        ({"role": {"app": 1}}, "role"),
        ({"role": 1}, "role"),
        ({"role": "x" * 5000}, "role"),
    ],
    ids=lambda value: repr(value)[:30],
)
def test_an_odd_claim_is_a_token_error(claims: dict[str, Any], why: str) -> None:
    with pytest.raises(TokenError) as raised:
        verify_token(SECRET, signed(**claims))
    assert why in str(raised.value) and len(str(raised.value)) < 200


def test_a_sound_token_still_verifies() -> None:
    claims = verify_token(SECRET, signed(sub="a" * 64, role="provider"))
    assert claims.agent == "a" * 64 and claims.role == "provider" and claims.expires_at == 4_000_000_000.0


def test_the_reference_validator_is_unbounded_outside_explanations(catalog: Catalog) -> None:
    """Only ``explain`` is budgeted: the reference validator still lists every error otherwise."""
    spec = catalog.spec(SET_NOT_READY, "request")
    assert spec is not None
    envelope = copy.deepcopy(REQ)
    envelope["data"] = {f"k{n}": n for n in range(20)}
    assert len(list(spec.reference.iter_errors({**envelope, "source": 1, "id": 2}))) >= 3
