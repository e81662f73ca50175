/**
 * Recovery in static/js/lib/client.js (issue 14): the client remembers the last
 * position per agent, asks for what it missed in the next Hello, delivers the
 * replay like live events, and drops a frame it has delivered already. The test
 * plays the hub on a fake WebSocket, speaking the design's wire format.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { BridgeClient, ConnectionState } from "../../static/js/lib/client.js";
import { HELLO, SET_AGENT_STATE } from "../../static/js/lib/names.js";
import { fakeWebSockets, flush } from "./fakes.js";

const URL = "ws://hub.test/ws";

/** A client on fake sockets; `connect(message)` opens the next socket with that Welcome. */
function setup(t, options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const fake = fakeWebSockets();
  const bus = new BridgeClient({ url: URL, agent: "agent1", source: "test", WebSocket: fake.WebSocket,
    random: () => 0.5, backoffInitial: 10, ...options });
  t.after(() => bus.close());
  const seen = [];
  bus.on(SET_AGENT_STATE, (env) => seen.push(env));
  /** The Hello of the socket being opened. */
  async function hello() {
    await flush();
    const socket = fake.last();
    socket.accept();
    const [first] = socket.sentOf(HELLO);
    return { socket, data: first.data };
  }
  /** Cut the connection, and let the client try again. */
  async function cut() {
    fake.last().drop(1006);
    assert.equal(bus.state, ConnectionState.RECONNECTING);
    t.mock.timers.tick(1000);
  }
  return { bus, fake, seen, hello, cut };
}

function state(event, offset, extra = {}) {
  return { channel: "Amazon", topic: "Agent", subtopic: "SetAgentState",
    message: { event, data: { state: "Not_Ready" } }, ...extra, offset, epoch: extra.epoch ?? "e1" };
}

function status(offset, extra = {}) {
  return { channel: "Bridge", topic: "Session", subtopic: "ProviderStatus", message: { connected: true },
    retained: true, ...extra, offset, epoch: extra.epoch ?? "e1" };
}

const events = (seen) => seen.map((env) => `${env.message.event}@${env.offset}`);

describe("an app", () => {
  test("asks for nothing at first, then for what it missed, and gets it in order, once", async (t) => {
    const { bus, seen, hello, cut } = setup(t);
    bus.start();
    let { socket, data } = await hello();
    assert.deepEqual(data, { role: "app", agent: "agent1" });
    socket.welcome();
    assert.equal(bus.recovered, null);
    socket.deliver(status(2));
    socket.deliver(state("Break", 2, { retained: true }));
    socket.deliver(state("Lunch", 3));
    assert.deepEqual(bus.positions, { agent1: { epoch: "e1", offset: 3 } });
    assert.ok(Object.isFrozen(bus.positions));

    await cut();
    ({ socket, data } = await hello());
    assert.deepEqual(data.recover, { epoch: "e1", offset: 3 });
    socket.welcome({ recovered: true });
    assert.equal(bus.recovered, true);
    assert.equal(bus.last(SET_AGENT_STATE).message.event, "Lunch", "no replay: what was seen stays current");
    for (let n = 4; n < 204; n += 1) socket.deliver(state(`S${n}`, n, { recovered: true }));
    socket.deliver(state("S203", 203)); // a repeat of the last recovered one
    socket.deliver(state("Live", 204));
    assert.deepEqual(events(seen).slice(2), [...Array.from({ length: 200 }, (_, i) => `S${i + 4}@${i + 4}`),
      "Live@204"]);
    assert.equal(seen.filter((env) => env.recovered === true).length, 200);
    assert.equal(bus.duplicatesDropped, 1);
    assert.deepEqual(bus.positions.agent1, { epoch: "e1", offset: 204 });
  });

  test("recovered false: the retained state, positions started again, nothing dropped", async (t) => {
    const { bus, seen, hello, cut } = setup(t);
    bus.start();
    let { socket } = await hello();
    socket.welcome();
    socket.deliver(state("Break", 40));
    await cut();
    let data;
    ({ socket, data } = await hello());
    assert.deepEqual(data.recover, { epoch: "e1", offset: 40 });
    socket.welcome({ recovered: false });
    assert.equal(bus.recovered, false);
    assert.equal(bus.last(SET_AGENT_STATE), null, "not recovered: last() starts afresh");
    // The hub restarted: a new epoch, and offsets below the old ones.
    socket.deliver(status(3, { epoch: "e2" }));
    socket.deliver(state("Lunch", 3, { epoch: "e2", retained: true }));
    socket.deliver(state("Training", 4, { epoch: "e2" }));
    assert.deepEqual(events(seen), ["Break@40", "Lunch@3", "Training@4"]);
    assert.equal(bus.duplicatesDropped, 0);
    assert.deepEqual(bus.positions, { agent1: { epoch: "e2", offset: 4 } });
  });

  test("starts from a position given to it, even with a token whose agent it does not know", async (t) => {
    const { bus, seen, hello } = setup(t, { agent: undefined, token: "tok", recover: { epoch: "e1", offset: 5 } });
    bus.start();
    const { socket, data } = await hello();
    assert.deepEqual(data, { role: "app", token: "tok", recover: { epoch: "e1", offset: 5 } });
    socket.welcome({ recovered: true });
    assert.deepEqual(bus.positions, { agent1: { epoch: "e1", offset: 5 } });
    socket.deliver(state("Break", 6, { recovered: true }));
    assert.deepEqual(events(seen), ["Break@6"]);
    assert.deepEqual(bus.positions, { agent1: { epoch: "e1", offset: 6 } });
  });

  test("a retained frame older than the top is delivered and moves nothing", async (t) => {
    const { bus, seen, hello } = setup(t);
    bus.start();
    const { socket } = await hello();
    socket.welcome();
    socket.deliver(status(9));
    socket.deliver(state("Break", 5, { retained: true }));
    socket.deliver(state("Lunch", 10));
    assert.deepEqual(events(seen), ["Break@5", "Lunch@10"]);
    assert.equal(bus.duplicatesDropped, 0);
  });

  test("recover is checked when the client is made", () => {
    const { WebSocket } = fakeWebSockets();
    const make = (options) => new BridgeClient({ url: URL, agent: "a", WebSocket, ...options });
    assert.throws(() => make({ recover: { epoch: "", offset: 1 } }), TypeError);
    assert.throws(() => make({ recover: { epoch: "e", offset: -1 } }), TypeError);
    assert.throws(() => make({ recover: { a: { epoch: "e", offset: 1 } } }), TypeError);
    assert.throws(() => make({ role: "provider", recover: { epoch: "e", offset: 1 } }), /provider/);
    assert.throws(() => make({ agent: undefined, role: "supervisor", agents: ["*"],
      recover: { epoch: "e", offset: 1 } }), /maps agent names/);
  });
});

describe("a supervisor", () => {
  test("asks per agent within its scope and reads the answer per agent", async (t) => {
    const { bus, seen, hello, cut } = setup(t, { agent: undefined, role: "supervisor", agents: ["agent1", "agent2"],
      recover: { agent9: { epoch: "e1", offset: 1 } } });
    bus.start();
    let { socket, data } = await hello();
    assert.equal(data.recover, undefined, "agent9 is not in the scope");
    const welcome = { role: "supervisor", supervisor: "lead", agents: ["agent1", "agent2"], control: false };
    socket.welcome(welcome);
    socket.deliver(state("Break", 4, { agent: "agent1" }));
    socket.deliver(state("Lunch", 7, { agent: "agent2" }));
    assert.deepEqual(bus.positions, { agent1: { epoch: "e1", offset: 4 }, agent2: { epoch: "e1", offset: 7 } });

    await cut();
    ({ socket, data } = await hello());
    assert.deepEqual(data.recover, { agent1: { epoch: "e1", offset: 4 }, agent2: { epoch: "e1", offset: 7 } });
    socket.welcome({ ...welcome, recovered: { agent1: true, agent2: false } });
    assert.deepEqual(bus.recovered, { agent1: true, agent2: false });
    assert.equal(bus.last(SET_AGENT_STATE, "agent1").message.event, "Break");
    assert.equal(bus.last(SET_AGENT_STATE, "agent2"), null);
    socket.deliver(state("Training", 5, { agent: "agent1", recovered: true }));
    socket.deliver(state("Break", 4, { agent: "agent1" })); // delivered already
    socket.deliver(state("Away", 2, { agent: "agent2", retained: true }));
    assert.deepEqual(seen.slice(2).map((env) => `${env.agent} ${env.message.event}@${env.offset}`),
      ["agent1 Training@5", "agent2 Away@2"]);
    assert.equal(bus.duplicatesDropped, 1);
    assert.deepEqual(bus.positions, { agent1: { epoch: "e1", offset: 5 }, agent2: { epoch: "e1", offset: 2 } });
  });
});
