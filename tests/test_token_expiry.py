"""A connection lives as long as its token: it ends at expiry (4003) unless a fresh one comes first.

Over real sockets: the hub closes an expired connection with a documented
error and close code, accepts ``Bridge/Session/Refresh`` on the open
connection, and the Python client refreshes from its token function so that
a connection outlives many short tokens.
"""

from __future__ import annotations

import asyncio
import itertools

from bridge.client import BridgeClient, ConnectionState, NotAuthenticated
from bridge.hub.server import HubServer
from bridge.protocol.tokens import issue_token

from .conftest import SECRET
from .helpers import join_app, sample_text, within


def refresh(token: str, request_id: str = "r-1") -> dict[str, object]:
    return {"channel": "Bridge", "topic": "Session", "subtopic": "Refresh", "source": "test", "id": request_id,
            "data": {"token": token}}


async def test_a_connection_is_closed_when_its_token_expires(secure_hub: HubServer) -> None:
    # ttl=2: a token's expiry is in whole seconds, so ttl=1 may leave it less than the Hello takes.
    app = await join_app(secure_hub.url, token=issue_token(SECRET, agent="agent1", role="app", ttl=2))
    err = await app.recv(timeout=5)
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED" and "token expired" in err["data"]["errorMessage"]
    assert await app.closed() == 4003


async def test_a_fresh_token_on_the_open_connection_keeps_it(secure_hub: HubServer) -> None:
    app = await join_app(secure_hub.url, token=issue_token(SECRET, agent="agent1", role="app", ttl=2))
    # A token for another agent is refused, and the connection stays on its own token.
    await app.send(refresh(issue_token(SECRET, agent="agent2", role="app", ttl=3600), "bad"))
    refused = await app.recv()
    assert refused["data"]["errorType"] == "NOT_AUTHENTICATED" and refused["replyTo"] == "bad"
    await app.send(refresh(issue_token(SECRET, agent="agent1", role="app", ttl=3600)))
    answer = await app.recv()
    assert answer["subtopic"] == "Refreshed" and answer["replyTo"] == "r-1"
    assert answer["message"]["expiresAt"].endswith("Z")
    await asyncio.sleep(3)  # past the first token's expiry
    await app.send(sample_text("Mute.request.json"))
    still = await app.recv()  # answered, so open: nobody provides for agent1 here
    assert still["data"]["errorType"] == "PROVIDER_UNAVAILABLE"


async def test_the_python_client_refreshes_from_its_token_function(secure_hub: HubServer) -> None:
    made = itertools.count()

    def token() -> str:
        next(made)
        return issue_token(SECRET, agent="agent1", role="app", ttl=2)

    async with BridgeClient(secure_hub.url, token=token, source="refresher") as bus:
        first = bus.connection_id
        await asyncio.sleep(4.5)  # two tokens' lifetimes
        assert bus.state is ConnectionState.OPEN
        assert bus.connection_id == first and bus.connections == 1  # never reconnected
        assert next(made) >= 3  # the Hello's token and at least two refreshes


async def test_the_python_client_with_a_fixed_token_stops_when_it_expires(secure_hub: HubServer) -> None:
    # ttl=2: a token's expiry is in whole seconds, so ttl=1 may leave it less than the Hello takes.
    bus = BridgeClient(secure_hub.url, token=issue_token(SECRET, agent="agent1", role="app", ttl=2),
                       backoff_initial=0.05, backoff_max=0.1)
    await bus.start()
    try:
        await within(bus.wait_for_state(ConnectionState.CLOSED), 10)
        assert isinstance(bus.close_error, NotAuthenticated)
    finally:
        await bus.close()


async def test_an_expired_refresh_is_refused(secure_hub: HubServer) -> None:
    app = await join_app(secure_hub.url, token=issue_token(SECRET, agent="agent1", role="app", ttl=60))
    await app.send(refresh(issue_token(SECRET, agent="agent1", role="app", ttl=-1)))
    err = await app.recv()
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED" and "current token still applies" in \
        err["data"]["errorMessage"]
