"""Every bad input the protocol names, over a real socket: the documented error, then life goes on."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.hub.server import HubServer
from bridge.protocol.tokens import issue_token

from .conftest import SECRET
from .helpers import Client, connect, hello, join, join_app, sample, sample_text, seed_event

REQ = sample("seed-SetNotReady.request.json")


async def still_works(app: Client) -> None:
    """The connection survived: a valid request still gets its (provider-less) answer."""
    await app.send({**REQ, "id": "alive"})
    err = await app.recv()
    assert err["replyTo"] == "alive" and err["data"]["errorType"] == "PROVIDER_UNAVAILABLE"


def without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


BAD_APP_FRAMES = [
    pytest.param("{not json", "INVALID_JSON", None, None, id="not-json"),
    pytest.param("[1, 2, 3]", "INVALID_ENVELOPE", None, None, id="json-array"),
    pytest.param('"text"', "INVALID_ENVELOPE", None, None, id="json-string"),
    pytest.param({**without(REQ, "channel"), "id": "r1"}, "INVALID_ENVELOPE", "r1", None, id="missing-channel"),
    pytest.param({**without(REQ, "topic"), "id": "r2"}, "INVALID_ENVELOPE", "r2", None, id="missing-topic"),
    pytest.param({**REQ, "subtopic": 7, "id": "r3"}, "INVALID_ENVELOPE", "r3", None, id="number-subtopic"),
    pytest.param({**REQ, "channel": None}, "INVALID_ENVELOPE", None, None, id="null-channel"),
    pytest.param({**REQ, "subtopic": "SetBusy", "id": "r4"}, "UNKNOWN_MESSAGE", "r4", "SetBusy", id="unknown-kind"),
    pytest.param({**REQ, "subtopic": "setnotready"}, "UNKNOWN_MESSAGE", None, "setnotready", id="wrong-case"),
    pytest.param({**without(REQ, "source"), "subject": "myapp", "id": "r5"}, "SCHEMA_VIOLATION", "r5",
                 "SetNotReady", id="subject-for-source"),
    pytest.param({**REQ, "data": {}, "id": "r6"}, "SCHEMA_VIOLATION", "r6", "SetNotReady", id="no-reason"),
    pytest.param({**REQ, "data": {"ReasonCodeId": 5}}, "SCHEMA_VIOLATION", None, "SetNotReady",
                 id="numeric-reason"),
    pytest.param({**REQ, "data": {"ReasonCodeId": ""}, "id": "r7"}, "SCHEMA_VIOLATION", "r7", "SetNotReady",
                 id="empty-reason"),
    pytest.param({**sample("seed-SetAgentState.event.json"), "id": "r8"}, "FORBIDDEN", "r8", "SetAgentState",
                 id="event-from-app"),
]


@pytest.mark.parametrize("frame, error_type, reply_to, subtopic", BAD_APP_FRAMES)
async def test_a_bad_frame_from_an_app(open_hub: HubServer, frame: Any, error_type: str,
                                       reply_to: str | None, subtopic: str | None) -> None:
    app = await join_app(open_hub.url)
    await app.send(frame)
    err = await app.recv()
    assert err["topic"] == "Error" and err["subtopic"] == "ApiError"
    assert err["data"]["errorType"] == error_type
    assert err["data"]["msg"] and err["data"]["errorMessage"]
    assert err.get("replyTo") == reply_to
    if subtopic is None:
        assert "request" not in err["data"]
    else:
        assert err["data"]["request"]["subtopic"] == subtopic
    await still_works(app)


async def test_schema_violations_name_the_path_and_rule(open_hub: HubServer) -> None:
    app = await join_app(open_hub.url)
    await app.send({**REQ, "data": {"ReasonCodeId": 5}})
    assert (await app.recv())["data"]["errorMessage"] == "$.data.ReasonCodeId: 5 is not of type 'string' (type)"
    await app.send({**REQ, "subject": "x"})
    assert "'subject' was unexpected" in (await app.recv())["data"]["errorMessage"]


async def test_a_request_from_a_provider_is_forbidden(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    await provider.send({**REQ, "id": "p1"})
    err = await provider.recv()
    assert err["data"]["errorType"] == "FORBIDDEN" and err["replyTo"] == "p1"
    await provider.send(seed_event())  # still a working provider
    app = await join_app(open_hub.url)
    assert (await app.recv())["retained"] is True


async def test_a_bad_event_from_the_provider_reaches_no_app(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    app = await join_app(open_hub.url)
    event = seed_event()
    event["message"]["data"]["state"] = "Ready"  # not_routable must be Not_Ready
    await provider.send(event)
    err = await provider.recv()
    assert err["data"]["errorType"] == "SCHEMA_VIOLATION"
    await app.nothing()


async def test_a_frame_before_hello_is_refused_and_closed(open_hub: HubServer) -> None:
    client = await connect(open_hub.url)
    await client.send({**REQ, "id": "early"})
    err = await client.recv()
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED" and err["replyTo"] == "early"
    assert await client.closed() == 1008


async def test_no_hello_within_the_deadline_is_closed(open_hub: HubServer) -> None:
    client = await connect(open_hub.url)
    err = await client.recv(timeout=3)  # the fixture's deadline is 1 s
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED" and "no Hello within" in err["data"]["errorMessage"]
    assert await client.closed() == 1008


@pytest.mark.parametrize(
    "token, why",
    [
        (None, "token is required"),
        (issue_token(SECRET, agent="agent1", role="app", ttl=-5), "expired"),
        (issue_token("another-secret-of-sufficient-length!", agent="agent1", role="app"), "signature"),
        (issue_token(SECRET, agent="agent1", role="provider"), "role provider, not app"),
        ("not-a-jwt", "not valid"),
    ],
    ids=["missing", "expired", "forged", "wrong-role", "garbage"],
)
async def test_a_bad_token_is_refused_and_closed(secure_hub: HubServer, token: str | None, why: str) -> None:
    client = await connect(secure_hub.url)
    if token is None:
        await client.send(hello("app", agent="agent1"))
    else:
        await client.send(hello("app", token=token))
    err = await client.recv()
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED" and why in err["data"]["errorMessage"]
    assert await client.closed() == 1008


async def test_a_valid_token_joins_its_agent(secure_hub: HubServer) -> None:
    _, welcome = await join(secure_hub.url, "app", token=issue_token(SECRET, agent="agent9", role="app"))
    assert welcome["message"]["agent"] == "agent9"


async def test_a_binary_frame_is_refused_and_closed(open_hub: HubServer) -> None:
    app = await join_app(open_hub.url)
    other = await join_app(open_hub.url)
    await app.send(sample_text("Mute.request.json").encode())
    err = await app.recv()
    assert err["data"]["errorType"] == "INVALID_ENVELOPE"
    assert await app.closed() == 1008
    await still_works(other)


async def test_an_oversized_frame_closes_with_1009(open_hub: HubServer) -> None:
    app = await join_app(open_hub.url)
    other = await join_app(open_hub.url)
    await app.send({**REQ, "source": "x" * 70_000})
    assert await app.closed() == 1009
    await still_works(other)


async def test_a_provider_error_that_answers_nothing_is_dropped(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    app = await join_app(open_hub.url)
    await provider.send({**sample("ApiError.error.json"), "replyTo": "nobody-asked"})
    await app.nothing()
    await provider.nothing()
    await provider.send(seed_event())
    assert (await app.recv())["subtopic"] == "SetAgentState"


async def test_an_answer_after_the_requester_left(open_hub: HubServer) -> None:
    provider, _ = await join(open_hub.url, "provider")
    requester = await join_app(open_hub.url)
    bystander = await join_app(open_hub.url)
    await requester.send({**REQ, "id": "gone-1"})
    await provider.recv()
    await requester.close()
    await provider.send({**sample("ApiError.error.json"), "replyTo": "gone-1"})
    await bystander.nothing()
    await provider.send(seed_event(reply_to="gone-1"))  # an event still goes to the agent's apps
    assert (await bystander.recv())["replyTo"] == "gone-1"
    assert len(open_hub.router.pending) == 0


async def test_flooding_is_rate_limited_then_closed(open_hub: HubServer) -> None:
    flooder = await join_app(open_hub.url)
    other = await join_app(open_hub.url, "agent2")
    for n in range(400):
        await flooder.send({**REQ, "id": f"f{n}"})
    errors = []
    try:
        while True:
            errors.append((await flooder.recv())["data"]["errorType"])
    except Exception:
        pass
    assert "RATE_LIMITED" in errors
    assert await flooder.closed() == 1008
    assert open_hub.metrics.disconnects.labels("flooding")._value.get() == 1
    await still_works(other)
