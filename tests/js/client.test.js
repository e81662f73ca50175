/**
 * static/js/lib/client.js against a fake WebSocket: the test plays the hub.
 * Timers are mocked, so timeouts and backoff delays are exact.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  BridgeClient, BridgeError, ConnectionState, DEFAULTS, backoffDelay,
} from "../../static/js/lib/client.js";
import {
  CloseCode, ErrorType, GET_STATES, HELLO, PROVIDER_STATUS, REPLACED, SET_AGENT_STATE, SET_NOT_READY,
} from "../../static/js/lib/names.js";
import { fakeWebSockets, flush } from "./fakes.js";

const URL = "ws://hub.test/ws";

const mocked = new WeakSet();

/** A client on fake sockets, its sockets, and every state change it reported. */
function setup(t, options = {}) {
  if (!mocked.has(t)) t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  mocked.add(t);
  const fake = fakeWebSockets();
  const bus = new BridgeClient({ url: URL, agent: "agent1", source: "test", WebSocket: fake.WebSocket,
    random: () => 0.5, ...options });
  const states = [];
  bus.addStateListener((state, detail) => states.push({ state, ...detail }));
  t.after(() => bus.close());
  return { bus, fake, states, tick: (ms) => t.mock.timers.tick(ms) };
}

/** Start and open: Hello answered with Welcome. */
async function opened(t, options) {
  const env = setup(t, options);
  env.bus.start();
  await flush();
  env.fake.last().welcome();
  assert.equal(env.bus.state, ConnectionState.OPEN);
  return env;
}

function stateEvent(event, extra = {}) {
  return { channel: "Amazon", topic: "Agent", subtopic: "SetAgentState",
    message: { event, data: { state: "Not_Ready" } }, ...extra };
}

function errorFrame(errorType, extra = {}) {
  return { channel: "Amazon", topic: "Error", subtopic: "ApiError",
    data: { errorType, errorMessage: "why", msg: "A sentence.",
      request: { channel: "Amazon", topic: "Agent", subtopic: "SetNotReady" } }, ...extra };
}

describe("connecting", () => {
  test("starts idle, says Hello first, and is open at Welcome", async (t) => {
    const { bus, fake, states } = setup(t);
    assert.equal(bus.state, ConnectionState.IDLE);
    assert.equal(bus.state, "idle");
    const ready = bus.ready();
    bus.start();
    await flush();
    assert.equal(bus.state, ConnectionState.CONNECTING);
    const socket = fake.last();
    assert.equal(socket.url, URL);
    socket.accept();
    assert.equal(socket.sent.length, 1);
    const [hello] = socket.sent;
    assert.equal(`${hello.channel}/${hello.topic}/${hello.subtopic}`, HELLO);
    assert.deepEqual(hello.data, { role: "app", agent: "agent1" });
    assert.equal(hello.source, "test");
    assert.equal(typeof hello.id, "string");

    socket.welcome({ providerConnected: false });
    const welcome = await ready;
    assert.equal(welcome.agent, "agent1");
    assert.equal(bus.agent, "agent1");
    assert.equal(bus.connectionId, "c0");
    assert.equal(bus.providerConnected, false);
    assert.equal(bus.connections, 1);
    assert.deepEqual(states.map((s) => s.state), ["connecting", "open"]);
    assert.equal(states[1].welcome, welcome);
    assert.equal(bus.last("Bridge/Session/Welcome"), null, "Welcome is not an event last() keeps");
  });

  test("a token goes in Hello; a token function is called before every connection", async (t) => {
    let calls = 0;
    const { bus, fake } = setup(t, { agent: undefined, token: async () => `tok${++calls}` });
    bus.start();
    await flush();
    fake.last().accept();
    assert.deepEqual(fake.last().sent[0].data, { role: "app", token: "tok1" });
  });

  test("needs exactly one of token and agent, and a sensible source", () => {
    const fake = fakeWebSockets();
    assert.throws(() => new BridgeClient({ url: URL, WebSocket: fake.WebSocket }), TypeError);
    assert.throws(() => new BridgeClient({ url: URL, agent: "a", token: "t", WebSocket: fake.WebSocket }),
      TypeError);
    assert.throws(() => new BridgeClient({ url: URL, agent: "a", source: "", WebSocket: fake.WebSocket }),
      TypeError);
  });

  test("starts once", async (t) => {
    const { bus } = await opened(t);
    assert.throws(() => bus.start(), /starts once/);
  });

  test("no Welcome within connectTimeout: the attempt is given up and retried", async (t) => {
    const { bus, fake, tick } = setup(t, { connectTimeout: 1000 });
    const retries = [];
    bus.addEventListener("retry", (e) => retries.push(e.detail));
    bus.start();
    await flush();
    fake.last().accept();
    tick(1000);
    assert.deepEqual(fake.sockets[0].closedWith, { code: CloseCode.NORMAL, reason: "no Welcome" });
    assert.equal(bus.state, ConnectionState.CONNECTING, "never open yet: still connecting");
    assert.equal(retries.length, 1);
    tick(retries[0].retryInMs);
    await flush();
    assert.equal(fake.sockets.length, 2);
  });
});

describe("requests", () => {
  test("the answer is the event whose replyTo is the request's id", async (t) => {
    const { bus, fake } = await opened(t);
    const socket = fake.last();
    const answer = bus.request(SET_NOT_READY, { ReasonCodeId: "Lunch" });
    const [sent] = socket.sentOf(SET_NOT_READY);
    assert.deepEqual(sent.data, { ReasonCodeId: "Lunch" });
    assert.equal(sent.source, "test");
    assert.match(sent.id, /^[0-9a-f]{32}$/);
    socket.deliver(stateEvent("Break", { replyTo: "someone-else" }));
    socket.deliver(stateEvent("Lunch", { replyTo: sent.id }));
    const envelope = await answer;
    assert.equal(envelope.message.event, "Lunch");
    assert.equal(bus.last(SET_AGENT_STATE), envelope);
  });

  test("an error frame rejects with a BridgeError carrying its errorType", async (t) => {
    const { bus, fake } = await opened(t);
    const answer = bus.request(SET_NOT_READY, { ReasonCodeId: "Coffee" });
    const [sent] = fake.last().sentOf(SET_NOT_READY);
    const frame = errorFrame(ErrorType.AGENT_STATE_NOT_FOUND, { replyTo: sent.id });
    fake.last().deliver(frame);
    await assert.rejects(answer, (err) => {
      assert.ok(err instanceof BridgeError);
      assert.equal(err.errorType, "AGENT_STATE_NOT_FOUND");
      assert.equal(err.errorMessage, "why");
      assert.equal(err.msg, "A sentence.");
      assert.deepEqual(err.request, { channel: "Amazon", topic: "Agent", subtopic: "SetNotReady" });
      assert.deepEqual(err.envelope, frame);
      assert.equal(err.local, false);
      return true;
    });
    assert.equal(bus.last("Amazon/Error/ApiError"), null, "errors are not events");
  });

  test("no answer within the timeout: REQUEST_TIMEOUT, local; the connection stays", async (t) => {
    const { bus, tick } = await opened(t);
    const answer = bus.request(GET_STATES, undefined, { timeout: 200 });
    tick(199);
    tick(1);
    await assert.rejects(answer, { errorType: "REQUEST_TIMEOUT", local: true });
    assert.equal(bus.state, ConnectionState.OPEN);
  });

  test("the default timeout is requestTimeout, 15 s", async (t) => {
    const { bus, tick } = await opened(t);
    assert.equal(bus.requestTimeout, 15000);
    const answer = bus.request(GET_STATES);
    tick(15000);
    await assert.rejects(answer, { errorType: "REQUEST_TIMEOUT" });
  });

  test("a kind must be channel/topic/subtopic", async (t) => {
    const { bus } = await opened(t);
    assert.throws(() => bus.request("SetNotReady"), TypeError);
  });

  test("before start and while reconnecting: CONNECTION_LOST at once; after close: CLIENT_CLOSED", async (t) => {
    const { bus, fake } = setup(t);
    await assert.rejects(bus.request(GET_STATES), { errorType: "CONNECTION_LOST", local: true });
    bus.start();
    await flush();
    fake.last().welcome();
    fake.last().drop();
    assert.equal(bus.state, ConnectionState.RECONNECTING);
    await assert.rejects(bus.request(GET_STATES), { errorType: "CONNECTION_LOST" });
    bus.close();
    await assert.rejects(bus.request(GET_STATES), { errorType: "CLIENT_CLOSED" });
  });

  test("a drop fails requests in flight with CONNECTION_LOST; close() with CLIENT_CLOSED", async (t) => {
    const { bus, fake, tick } = await opened(t);
    const inFlight = bus.request(GET_STATES);
    fake.last().drop(1006);
    await assert.rejects(inFlight, (err) => {
      assert.equal(err.errorType, "CONNECTION_LOST");
      assert.match(err.errorMessage, /Amazon\/Agent\/GetStates was in flight/);
      return true;
    });
    tick(10_000);
    await flush();
    fake.last().welcome();
    const pending = bus.request(GET_STATES);
    bus.close();
    await assert.rejects(pending, { errorType: "CLIENT_CLOSED" });
    assert.deepEqual(fake.last().closedWith, { code: CloseCode.NORMAL, reason: "bye" });
  });
});

describe("events and last()", () => {
  test("on(kind) and on('*') get events; last() is the latest of this connection", async (t) => {
    const { bus, fake, tick } = await opened(t);
    const seen = [];
    const everything = [];
    const off = bus.on(SET_AGENT_STATE, (env) => seen.push(env.message.event));
    bus.on("*", (env) => everything.push(env.subtopic));
    const socket = fake.last();
    socket.deliver({ channel: "Bridge", topic: "Session", subtopic: "ProviderStatus",
      message: { connected: true }, retained: true });
    socket.deliver(stateEvent("Available", { retained: true }));
    socket.deliver(stateEvent("Break"));
    assert.deepEqual(seen, ["Available", "Break"]);
    assert.deepEqual(everything, ["ProviderStatus", "SetAgentState", "SetAgentState"]);
    assert.equal(bus.last(SET_AGENT_STATE).message.event, "Break");
    assert.equal(bus.last(PROVIDER_STATUS).retained, true);
    assert.equal(bus.last("Amazon/Agent/Nothing"), null);
    off();
    socket.deliver(stateEvent("Lunch"));
    assert.deepEqual(seen, ["Available", "Break"]);

    // A new connection forgets what the old one saw, until the hub replays it.
    socket.drop();
    assert.equal(bus.last(SET_AGENT_STATE).message.event, "Lunch", "kept while reconnecting");
    tick(1000);
    await flush();
    fake.last().welcome();
    assert.equal(bus.last(SET_AGENT_STATE), null);
    fake.last().deliver(stateEvent("Lunch", { retained: true }));
    assert.equal(bus.last(SET_AGENT_STATE).retained, true);
  });

  test("waitFor: the current event counts, or the next matching one", async (t) => {
    const { bus, fake, tick } = await opened(t);
    fake.last().deliver(stateEvent("Available", { retained: true }));
    assert.equal((await bus.waitFor(SET_AGENT_STATE)).message.event, "Available");
    const lunch = bus.waitFor(SET_AGENT_STATE, (env) => env.message.event === "Lunch");
    fake.last().deliver(stateEvent("Break"));
    fake.last().deliver(stateEvent("Lunch"));
    assert.equal((await lunch).message.event, "Lunch");
    const never = bus.waitFor(SET_AGENT_STATE, () => false, { timeout: 100 });
    tick(100);
    await assert.rejects(never, { name: "TimeoutError" });
    const closed = bus.waitFor(SET_AGENT_STATE, () => false);
    bus.close();
    await assert.rejects(closed, { errorType: "CLIENT_CLOSED" });
  });

  test("errors that answer no request go to onError", async (t) => {
    const { bus, fake } = await opened(t);
    const errors = [];
    bus.onError((err) => errors.push(err));
    fake.last().deliver(errorFrame("RATE_LIMITED"));
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof BridgeError);
    assert.equal(errors[0].errorType, "RATE_LIMITED");
  });
});

describe("reconnecting", () => {
  test("backoff is full jitter: random(0, min(max, initial * 2**attempt)), defaults 500 ms / 30 s", () => {
    assert.deepEqual({ ...DEFAULTS }, { requestTimeout: 15000, connectTimeout: 10000, backoffInitial: 500,
      backoffMax: 30000, stableAfter: 10000 });
    assert.equal(backoffDelay(0, 500, 30000, () => 0), 0);
    assert.equal(backoffDelay(0, 500, 30000, () => 0.5), 250);
    assert.equal(backoffDelay(3, 500, 30000, () => 0.5), 2000);
    assert.equal(backoffDelay(10, 500, 30000, () => 0.5), 15000, "capped at max");
    assert.equal(backoffDelay(1000, 500, 30000, () => 0.999999), 29999);
    assert.equal(backoffDelay(2, undefined, undefined, () => 0.5), 1000, "the defaults");
    for (let i = 0; i < 100; i += 1) {
      const delay = backoffDelay(4);
      assert.ok(delay >= 0 && delay < 8000, String(delay));
    }
  });

  test("after a drop: reconnecting, Hello again after the backoff, open again", async (t) => {
    const { bus, fake, states, tick } = await opened(t);
    const retries = [];
    bus.addEventListener("retry", (e) => retries.push(e.detail));
    fake.last().drop(1001, "going away");
    assert.equal(bus.state, ConnectionState.RECONNECTING);
    assert.deepEqual(retries, [{ attempt: 0, retryInMs: 250, code: 1001, reason: "going away", error: null }]);
    tick(249);
    await flush();
    assert.equal(fake.sockets.length, 1);
    tick(1);
    await flush();
    assert.equal(fake.sockets.length, 2);
    // This attempt fails before Welcome: the next delay doubles.
    fake.last().drop(1006);
    assert.equal(retries[1].retryInMs, 500);
    assert.equal(bus.state, ConnectionState.RECONNECTING);
    tick(500);
    await flush();
    fake.last().accept();
    assert.equal(fake.last().sentOf(HELLO).length, 1);
    fake.last().welcome();
    assert.equal(bus.state, ConnectionState.OPEN);
    assert.equal(bus.connections, 2);
    assert.deepEqual(states.map((s) => s.state), ["connecting", "open", "reconnecting", "open"]);

    // A short-lived connection keeps counting attempts; one up for stableAfter starts again at 0.
    fake.last().drop();
    assert.equal(retries[2].retryInMs, 1000);
    tick(1000);
    await flush();
    fake.last().welcome();
    tick(10_000);
    fake.last().drop();
    assert.equal(retries[3].attempt, 0);
    assert.equal(retries[3].retryInMs, 250);
  });

  test("replaced by a newer provider (4001): closed for good", async (t) => {
    const { bus, fake, tick } = await opened(t, { role: "provider" });
    fake.last().deliver({ channel: "Bridge", topic: "Session", subtopic: "Replaced", message: {} });
    assert.notEqual(bus.last(REPLACED), null);
    fake.last().drop(CloseCode.REPLACED, "replaced");
    assert.equal(bus.state, ConnectionState.CLOSED);
    assert.equal(bus.closeError.errorType, "REPLACED");
    tick(60_000);
    await flush();
    assert.equal(fake.sockets.length, 1);
  });

  test("a refused token stays refused; a token function may retry", async (t) => {
    const refused = { channel: "Bridge", topic: "Error", subtopic: "ApiError",
      data: { errorType: "NOT_AUTHENTICATED", errorMessage: "bad signature", msg: "Not signed in." } };
    const { bus, fake, states } = setup(t, { agent: undefined, token: "bad" });
    const ready = bus.ready();
    bus.start();
    await flush();
    fake.last().accept();
    fake.last().deliver(refused);
    fake.last().drop(CloseCode.POLICY_VIOLATION);
    assert.equal(bus.state, ConnectionState.CLOSED);
    assert.equal(bus.closeError.errorType, "NOT_AUTHENTICATED");
    assert.equal(states.at(-1).error, bus.closeError);
    await assert.rejects(ready, { errorType: "NOT_AUTHENTICATED" });

    const again = setup(t, { agent: undefined, token: () => "fresh" });
    again.bus.start();
    await flush();
    again.fake.last().accept();
    again.fake.last().deliver(refused);
    again.fake.last().drop(CloseCode.POLICY_VIOLATION);
    assert.equal(again.bus.state, ConnectionState.CONNECTING);
    again.tick(250);
    await flush();
    assert.equal(again.fake.sockets.length, 2);
  });

  test("reconnect: false closes for good at the first drop", async (t) => {
    const { bus, fake } = await opened(t, { reconnect: false });
    fake.last().drop(1006);
    assert.equal(bus.state, ConnectionState.CLOSED);
    assert.equal(bus.closeError.errorType, "CONNECTION_LOST");
  });
});

describe("providers", () => {
  test("onRequest gets requests; publish and sendError answer them", async (t) => {
    const { bus, fake } = await opened(t, { role: "provider" });
    const requests = [];
    bus.onRequest((req) => requests.push(req));
    const request = { channel: "Amazon", topic: "Agent", subtopic: "SetNotReady", source: "app", id: "r1",
      data: { ReasonCodeId: "Coffee" } };
    fake.last().deliver(request);
    assert.deepEqual(requests, [request]);
    assert.equal(bus.last(SET_NOT_READY), null, "requests are not events");

    assert.equal(bus.publish(SET_AGENT_STATE, { event: "Break" }, { replyTo: "r1" }), true);
    assert.equal(bus.sendError(request, ErrorType.AGENT_STATE_NOT_FOUND, "no state named Coffee"), true);
    const [, published, refused] = fake.last().sent;
    assert.deepEqual(published, { channel: "Amazon", topic: "Agent", subtopic: "SetAgentState",
      message: { event: "Break" }, replyTo: "r1" });
    assert.deepEqual(refused, { channel: "Amazon", topic: "Error", subtopic: "ApiError", replyTo: "r1",
      data: { errorType: "AGENT_STATE_NOT_FOUND", errorMessage: "no state named Coffee",
        msg: "Specified Agent State not found.",
        request: { channel: "Amazon", topic: "Agent", subtopic: "SetNotReady" } } });

    fake.last().drop();
    assert.equal(bus.publish(SET_AGENT_STATE, {}), false, "not connected: dropped");
  });

  test("only a provider receives requests", () => {
    const fake = fakeWebSockets();
    const app = new BridgeClient({ url: URL, agent: "a", WebSocket: fake.WebSocket });
    assert.throws(() => app.onRequest(() => {}), TypeError);
  });
});

test("a listener that closes the client on open: every listener hears open, then closed", async (t) => {
  const { bus, fake, states } = setup(t);
  const second = [];
  bus.addStateListener((state) => {
    if (state === "open") bus.close("not this agent");
  });
  bus.addStateListener((state) => second.push(state));
  const events = [];
  bus.addEventListener("state", (e) => events.push(e.detail.state));
  bus.start();
  await flush();
  fake.last().welcome();
  assert.deepEqual(second, ["connecting", "open", "closed"]);
  assert.deepEqual(events, ["connecting", "open", "closed"]);
  assert.equal(states.at(-1).reason, "not this agent");
  assert.equal(bus.state, ConnectionState.CLOSED);
});

describe("token refresh", () => {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  /** A token-shaped string expiring `seconds` after the mocked now (the hub checks the real ones). */
  const tokenFor = (expSeconds) => `${part({ alg: "HS256" })}.${part({ sub: "agent1", exp: expSeconds })}.sig`;

  test("a token function's token is refreshed on the open connection before it expires", async (t) => {
    let exp = 1_000 + 100; // the mocked clock starts at 1,000,000 ms
    const { bus, fake, tick } = setup(t, { agent: undefined, token: () => tokenFor((exp += 100) - 100) });
    bus.start();
    await flush();
    const socket = fake.last();
    socket.welcome();
    tick(79_000); // 80 % of the 100 s left: not yet
    await flush();
    assert.equal(socket.sent.length, 1);
    tick(1_000);
    await flush();
    const refresh = socket.sent.at(-1);
    assert.equal(`${refresh.channel}/${refresh.topic}/${refresh.subtopic}`, "Bridge/Session/Refresh");
    assert.equal(refresh.data.token, tokenFor(1_200));
    socket.deliver({ channel: "Bridge", topic: "Session", subtopic: "Refreshed", replyTo: refresh.id,
      message: { expiresAt: "1970-01-01T00:20:00.000Z" } });
    await flush();
    assert.equal(bus.last("Bridge/Session/Refreshed"), null); // session control, not an agent's event
    // The next one comes at 80 % of the new token's remaining life, on the same connection.
    tick(96_000);
    await flush();
    assert.equal(socket.sent.at(-1).data.token, tokenFor(1_300));
    assert.equal(fake.sockets.length, 1);
    assert.equal(bus.connections, 1);
  });

  test("a refused refresh is tried again while the token lasts", async (t) => {
    const { bus, fake, tick } = setup(t, { agent: undefined, token: () => tokenFor(Date.now() / 1000 + 100) });
    bus.start();
    await flush();
    const socket = fake.last();
    socket.welcome();
    tick(80_000);
    await flush();
    const first = socket.sent.at(-1);
    socket.deliver(errorFrame("NOT_AUTHENTICATED", { replyTo: first.id }));
    await flush();
    tick(5_000);
    await flush();
    const second = socket.sent.at(-1);
    assert.equal(second.subtopic, "Refresh");
    assert.notEqual(second.id, first.id);
  });

  test("a fixed token is never refreshed", async (t) => {
    const { bus, fake, tick } = setup(t, { agent: undefined, token: tokenFor(1_010) });
    bus.start();
    await flush();
    fake.last().welcome();
    tick(20_000);
    await flush();
    assert.equal(fake.last().sent.length, 1);
  });
});

describe("supervisors (protocol 1.2)", () => {
  const scopeWelcome = { role: "supervisor", supervisor: "wallboard", agents: ["*"], control: true };

  /** An open-hub supervisor, opened; the fake Welcome says what a supervisor's says. */
  async function supervisor(t, options = {}) {
    const env = setup(t, { agent: undefined, role: "supervisor", agents: ["*"], control: true,
      source: "wallboard", ...options });
    env.bus.start();
    await flush();
    env.fake.last().accept();
    const [hello] = env.fake.last().sent;
    env.fake.last().deliver({ channel: "Bridge", topic: "Session", subtopic: "Welcome",
      message: { ...scopeWelcome, connectionId: "c0" } });
    return { ...env, hello };
  }

  test("an open-hub Hello names the scope and control; Welcome gives the scope back", async (t) => {
    const { bus, hello } = await supervisor(t);
    assert.deepEqual(hello.data, { role: "supervisor", agents: ["*"], control: true });
    assert.equal(bus.state, ConnectionState.OPEN);
    assert.deepEqual(bus.agents, ["*"]);
    assert.equal(bus.control, true);
    assert.equal(bus.agent, null, "a supervisor joins no single agent");
    assert.equal(bus.providerConnected, null);
  });

  test("control is left out of Hello unless asked; a token alone otherwise", async (t) => {
    const { hello } = await supervisor(t, { control: undefined, agents: ["agent1", "agent2"] });
    assert.deepEqual(hello.data, { role: "supervisor", agents: ["agent1", "agent2"] });
    const fake = fakeWebSockets();
    const tokened = new BridgeClient({ url: URL, role: "supervisor", token: "tok", WebSocket: fake.WebSocket });
    tokened.start();
    await flush();
    fake.last().accept();
    assert.deepEqual(fake.last().sent[0].data, { role: "supervisor", token: "tok" });
    tokened.close();
  });

  test("a supervisor gives exactly one of token and agents, never agent", () => {
    const fake = fakeWebSockets();
    const make = (options) => new BridgeClient({ url: URL, role: "supervisor", WebSocket: fake.WebSocket, ...options });
    assert.throws(() => make({}), TypeError);
    assert.throws(() => make({ agents: [] }), TypeError);
    assert.throws(() => make({ agents: ["*"], token: "t" }), TypeError);
    assert.throws(() => make({ agent: "agent1" }), TypeError);
    assert.throws(() => make({ token: "t", control: true }), TypeError, "the token says whether it has control");
  });

  test("each frame's agent: handlers see it, last(kind, agent) keeps one per agent", async (t) => {
    const { bus, fake } = await supervisor(t);
    const seen = [];
    bus.on(SET_AGENT_STATE, (env) => seen.push([env.agent, env.message.event]));
    const socket = fake.last();
    socket.deliver({ agent: "agent1", channel: "Bridge", topic: "Session", subtopic: "ProviderStatus",
      message: { connected: true }, retained: true });
    socket.deliver(stateEvent("Available", { agent: "agent1", retained: true }));
    socket.deliver(stateEvent("Break", { agent: "agent2" }));
    assert.deepEqual(seen, [["agent1", "Available"], ["agent2", "Break"]]);
    assert.equal(bus.last(SET_AGENT_STATE, "agent1").message.event, "Available");
    assert.equal(bus.last(SET_AGENT_STATE, "agent2").message.event, "Break");
    assert.equal(bus.last(SET_AGENT_STATE).message.event, "Break", "without an agent: the latest of any");
    assert.equal(bus.last(SET_AGENT_STATE, "agent3"), null);
    assert.equal(bus.providerConnected, null, "one agent's ProviderStatus is not the connection's");
  });

  test("request(kind, data, {agent}) names the target; the answer and errors carry it", async (t) => {
    const { bus, fake } = await supervisor(t);
    const socket = fake.last();
    const answer = bus.request(SET_NOT_READY, { ReasonCodeId: "Break" }, { agent: "agent7" });
    const [sent] = socket.sentOf(SET_NOT_READY);
    assert.equal(sent.agent, "agent7");
    assert.deepEqual(sent.data, { ReasonCodeId: "Break" });
    assert.equal(sent.source, "wallboard");
    socket.deliver(stateEvent("Break", { agent: "agent7", replyTo: sent.id }));
    assert.equal((await answer).agent, "agent7");

    const refused = bus.request(SET_NOT_READY, { ReasonCodeId: "Break" }, { agent: "agent9" });
    const [, second] = socket.sentOf(SET_NOT_READY);
    socket.deliver(errorFrame("PROVIDER_UNAVAILABLE", { agent: "agent9", replyTo: second.id }));
    await assert.rejects(refused, (err) => err instanceof BridgeError
      && err.errorType === "PROVIDER_UNAVAILABLE" && err.agent === "agent9");
  });

  test("an app's request carries no agent key", async (t) => {
    const { bus, fake } = await opened(t);
    bus.request(SET_NOT_READY, { ReasonCodeId: "Lunch" }).catch(() => {});
    const [sent] = fake.last().sentOf(SET_NOT_READY);
    assert.equal("agent" in sent, false);
  });
});
