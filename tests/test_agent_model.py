"""The virtual agent's model, with no I/O: rules, shapes, and the schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import protocol
from bridge.protocol import ErrorType, Kind
from bridge.protocol.catalog import Catalog
from bridge.sim.agent_model import (
    BUSY,
    DEFAULT_STATES,
    GET_STATES,
    LOGOUT,
    MUTE,
    SET_AGENT_STATE,
    SET_NOT_READY,
    SET_READY,
    STATE_SYNC,
    UNMUTE,
    V1_REQUESTS,
    AgentModel,
    AgentState,
    Answer,
    Failure,
    StateType,
    display_name,
    iso_ms,
    states_from_config,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "protocol" / "samples"
CATALOG = Catalog.load()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def model(clock: FakeClock) -> AgentModel:
    return AgentModel("agent1", clock=clock)


def answer(outcome: Answer | Failure) -> dict[str, Any]:
    assert isinstance(outcome, Answer), outcome
    return outcome.message


def failure(outcome: Answer | Failure) -> Failure:
    assert isinstance(outcome, Failure), outcome
    return outcome


def as_event(outcome: Answer, reply_to: str | None = "req-1") -> dict[str, Any]:
    return protocol.event(outcome.kind, outcome.message, reply_to=reply_to)


def as_error(outcome: Failure, kind: Kind, reply_to: str = "req-1") -> dict[str, Any]:
    return protocol.error(
        outcome.error_type,
        outcome.error_message,
        msg=outcome.msg,
        channel=kind.channel,
        request=kind,
        reply_to=reply_to,
    )


def assert_valid(envelope: dict[str, Any]) -> None:
    problem = CATALOG.validate(orjson.loads(orjson.dumps(envelope)))
    assert problem is None, (problem, envelope)


def shape(value: Any) -> Any:
    """The keys of every object, recursively, with values reduced to their JSON type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


# ----- SetAgentState shape ----------------------------------------------------------------


def test_starts_available_and_ready(model: AgentModel, clock: FakeClock) -> None:
    message = model.set_agent_state()
    assert message["event"] == "Available"
    assert message["source"] == "event"
    data = message["data"]
    assert data == {
        "muted": False,
        "name": "Agent 1",
        "extension": "",
        "loginName": "agent1",
        "softphoneEnabled": True,
        "state": "Ready",
        "stateChangeTime": "2026-01-02T03:04:05.678Z",
        "type": "routable",
    }
    assert message["rules"]["ResponseActual"] == {
        "agentStateARN": None,
        "type": "routable",
        "name": "Available",
        "startTimestamp": "2026-01-02T03:04:05.678Z",
    }
    assert message["rules"]["ButtonStates"]["items"]["Ready"] == "Disable"
    assert_valid(protocol.event(SET_AGENT_STATE, message))


def test_not_ready_event_has_the_seed_samples_shape(model: AgentModel) -> None:
    seed = orjson.loads((SAMPLES / "seed-SetAgentState.event.json").read_bytes())
    produced = protocol.event(SET_AGENT_STATE, answer(model.set_not_ready("Break")))
    # Same keys in the same order at every level, and the same JSON types.
    assert shape(produced) == shape(seed)
    assert list(produced["message"]["data"]) == list(seed["message"]["data"])
    assert_valid(produced)


def test_coarse_state_follows_the_type(model: AgentModel) -> None:
    assert model.agent_data()["state"] == "Ready"
    model.set_not_ready("Lunch")
    assert (model.agent_data()["state"], model.agent_data()["reasonCode"]) == (
        "Not_Ready",
        {"id": "Lunch"},
    )
    model.start_call()
    data = model.agent_data()
    assert (data["state"], data["type"], "reasonCode" in data) == ("Not_Ready", "system", False)
    model.end_call()
    model.logout()
    data = model.agent_data()
    assert (data["state"], data["type"], "reasonCode" in data) == ("Logout", "offline", False)


def test_timestamps_are_iso_utc_with_milliseconds() -> None:
    moment = datetime(2020, 4, 9, 13, 31, 21, 183_999, tzinfo=UTC)
    assert iso_ms(moment) == "2020-04-09T13:31:21.183Z"
    local = moment.astimezone(timezone(timedelta(hours=2)))
    assert iso_ms(local) == "2020-04-09T13:31:21.183Z"


@pytest.mark.parametrize(
    ("login", "name"),
    [
        ("agent1", "Agent 1"),
        ("agent_12", "Agent 12"),
        ("jdoe", "Jdoe"),
        ("j.doe@example.com", "J.doe@example.com"),
    ],
)
def test_display_name_from_login(login: str, name: str) -> None:
    assert display_name(login) == name


# ----- requests ---------------------------------------------------------------------------


def test_set_not_ready_changes_state_and_time(model: AgentModel, clock: FakeClock) -> None:
    clock.advance(61.5)
    outcome = model.set_not_ready("Break")
    assert isinstance(outcome, Answer) and outcome.changed and outcome.kind == SET_AGENT_STATE
    assert outcome.message["event"] == "Break"
    assert outcome.message["data"]["stateChangeTime"] == "2026-01-02T03:05:07.178Z"
    assert model.state == AgentState("Break", StateType.NOT_ROUTABLE)


def test_unknown_reason_is_agent_state_not_found(model: AgentModel) -> None:
    refused = failure(model.set_not_ready("Coffee"))
    assert refused.error_type is ErrorType.AGENT_STATE_NOT_FOUND
    assert (
        refused.error_message
        == "no not-routable agent state named 'Coffee' among: Break, Lunch, Training"
    )
    assert model.state.name == "Available"
    assert_valid(as_error(refused, SET_NOT_READY))


def test_set_not_ready_refuses_a_routable_state(model: AgentModel) -> None:
    assert failure(model.set_not_ready("Available")).error_type is ErrorType.AGENT_STATE_NOT_FOUND


def test_set_ready_defaults_to_the_first_routable_state(clock: FakeClock) -> None:
    states = [*DEFAULT_STATES, AgentState("Outbound", StateType.ROUTABLE)]
    model = AgentModel("agent1", states=states, initial_state="Break", clock=clock)
    assert answer(model.set_ready())["event"] == "Available"
    assert answer(model.set_ready("Outbound"))["event"] == "Outbound"
    refused = failure(model.set_ready("Lunch"))
    assert refused.error_type is ErrorType.AGENT_STATE_NOT_FOUND
    assert "routable agent state named 'Lunch' among: Available, Outbound" in refused.error_message


def test_setting_the_current_state_changes_nothing(model: AgentModel, clock: FakeClock) -> None:
    model.set_not_ready("Break")
    before = model.set_agent_state()
    clock.advance(5)
    outcome = model.set_not_ready("Break")
    assert isinstance(outcome, Answer) and not outcome.changed
    assert outcome.message == before


def test_logout_goes_offline(model: AgentModel) -> None:
    message = answer(model.logout())
    assert (message["event"], message["data"]["state"], message["data"]["type"]) == (
        "Offline",
        "Logout",
        "offline",
    )
    assert message["rules"]["ButtonStates"]["items"]["make_call"] == "Disable"
    assert answer(model.state_sync())["loginState"] == "LoggedOut"
    # Logged out agents can come back, as in the CCP.
    assert answer(model.set_ready())["data"]["state"] == "Ready"


def test_fail_updates_refuses_every_change(model: AgentModel) -> None:
    model.fail_updates = True
    for outcome in (model.set_not_ready("Break"), model.set_ready(), model.logout()):
        refused = failure(outcome)
        assert refused.error_type is ErrorType.UPDATE_AGENT_STATE_FAILED
        assert "InvalidStateException" in refused.error_message
        assert_valid(as_error(refused, SET_READY))
    assert model.state.name == "Available"
    # An unknown state is still reported as such, before any attempt to change.
    assert failure(model.set_not_ready("Coffee")).error_type is ErrorType.AGENT_STATE_NOT_FOUND


def test_mute_needs_a_call(model: AgentModel) -> None:
    for muted in (True, False):
        refused = failure(model.set_muted(muted))
        assert refused.error_type is ErrorType.MUTE_FAILED
        assert "no active softphone call" in refused.error_message
        assert_valid(as_error(refused, MUTE))
    assert model.muted is False


def test_mute_and_unmute_on_a_call(model: AgentModel) -> None:
    model.start_call()
    items = model.button_states()
    assert (items["mute"], items["unmute"]) == ("Enable", "Hide")
    outcome = model.set_muted(True)
    assert isinstance(outcome, Answer) and outcome.changed
    assert outcome.message["data"]["muted"] is True
    items = outcome.message["rules"]["ButtonStates"]["items"]
    assert (items["mute"], items["unmute"]) == ("Hide", "Enable")
    again = model.set_muted(True)
    assert isinstance(again, Answer) and not again.changed
    unmuted = answer(model.set_muted(False))
    assert unmuted["data"]["muted"] is False
    assert_valid(as_event(outcome))


def test_get_states_lists_every_selectable_state(model: AgentModel) -> None:
    outcome = model.get_states()
    assert outcome.kind == GET_STATES
    assert outcome.message == {
        "states": [
            {"label": "Available", "code": "Available", "type": "routable"},
            {"label": "Break", "code": "Break", "type": "not_routable"},
            {"label": "Lunch", "code": "Lunch", "type": "not_routable"},
            {"label": "Training", "code": "Training", "type": "not_routable"},
            {"label": "Offline", "code": "Offline", "type": "offline"},
        ]
    }
    assert_valid(as_event(outcome))


def test_state_sync_reports_everything(model: AgentModel) -> None:
    model.set_not_ready("Training")
    outcome = model.state_sync()
    assert outcome.kind == STATE_SYNC
    message = outcome.message
    assert message["loginState"] == "LoggedIn"
    assert message["agentInfo"] == model.agent_data()
    assert message["agentState"] == model.agent_state() == message["rules"]["ResponseActual"]
    assert message["rules"] == model.rules()
    assert_valid(as_event(outcome))


@pytest.mark.parametrize("kind", V1_REQUESTS, ids=str)
def test_handle_dispatches_every_v1_request(kind: Kind, clock: FakeClock) -> None:
    model = AgentModel("agent1", clock=clock)
    model.start_call()  # so that Mute and Unmute succeed too
    data = {"ReasonCodeId": "Break"} if kind == SET_NOT_READY else None
    outcome = model.handle(kind, data)
    assert isinstance(outcome, Answer), outcome
    expected = kind if kind in (GET_STATES, STATE_SYNC) else SET_AGENT_STATE
    assert outcome.kind == expected
    assert_valid(as_event(outcome))


def test_handle_reads_reason_code(model: AgentModel) -> None:
    assert answer(model.handle(SET_NOT_READY, {"ReasonCodeId": "Lunch"}))["event"] == "Lunch"
    assert answer(model.handle(SET_READY, {"ReasonCodeId": "Available"}))["event"] == "Available"
    assert answer(model.handle(LOGOUT, {}))["event"] == "Offline"


def test_handle_refuses_kinds_it_does_not_know(model: AgentModel) -> None:
    refused = failure(model.handle(Kind("Amazon", "Agent", "Dance"), None))
    assert refused.error_type is ErrorType.UNKNOWN_MESSAGE


# ----- calls ------------------------------------------------------------------------------


def test_a_call_shows_busy_and_queues_changes(model: AgentModel, clock: FakeClock) -> None:
    clock.advance(10)
    assert model.start_call()
    busy = model.set_agent_state()
    assert busy["event"] == "Busy"
    assert busy["rules"]["ResponseActual"]["type"] == "system"
    assert busy["rules"]["ButtonStates"]["items"]["make_call"] == "Disable"
    assert model.state == BUSY

    clock.advance(10)
    queued = model.set_not_ready("Lunch")
    assert isinstance(queued, Answer) and not queued.changed
    # Still Busy: Connect applies it after the call; the queued state is shown as nextState.
    assert queued.message["data"].pop("nextState") == {"name": "Lunch", "type": "not_routable"}
    assert queued.message == busy
    assert model.next_state == AgentState("Lunch", StateType.NOT_ROUTABLE)
    model.set_not_ready("Break")  # a later request replaces the queued one
    assert model.next_state is not None and model.next_state.name == "Break"
    model.set_muted(True)

    clock.advance(30)
    assert model.end_call()
    after = model.set_agent_state()
    assert after["event"] == "Break"
    assert after["data"]["muted"] is False  # mute ends with the call
    assert after["data"]["stateChangeTime"] == iso_ms(clock.now)
    assert model.next_state is None


def test_a_call_without_queued_change_returns_to_the_selected_state(model: AgentModel) -> None:
    model.start_call()
    model.end_call()
    assert model.state.name == "Available"


def test_logout_during_a_call_is_queued(model: AgentModel) -> None:
    model.start_call()
    answer(model.logout())
    assert model.state == BUSY
    model.end_call()
    assert model.state.type is StateType.OFFLINE


def test_calls_start_and_end_once(model: AgentModel) -> None:
    assert model.end_call() is False
    assert model.start_call() is True
    assert model.start_call() is False
    assert model.end_call() is True
    model.logout()
    assert model.start_call() is False  # nobody calls a logged-out agent


def test_button_states_follow_the_state(model: AgentModel) -> None:
    def items() -> dict[str, str]:
        message = model.set_agent_state()
        assert message["rules"]["ButtonStates"]["count"] == len(
            message["rules"]["ButtonStates"]["items"]
        )
        return dict(message["rules"]["ButtonStates"]["items"])

    assert items() == {
        "NotReady": "Enable",
        "Ready": "Disable",
        "make_call": "Enable",
        "mute": "Hide",
        "unmute": "Hide",
    }
    model.set_not_ready("Break")
    assert items() == {
        "NotReady": "Enable",
        "Ready": "Enable",
        "make_call": "Enable",
        "mute": "Hide",
        "unmute": "Hide",
    }
    model.start_call()
    assert items() == {
        "NotReady": "Enable",
        "Ready": "Enable",
        "make_call": "Disable",
        "mute": "Enable",
        "unmute": "Hide",
    }
    model.set_muted(True)
    assert items() == {
        "NotReady": "Enable",
        "Ready": "Enable",
        "make_call": "Disable",
        "mute": "Hide",
        "unmute": "Enable",
    }


# ----- configuration ----------------------------------------------------------------------


def test_states_from_config_accepts_objects_and_strings() -> None:
    value = {
        "states": [
            {"name": "Ready", "type": "routable"},
            "Meeting=not_routable",
            {"name": "Gone", "type": "offline"},
        ]
    }
    assert states_from_config(value) == (
        AgentState("Ready", StateType.ROUTABLE),
        AgentState("Meeting", StateType.NOT_ROUTABLE),
        AgentState("Gone", StateType.OFFLINE),
    )
    assert states_from_config(["A=routable"]) == (AgentState("A", StateType.ROUTABLE),)


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        ({"states": [], "extra": 1}, "one key 'states'"),
        ("Break", "a list of states"),
        ([{"name": "Break"}], "exactly 'name' and 'type'"),
        ([{"name": "Break", "type": "busy"}], "not one of routable"),
        ([{"name": "Busy", "type": "system"}], "set by Connect"),
        ([{"name": "", "type": "routable"}], "non-empty"),
        (["Break"], "NAME=TYPE"),
        ([3], "an object or 'NAME=TYPE'"),
    ],
)
def test_states_from_config_says_what_is_wrong(value: Any, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        states_from_config(value)


@pytest.mark.parametrize(
    ("states", "initial", "fault"),
    [
        (
            [AgentState("Break", StateType.NOT_ROUTABLE), AgentState("Off", StateType.OFFLINE)],
            None,
            "routable",
        ),
        ([AgentState("On", StateType.ROUTABLE)], None, "offline"),
        (
            [AgentState("On", StateType.ROUTABLE), AgentState("On", StateType.OFFLINE)],
            None,
            "unique: On",
        ),
        (list(DEFAULT_STATES), "Coffee", "initial state 'Coffee'"),
        ([*DEFAULT_STATES, BUSY], None, "not selectable"),
    ],
)
def test_model_refuses_unusable_states(
    states: list[AgentState], initial: str | None, fault: str
) -> None:
    with pytest.raises(ValueError, match=fault):
        AgentModel("agent1", states=states, initial_state=initial)


# ----- any sequence stays valid -------------------------------------------------------------

ACTIONS = st.lists(
    st.one_of(
        st.sampled_from(["Break", "Lunch", "Training", "Available", "Offline", "Coffee"]).map(
            lambda r: ("not_ready", r)
        ),
        st.sampled_from([None, "Available", "Break"]).map(lambda r: ("ready", r)),
        st.sampled_from(
            ["logout", "mute", "unmute", "start_call", "end_call", "fail_on", "fail_off", "tick"]
        ).map(lambda a: (a, None)),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(ACTIONS)
def test_any_sequence_produces_only_valid_envelopes(actions: list[tuple[str, str | None]]) -> None:
    clock = FakeClock()
    model = AgentModel("agent1", clock=clock)
    for action, argument in actions:
        outcome: Answer | Failure | None = None
        if action == "not_ready":
            outcome = model.set_not_ready(str(argument))
        elif action == "ready":
            outcome = model.set_ready(argument)
        elif action == "logout":
            outcome = model.logout()
        elif action in ("mute", "unmute"):
            outcome = model.set_muted(action == "mute")
        elif action == "start_call":
            model.start_call()
        elif action == "end_call":
            model.end_call()
        elif action in ("fail_on", "fail_off"):
            model.fail_updates = action == "fail_on"
        else:
            clock.advance(1.25)
        if isinstance(outcome, Answer):
            assert_valid(as_event(outcome))
        elif isinstance(outcome, Failure):
            kind = MUTE if action == "mute" else UNMUTE if action == "unmute" else SET_READY
            assert_valid(as_error(outcome, kind))
        assert_valid(protocol.event(SET_AGENT_STATE, model.set_agent_state()))
        assert_valid(as_event(model.state_sync()))
        assert model.muted is False or model.on_call
        assert model.on_call == (model.state == BUSY)
        assert model.next_state is None or model.on_call
