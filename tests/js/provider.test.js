/**
 * static/js/provider/provider.js against a fake `connect.Agent`, through the
 * real client on a fake WebSocket: the test plays both Connect and the hub.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { BridgeClient } from "../../static/js/lib/client.js";
import { SET_AGENT_STATE } from "../../static/js/lib/names.js";
import { Provider } from "../../static/js/provider/provider.js";
import { FakeAgent, fakeWebSockets, flush } from "./fakes.js";

let nextId = 0;

/** A started provider for `agent`, connected to a fake hub (the returned socket). */
async function running(t, agent = new FakeAgent(), { callTimeoutMs = 8000 } = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.parse("2024-05-01T09:10:00.000Z") });
  const fake = fakeWebSockets();
  const client = new BridgeClient({ url: "ws://hub.test/ws", role: "provider", agent: agent.username,
    source: "ccp-provider", WebSocket: fake.WebSocket });
  const provider = new Provider({ agent, client, callTimeoutMs }).start();
  client.start();
  await flush();
  const socket = fake.last();
  socket.welcome({ role: "provider" });
  t.after(() => {
    provider.stop();
    client.close();
  });
  /** Send a request as the hub routes it; returns its id. */
  const ask = (subtopic, data) => {
    const id = `req-${++nextId}`;
    socket.deliver({ channel: "Amazon", topic: "Agent", subtopic, source: "widget", id,
      ...(data === undefined ? {} : { data }) });
    return id;
  };
  /** The frames sent in answer to request `id`. */
  const answers = (id) => socket.sent.filter((f) => f.replyTo === id);
  return { agent, client, provider, socket, ask, answers, tick: (ms) => t.mock.timers.tick(ms) };
}

function onlyError(frames) {
  assert.equal(frames.length, 1, JSON.stringify(frames));
  const [frame] = frames;
  assert.equal(frame.topic, "Error");
  assert.equal(frame.subtopic, "ApiError");
  return frame.data;
}

function onlyEvent(frames) {
  assert.equal(frames.length, 1, JSON.stringify(frames));
  const [frame] = frames;
  assert.equal(`${frame.channel}/${frame.topic}/${frame.subtopic}`, SET_AGENT_STATE);
  return frame.message;
}

describe("agent state", () => {
  test("on (re)connection the current state is published at once", async (t) => {
    const { socket } = await running(t);
    const [first] = socket.sentOf(SET_AGENT_STATE);
    assert.equal(first.message.event, "Available");
    assert.equal(first.message.data.state, "Ready");
    assert.equal(first.message.data.loginName, "agent1");
    assert.equal(first.message.data.stateChangeTime, "2024-05-01T09:00:00.000Z");
    assert.equal(first.replyTo, undefined);
  });

  test("SetNotReady: setState with the agent's own state object, answered once a snapshot shows it",
    async (t) => {
      const { agent, ask, answers } = await running(t);
      agent.setStateBehaviour = "accept-only";
      const id = ask("SetNotReady", { ReasonCodeId: "Lunch" });
      assert.equal(agent.setStateCalls.length, 1);
      const [call] = agent.setStateCalls;
      assert.equal(call.state, agent.getAgentStates().find((s) => s.name === "Lunch"), "the same object");
      assert.deepEqual(call.options, { enqueueNextState: true });
      assert.deepEqual(answers(id), [], "success alone is not the answer");

      agent.snapshot(call.state);
      const message = onlyEvent(answers(id));
      assert.equal(message.event, "Lunch");
      assert.deepEqual(message.data.reasonCode, { id: "Lunch" });
      assert.equal(message.data.state, "Not_Ready");
      assert.equal(message.rules.ResponseActual.name, "Lunch");
    });

  test("a state may be named by its ARN too", async (t) => {
    const { agent, ask, answers } = await running(t);
    const id = ask("SetNotReady", { ReasonCodeId: agent.stateNamed("Break").agentStateARN });
    assert.equal(onlyEvent(answers(id)).event, "Break");
  });

  test("SetReady picks the routable state, Logout the offline one", async (t) => {
    const { agent, ask, answers } = await running(t, new FakeAgent({ state: "Break" }));
    assert.equal(onlyEvent(answers(ask("SetReady"))).data.state, "Ready");
    assert.equal(onlyEvent(answers(ask("Logout"))).data.state, "Logout");
    assert.deepEqual(agent.setStateCalls.map((c) => c.state.name), ["Available", "Offline"]);
  });

  test("an unknown reason is AGENT_STATE_NOT_FOUND, and Connect is not called", async (t) => {
    const { agent, ask, answers } = await running(t);
    const id = ask("SetNotReady", { ReasonCodeId: "Coffee" });
    const error = onlyError(answers(id));
    assert.equal(error.errorType, "AGENT_STATE_NOT_FOUND");
    assert.equal(error.msg, "Specified Agent State not found.");
    assert.match(error.errorMessage, /'Coffee' among: Break, Lunch/);
    assert.deepEqual(error.request, { channel: "Amazon", topic: "Agent", subtopic: "SetNotReady" });
    assert.equal(agent.setStateCalls.length, 0);
  });

  test("a failing setState is UPDATE_AGENT_STATE_FAILED with Connect's message", async (t) => {
    const { agent, ask, answers } = await running(t);
    agent.setStateBehaviour = "fail";
    const error = onlyError(answers(ask("SetNotReady", { ReasonCodeId: "Break" })));
    assert.equal(error.errorType, "UPDATE_AGENT_STATE_FAILED");
    assert.match(error.msg, /Invalid agent or contact state/);
    assert.match(error.errorMessage, /^putAgentState 'Break' failed: InvalidStateException: /);
  });

  test("a setState that never calls back times out as UPDATE_AGENT_STATE_FAILED", async (t) => {
    const { agent, ask, answers, tick } = await running(t, new FakeAgent(), { callTimeoutMs: 600 });
    agent.setStateBehaviour = "never";
    const id = ask("Logout");
    tick(599);
    assert.deepEqual(answers(id), []);
    tick(1);
    const error = onlyError(answers(id));
    assert.equal(error.errorType, "UPDATE_AGENT_STATE_FAILED");
    assert.match(error.msg, /did not answer in time/);
  });

  test("on a call the change is queued as the next state, and that answers the request", async (t) => {
    const { agent, ask, answers } = await running(t, new FakeAgent({ onCall: true }));
    const id = ask("SetNotReady", { ReasonCodeId: "Lunch" });
    const message = onlyEvent(answers(id));
    assert.equal(message.event, "Busy");
    assert.equal(agent.getNextState().name, "Lunch");
  });

  test("the same snapshot again publishes nothing; a change made in the CCP publishes once", async (t) => {
    const { agent, socket } = await running(t);
    const count = () => socket.sentOf(SET_AGENT_STATE).length;
    const before = count();
    agent.snapshot();
    agent.snapshot();
    assert.equal(count(), before);
    agent.snapshot(agent.stateNamed("Break"));
    assert.equal(count(), before + 1);
    assert.equal(socket.sent.at(-1).message.event, "Break");
    assert.equal(socket.sent.at(-1).replyTo, undefined);
  });
});

describe("mute", () => {
  test("Mute and Unmute on a softphone call, answered when onMuteToggle reports it", async (t) => {
    const { agent, ask, answers } = await running(t, new FakeAgent({ onCall: true }));
    const mute = ask("Mute");
    assert.deepEqual(agent.muteCalls, [true]);
    assert.deepEqual(answers(mute), []);
    agent.toggleMute(true);
    const muted = onlyEvent(answers(mute));
    assert.equal(muted.data.muted, true);
    assert.equal(muted.rules.ButtonStates.items.unmute, "Enable");
    assert.equal(muted.rules.ButtonStates.items.mute, "Hide");

    const unmute = ask("Unmute");
    assert.deepEqual(agent.muteCalls, [true, false]);
    agent.toggleMute(false);
    assert.equal(onlyEvent(answers(unmute)).data.muted, false);
  });

  test("already muted: answered at once, no call", async (t) => {
    const { agent, ask, answers } = await running(t, new FakeAgent({ onCall: true }));
    agent.toggleMute(true);
    assert.equal(onlyEvent(answers(ask("Mute"))).data.muted, true);
    assert.deepEqual(agent.muteCalls, []);
  });

  test("off a call: MUTE_FAILED", async (t) => {
    const { agent, ask, answers } = await running(t);
    for (const subtopic of ["Mute", "Unmute"]) {
      const error = onlyError(answers(ask(subtopic)));
      assert.equal(error.errorType, "MUTE_FAILED");
      assert.match(error.msg, /no active softphone call/);
    }
    assert.deepEqual(agent.muteCalls, []);
  });

  test("a softphone that never confirms: MUTE_FAILED after the call timeout", async (t) => {
    const { ask, answers, tick } = await running(t, new FakeAgent({ onCall: true }), { callTimeoutMs: 500 });
    const id = ask("Mute");
    tick(500);
    assert.equal(onlyError(answers(id)).errorType, "MUTE_FAILED");
  });
});

describe("other requests", () => {
  test("GetStates lists the selectable states; StateSync the full picture", async (t) => {
    const { ask, answers } = await running(t);
    const [states] = answers(ask("GetStates"));
    assert.equal(states.subtopic, "GetStates");
    assert.deepEqual(states.message.states.map((s) => s.code), ["Available", "Break", "Lunch", "Offline"]);
    const [sync] = answers(ask("StateSync"));
    assert.equal(sync.message.loginState, "LoggedIn");
    assert.equal(sync.message.agentState.name, "Available");
  });

  test("a kind the provider does not carry out is UNKNOWN_MESSAGE", async (t) => {
    const { ask, answers } = await running(t);
    assert.equal(onlyError(answers(ask("Dance"))).errorType, "UNKNOWN_MESSAGE");
  });

  test("every frame sent is recorded for the page", async (t) => {
    const { provider, ask } = await running(t);
    const seen = [];
    provider.addEventListener("sent", (event) => seen.push(event.detail));
    ask("SetNotReady", { ReasonCodeId: "Coffee" });
    assert.equal(seen.length, 1);
    assert.equal(seen[0].errorType, "AGENT_STATE_NOT_FOUND");
    assert.equal(seen[0].sent, true);
    assert.equal(provider.sent.at(-1).errorType, "AGENT_STATE_NOT_FOUND");
  });
});
