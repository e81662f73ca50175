/**
 * The call half of the provider: static/js/provider/calls.js (contact -> Call)
 * against the samples of shared/protocol/samples/calls/, and
 * static/js/provider/call-control.js (requests -> Streams contact API) through
 * the real client on a fake WebSocket; the test plays Connect and the hub.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { BridgeClient } from "../../static/js/lib/client.js";
import { SET_AGENT_STATE } from "../../static/js/lib/names.js";
import { callOf, droppedCall, readContact } from "../../static/js/provider/calls.js";
import { Provider } from "../../static/js/provider/provider.js";
import { FakeAgent, FakeContact, fakeContactData, fakeWebSockets, flush } from "./fakes.js";

const CHANGE = "Amazon/InboundCall/InboundCallStateChange"; // INBOUND_CALL_STATE_CHANGE
const SAMPLES = new URL("../../../shared/protocol/samples/calls/", import.meta.url);

function sample(name) {
  return JSON.parse(readFileSync(new URL(name, SAMPLES), "utf8"));
}

/** A Call with the parts a sample fixes by example (ids, times, queue ARN) left out. */
function shape(call) {
  const { id, since, queue, connections, ...rest } = call;
  return {
    ...rest,
    queue: queue && queue.name,
    connections: connections.map(({ connectionId, since: at, ...c }) => c),
  };
}

function view(data) {
  return readContact(new FakeContact(new FakeAgent(), data));
}

describe("contact -> Call, as the samples show it", () => {
  test("ringing inbound call: connecting, Answer and Reject, screen-pop variables", () => {
    const call = callOf(view(fakeContactData({ state: "connecting" })));
    assert.deepEqual(shape(call), shape(sample("01-ringing.event.json").message.call));
    assert.deepEqual(Object.keys(call.CallVariables), ["ANI", "DNIS", "CustomerId", "Reason"]);
    assert.equal(call.since, "2026-11-28T10:00:00.120Z");
    assert.equal(call.queue.arn.endsWith("/queue/5d1c"), true);
  });

  test("connected, hold, after-call work", () => {
    const connected = fakeContactData({ state: "connected" });
    assert.deepEqual(shape(callOf(view(connected))), shape(sample("03-connected.event.json").message.call));

    const held = fakeContactData({ state: "connected" });
    held.connections[1].state = { type: "hold", timestamp: new Date("2026-11-28T10:01:10.004Z") };
    const hold = callOf(view(held));
    assert.deepEqual(shape(hold), shape(sample("05-hold.event.json").message.call));
    assert.equal(hold.since, "2026-11-28T10:01:10.004Z", "since = when the customer was put on hold");

    const acw = fakeContactData({ state: "ended", agentState: "disconnected", customerState: "disconnected" });
    assert.deepEqual(shape(callOf(view(acw))), shape(sample("09-acw.event.json").message.call));
  });

  test("an accepted softphone call still setting up is connecting, no longer answerable", () => {
    const call = callOf(view(fakeContactData({ state: "connecting" })), { accepted: true });
    assert.equal(call.event, "connecting");
    assert.equal(call.ButtonStates.items.answer, "Hide");
    assert.equal(call.ButtonStates.items.disconnect, "Enable");
  });

  test("Dropped: the last call, every connection disconnected, no buttons", () => {
    const last = callOf(view(fakeContactData({ state: "ended", agentState: "disconnected",
      customerState: "disconnected" })));
    const dropped = droppedCall(last, "2026-11-28T10:03:20.000Z");
    assert.deepEqual(shape(dropped), shape(sample("11-dropped.event.json").message.call));
    assert.equal(dropped.since, "2026-11-28T10:03:20.000Z");
  });

  test("outbound: ANI is the caller id, DNIS the customer; missed and rejected spelled as the API does", () => {
    const out = callOf(view(fakeContactData({ direction: "outbound", phoneNumber: "+16013261548",
      customerState: "connecting", attributes: {} })));
    assert.equal(out.CallType, "outbound");
    assert.deepEqual(out.CallVariables, { ANI: "+18005550199", DNIS: "+16013261548" });
    assert.equal(out.ButtonStates.items.answer, "Hide", "nothing to answer on an own dial");
    assert.equal(callOf(view(fakeContactData({ state: "missed" }))).event, "missed");
    assert.equal(callOf(view(fakeContactData({ state: "rejected" }))).event, "Rejected");
    assert.equal(callOf(view(fakeContactData({ initiationMethod: "transfer" }))).CallType, "transfer");
  });

  test("a consult: the customer on hold, the third party connected: Swap and Conference", () => {
    const data = fakeContactData({ state: "connected", customerState: "hold" });
    data.connections.push({ connectionId: "9b1f3a52-t", type: "outbound", initial: false,
      endpoint: { type: "phone_number", phoneNumber: "sip:+18005550111@example" },
      state: { type: "connected", timestamp: new Date() } });
    const call = callOf(view(data));
    assert.equal(call.event, "hold");
    assert.equal(call.connections[2].phoneNumber, "+18005550111", "SIP form stripped");
    const { items } = call.ButtonStates;
    assert.deepEqual([items.swap, items.conference, items.consult, items.transfer, items.resume],
      ["Enable", "Enable", "Hide", "Hide", "Enable"]);
  });

  test("attribute values become strings; ANI and DNIS are not overwritten", () => {
    const call = callOf(view(fakeContactData({ attributes: {
      ANI: { name: "ANI", value: "spoofed" }, Score: { name: "Score", value: 7 }, Empty: { name: "Empty", value: null },
    } })));
    assert.deepEqual(call.CallVariables, { ANI: "+15555550123", DNIS: "+18005550199", Score: "7", Empty: "" });
  });
});

let nextId = 0;

/** A started provider for `agent`, connected to a fake hub (the returned socket). */
async function running(t, agent = new FakeAgent(), { callTimeoutMs = 8000 } = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.parse("2026-11-28T10:05:00.000Z") });
  const fake = fakeWebSockets();
  const client = new BridgeClient({ url: "ws://hub.test/ws", role: "provider", agent: agent.username,
    source: "ccp-provider", WebSocket: fake.WebSocket });
  const provider = new Provider({ agent, client, callTimeoutMs, onContact: agent.contactHook }).start();
  client.start();
  await flush();
  const socket = fake.last();
  socket.welcome({ role: "provider" });
  t.after(() => {
    provider.stop();
    client.close();
  });
  const ask = (subtopic, data) => {
    const id = `req-${++nextId}`;
    socket.deliver({ channel: "Amazon", topic: "InboundCall", subtopic, source: "crm", id,
      ...(data === undefined ? {} : { data }) });
    return id;
  };
  const answers = (id) => socket.sent.filter((f) => f.replyTo === id);
  const events = () => socket.sentOf(CHANGE).map((f) => f.message.call);
  return { agent, provider, socket, ask, answers, events, tick: (ms) => t.mock.timers.tick(ms) };
}

function onlyCall(frames) {
  assert.equal(frames.length, 1, JSON.stringify(frames));
  assert.equal(`${frames[0].channel}/${frames[0].topic}/${frames[0].subtopic}`, CHANGE);
  return frames[0].message.call;
}

function onlyError(frames) {
  assert.equal(frames.length, 1, JSON.stringify(frames));
  assert.equal(frames[0].subtopic, "ApiError");
  return frames[0].data;
}

describe("call events", () => {
  test("every change of a contact is published once; a contact that leaves is Dropped", async (t) => {
    const { agent, events } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connecting" }));
    assert.deepEqual(events().map((c) => c.event), ["connecting"]);
    agent.snapshot();
    agent.snapshot();
    assert.equal(events().length, 1, "an unchanged snapshot publishes nothing");
    contact.update((d) => { d.state.type = "connected"; d.connections[0].state.type = "connected"; });
    contact.update((d) => { d.connections[1].state = { type: "hold", timestamp: new Date() }; });
    agent.removeContact(contact.getContactId());
    assert.deepEqual(events().map((c) => c.event), ["connecting", "connected", "hold", "Dropped"]);
    assert.equal(events().at(-1).since, "2026-11-28T10:05:00.000Z");
  });

  test("on joining: SetAgentState first, then one event per live contact", async (t) => {
    const agent = new FakeAgent();
    agent.contacts.push(new FakeContact(agent, fakeContactData({ id: "one", state: "connected" })));
    agent.contacts.push(new FakeContact(agent, fakeContactData({ id: "two", state: "ended" })));
    const { socket } = await running(t, agent);
    const kinds = socket.sent.filter((f) => f.channel === "Amazon").map((f) => `${f.subtopic}:${f.message.call?.id ?? ""}`);
    assert.deepEqual(kinds, ["SetAgentState:", "InboundCallStateChange:one", "InboundCallStateChange:two"]);
  });

  test("a queued next state is in SetAgentState.data.nextState", async (t) => {
    const { agent, socket } = await running(t, new FakeAgent({ onCall: true }));
    agent.snapshot(agent.stateNamed("Lunch"));
    const last = socket.sentOf(SET_AGENT_STATE).at(-1);
    assert.deepEqual(last.message.data.nextState, { name: "Lunch", type: "not_routable" });
  });

  test("StateSync lists the live calls; GetQuickConnects the endpoints", async (t) => {
    const { agent, ask, answers } = await running(t);
    const [empty] = answers(ask("StateSync"));
    assert.deepEqual(empty.message, { calls: [] });
    agent.addContact(fakeContactData({ state: "connected" }));
    const [sync] = answers(ask("StateSync"));
    assert.deepEqual(sync.message.calls.map((c) => c.event), ["connected"]);
    const [quick] = answers(ask("GetQuickConnects"));
    assert.equal(quick.subtopic, "GetQuickConnects");
    assert.deepEqual(quick.message.endpoints, [{ name: "Front desk", type: "phone_number",
      endpointARN: agent.quickConnects[0].endpointARN, phoneNumber: "+18005550111" }]);
  });
});

describe("call requests", () => {
  test("Answer: contact.accept, answered by the snapshot that shows it connected", async (t) => {
    const { agent, ask, answers } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connecting" }));
    const id = ask("Answer");
    assert.deepEqual(agent.ctiCalls, [{ method: "acceptContact", contactId: "9b1f3a52" }]);
    assert.deepEqual(answers(id), [], "success alone is not the answer");
    contact.update((d) => { d.state.type = "connected"; d.connections[0].state.type = "connected"; });
    assert.equal(onlyCall(answers(id)).event, "connected");
  });

  test("Answer on a softphone call still setting up: onAccepted answers it with connecting", async (t) => {
    const { agent, ask, answers } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connecting" }));
    const id = ask("Answer");
    contact.accepted();
    const call = onlyCall(answers(id));
    assert.equal(call.event, "connecting");
    assert.equal(call.ButtonStates.items.answer, "Hide");
  });

  test("Hold and Resume take the connection id, or the customer's when data is left out", async (t) => {
    const { agent, ask, answers } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connected" }));
    const hold = ask("Hold", "9b1f3a52-c");
    contact.update((d) => { d.connections[1].state = { type: "hold", timestamp: new Date() }; });
    assert.equal(onlyCall(answers(hold)).event, "hold");
    const resume = ask("Resume");
    contact.update((d) => { d.connections[1].state = { type: "connected", timestamp: new Date() }; });
    assert.equal(onlyCall(answers(resume)).event, "connected");
    assert.deepEqual(agent.ctiCalls.map((c) => [c.method, c.connectionId]),
      [["holdConnection", "9b1f3a52-c"], ["resumeConnection", "9b1f3a52-c"]]);
  });

  test("SendDTMF: sendDigits on the customer connection, answered with the current event", async (t) => {
    const { agent, ask, answers } = await running(t);
    agent.addContact(fakeContactData({ state: "connected" }));
    const id = ask("SendDTMF", "1234#");
    assert.deepEqual(agent.ctiCalls, [{ method: "sendDigits", contactId: "9b1f3a52", connectionId: "9b1f3a52-c",
      digits: "1234#" }]);
    assert.equal(onlyCall(answers(id)).event, "connected");
  });

  test("Disconnect ends the agent's part: answered at ACW; ClearContact at Dropped, then the state", async (t) => {
    const { agent, socket, ask, answers } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connected" }));
    const hangUp = ask("Disconnect");
    assert.equal(agent.ctiCalls[0].connectionId, "9b1f3a52-a");
    contact.update((d) => {
      d.state.type = "ended";
      for (const c of d.connections) c.state.type = "disconnected";
    });
    assert.equal(onlyCall(answers(hangUp)).event, "ACW");
    const clear = ask("ClearContact");
    assert.equal(agent.ctiCalls[1].method, "clearContact");
    agent.removeContact("9b1f3a52");
    assert.equal(onlyCall(answers(clear)).event, "Dropped");
    const dropped = socket.sent.findIndex((f) => f.replyTo === clear);
    assert.ok(socket.sent.slice(dropped + 1).every((f) => f.subtopic !== "InboundCallStateChange"));
  });

  test("SetMakeCall: agent.connect with the number; the new contact's first event answers", async (t) => {
    const { agent, ask, answers } = await running(t);
    const id = ask("SetMakeCall", "+16013261548");
    assert.deepEqual(agent.ctiCalls[0].endpoint, { type: "phone_number", phoneNumber: "+16013261548", name: null });
    agent.addContact(fakeContactData({ id: "out-1", direction: "outbound", phoneNumber: "+16013261548",
      customerState: "connecting" }));
    const call = onlyCall(answers(id));
    assert.deepEqual([call.id, call.event, call.CallType], ["out-1", "connecting", "outbound"]);
  });

  test("Transfer: addConnection, then the agent's own connection leaves; answered at ACW", async (t) => {
    const { agent, ask, answers } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connected" }));
    const id = ask("Transfer", "+18005550111");
    assert.equal(agent.ctiCalls[0].method, "createAdditionalConnection");
    contact.update((d) => d.connections.push({ connectionId: "9b1f3a52-t", type: "outbound", initial: false,
      endpoint: { type: "phone_number", phoneNumber: "+18005550111" }, state: { type: "connecting", timestamp: new Date() } }));
    assert.deepEqual(agent.ctiCalls.map((c) => [c.method, c.connectionId]),
      [["createAdditionalConnection", undefined], ["destroyConnection", "9b1f3a52-a"]]);
    assert.deepEqual(answers(id), []);
    contact.update((d) => { d.state.type = "ended"; });
    assert.equal(onlyCall(answers(id)).event, "ACW");
  });

  test("Reject: contact.reject, answered by Rejected; the contact then leaves as Dropped", async (t) => {
    const { agent, ask, answers, events } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connecting" }));
    const id = ask("Reject", "9b1f3a52");
    assert.equal(agent.ctiCalls[0].method, "rejectContact");
    contact.update((d) => { d.state.type = "rejected"; });
    const call = onlyCall(answers(id));
    assert.equal(call.event, "Rejected");
    assert.ok(Object.values(call.ButtonStates.items).every((v) => v === "Hide"));
    agent.removeContact("9b1f3a52");
    assert.deepEqual(events().map((c) => c.event), ["connecting", "Rejected", "Dropped"]);
  });

  test("a caller who hangs up while it rings: missed, then Dropped; nothing left to answer", async (t) => {
    const { agent, ask, answers, events } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connecting" }));
    contact.update((d) => { d.state.type = "missed"; });
    assert.equal(onlyError(answers(ask("Answer"))).errorType, "CALL_NOT_FOUND", "a missed call is not live");
    agent.removeContact("9b1f3a52");
    assert.deepEqual(events().map((c) => c.event), ["connecting", "missed", "Dropped"]);
  });

  test("Consult adds a party; Swap and Conference answered by the parties' new statuses", async (t) => {
    const { agent, ask, answers } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connected" }));
    const consult = ask("Consult", { endpointARN: agent.quickConnects[0].endpointARN });
    assert.equal(agent.ctiCalls[0].method, "createAdditionalConnection");
    assert.equal(agent.ctiCalls[0].endpoint.endpointARN, agent.quickConnects[0].endpointARN);
    contact.update((d) => {
      d.connections[1].state = { type: "hold", timestamp: new Date() };
      d.connections.push({ connectionId: "9b1f3a52-t", type: "outbound", initial: false,
        endpoint: { type: "phone_number", phoneNumber: "+18005550111" }, state: { type: "connected", timestamp: new Date() } });
    });
    const consulting = onlyCall(answers(consult));
    assert.equal(consulting.connections.length, 3);
    assert.equal(consulting.ButtonStates.items.swap, "Enable");

    const swap = ask("Swap");
    assert.deepEqual(answers(swap), []);
    contact.update((d) => {
      d.connections[1].state = { type: "connected", timestamp: new Date() };
      d.connections[2].state = { type: "hold", timestamp: new Date() };
    });
    assert.equal(onlyCall(answers(swap)).event, "connected");

    const conference = ask("Conference");
    contact.update((d) => { d.connections[2].state = { type: "connected", timestamp: new Date() }; });
    const all = onlyCall(answers(conference));
    assert.ok(all.connections.every((c) => c.status === "connected"));
    assert.deepEqual(agent.ctiCalls.map((c) => c.method),
      ["createAdditionalConnection", "toggleActiveConnections", "conferenceConnections"]);
  });

  test("CALL_NOT_FOUND: no data and no live contact, or several; an unknown id", async (t) => {
    const { agent, ask, answers } = await running(t);
    let error = onlyError(answers(ask("Answer")));
    assert.deepEqual([error.errorType, error.msg], ["CALL_NOT_FOUND", "No such call."]);
    assert.match(error.errorMessage, /no live contact/);
    agent.addContact(fakeContactData({ id: "one", state: "connected" }));
    agent.addContact(fakeContactData({ id: "two", state: "connecting" }));
    assert.match(onlyError(answers(ask("Hold"))).errorMessage, /2 live contacts/);
    assert.equal(onlyError(answers(ask("Hold", "nope-c"))).errorType, "CALL_NOT_FOUND");
    assert.equal(onlyError(answers(ask("Reject", "nope"))).errorType, "CALL_NOT_FOUND");
    assert.deepEqual(agent.ctiCalls, [], "Connect is not asked");
  });

  test("Connect refuses: the kind's error with Connect's text and calls.md's sentence", async (t) => {
    const { agent, ask, answers } = await running(t);
    agent.addContact(fakeContactData({ state: "connected" }));
    agent.ctiBehaviour.holdConnection = "fail";
    const error = onlyError(answers(ask("Hold")));
    assert.equal(error.errorType, "HOLD_CALL_FAILED");
    assert.equal(error.msg, "Call hold failed.");
    assert.equal(error.errorMessage, "holdConnection failed: InvalidStateException: Cannot holdConnection now.");
    assert.deepEqual(error.request, { channel: "Amazon", topic: "InboundCall", subtopic: "Hold" });
  });

  test("a Streams callback that never comes: the kind's error after the provider's timeout", async (t) => {
    const { agent, ask, answers, tick } = await running(t, new FakeAgent(), { callTimeoutMs: 700 });
    agent.addContact(fakeContactData({ state: "connected" }));
    agent.ctiBehaviour.sendDigits = "never";
    const id = ask("SendDTMF", "5");
    tick(699);
    assert.deepEqual(answers(id), []);
    tick(1);
    const error = onlyError(answers(id));
    assert.equal(error.errorType, "SEND_DTMF_FAILED");
    assert.match(error.errorMessage, /did not answer sendDigits within 700 ms/);
  });

  test("the customer hangs up while a Hold is in flight: HOLD_CALL_FAILED, not a wrong answer", async (t) => {
    const { agent, ask, answers } = await running(t);
    const contact = agent.addContact(fakeContactData({ state: "connected" }));
    const id = ask("Hold");
    contact.update((d) => {
      d.state.type = "ended";
      for (const c of d.connections) c.state.type = "disconnected";
    });
    const error = onlyError(answers(id));
    assert.equal(error.errorType, "HOLD_CALL_FAILED");
    assert.match(error.errorMessage, /ended first/);
  });
});
