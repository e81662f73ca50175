/**
 * The wallboard's pure logic: the floor model (records, categories, counts),
 * filter and sort, the not-ready highlight, per-frame batching, the virtual
 * list's window and the frame statistics. The frames are shaped as the hub
 * sends them to a supervisor: the contract's samples with a top-level `agent`.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { FrameBatch } from "../../static/js/pages/wallboard-batch.js";
import { scrollToShow, visibleRange } from "../../static/js/pages/wallboard-list.js";
import {
  ALL, Floor, OVERDUE, SOFTPHONE_DOWN, affectsOrder, callSummary, categoryOf, countOverdue, isOverdue,
  matches, orderDependsOnTime, orderRecords, parseAgents,
} from "../../static/js/pages/wallboard-model.js";
import { frameStats, percentile } from "../../static/js/pages/wallboard-perf.js";
import { readPageConfig } from "../../static/js/lib/page-config.js";

const SAMPLES = new URL("../../../shared/protocol/samples/", import.meta.url);
const sample = (name) => JSON.parse(readFileSync(new URL(name, SAMPLES), "utf8"));

const T0 = Date.parse("2026-11-28T10:00:00.000Z");
const iso = (ms) => new Date(ms).toISOString();

/** A SetAgentState for `agent` as a supervisor gets it: the seed sample, changed, with `agent` first. */
function state(agent, name, { type = "not_routable", at = T0, display, muted = false, next } = {}) {
  const envelope = sample("seed-SetAgentState.event.json");
  const coarse = { routable: "Ready", offline: "Logout" }[type] || "Not_Ready";
  Object.assign(envelope.message.data, { loginName: agent, name: display ?? agent, state: coarse, type,
    stateChangeTime: iso(at), muted });
  if (next) envelope.message.data.nextState = { name: next, type: "not_routable" };
  envelope.message.event = name;
  return { agent, ...envelope };
}

function provider(agent, connected, extra = {}) {
  return { agent, channel: "Bridge", topic: "Session", subtopic: "ProviderStatus", message: { connected }, ...extra };
}

function call(agent, file, changes = {}) {
  const envelope = sample(`calls/${file}`);
  Object.assign(envelope.message.call, changes);
  return { agent, ...envelope };
}

const query = (changes = {}) => ({ text: "", state: ALL, sort: "name", limitMs: 300_000, ...changes });

describe("the floor model", () => {
  test("each agent's record follows its frames; the counts per state follow the records", () => {
    const floor = new Floor();
    assert.equal(floor.apply(provider("agent1", true, { retained: true })).added, true);
    assert.equal(floor.counts.get("unknown"), 1, "known to the hub, no state yet");
    floor.apply(state("agent1", "Available", { type: "routable", display: "Ava Patel" }));
    floor.apply(state("agent2", "Break"));
    floor.apply(state("agent3", "Offline", { type: "offline" }));
    const ava = floor.agents.get("agent1");
    assert.equal(ava.name, "Ava Patel");
    assert.equal(ava.category, "ready");
    assert.equal(ava.since, T0);
    assert.equal(ava.softphone, true);
    assert.deepEqual(Object.fromEntries(floor.counts),
      { ready: 1, oncall: 0, acw: 0, notready: 1, offline: 1, unknown: 0 });

    // A call: ringing counts as on a call, then after-call work, then gone.
    floor.apply(state("agent1", "PendingBusy", { type: "system" }));
    const ring = floor.apply(call("agent1", "01-ringing.event.json"));
    assert.equal(ring.categoryChanged, false, "PendingBusy was already on a call");
    assert.equal(floor.agents.get("agent1").category, "oncall");
    floor.apply(call("agent1", "09-acw.event.json"));
    assert.equal(floor.agents.get("agent1").category, "acw");
    floor.apply(call("agent1", "11-dropped.event.json"));
    assert.equal(floor.agents.get("agent1").calls.size, 0);
    assert.equal(floor.agents.get("agent1").category, "oncall", "still the system state until the next SetAgentState");
    floor.apply(state("agent1", "Available", { type: "routable" }));
    assert.deepEqual(Object.fromEntries(floor.counts),
      { ready: 1, oncall: 0, acw: 0, notready: 1, offline: 1, unknown: 0 });
  });

  test("the system states: Busy is on a call, AfterCallWork is after-call work", () => {
    const floor = new Floor();
    floor.apply(state("a", "Busy", { type: "system" }));
    floor.apply(state("b", "AfterCallWork", { type: "system" }));
    assert.equal(categoryOf(floor.agents.get("a")), "oncall");
    assert.equal(categoryOf(floor.agents.get("b")), "acw");
  });

  test("a softphone that goes and comes: counted as off, and its calls forgotten when it comes back", () => {
    const floor = new Floor();
    floor.apply(provider("agent1", true));
    floor.apply(state("agent1", "Busy", { type: "system" }));
    floor.apply(call("agent1", "03-connected.event.json"));
    const down = floor.apply(provider("agent1", false));
    assert.equal(down.softphoneChanged, true);
    assert.equal(floor.softphoneDown, 1);
    assert.equal(floor.agents.get("agent1").calls.size, 1, "last known, while the softphone is away");
    floor.apply(provider("agent1", true));
    assert.equal(floor.softphoneDown, 0);
    assert.equal(floor.agents.get("agent1").calls.size, 0, "the provider publishes its live calls again");
  });

  test("a new connection forgets the calls (the replay says which are live) but keeps the states", () => {
    const floor = new Floor();
    floor.apply(state("agent1", "Busy", { type: "system" }));
    floor.apply(call("agent1", "09-acw.event.json"));
    floor.apply(state("agent2", "Break"));
    assert.equal(floor.agents.get("agent1").category, "acw", "a contact in after-call work");
    floor.apply(state("agent1", "Available", { type: "routable" }));
    assert.equal(floor.agents.get("agent1").category, "acw");
    const changed = floor.forgetCalls();
    assert.deepEqual(changed.map((r) => r.login), ["agent1"]);
    assert.equal(floor.agents.get("agent1").category, "ready");
    assert.equal(floor.counts.get("acw"), 0);
    assert.equal(floor.agents.get("agent2").stateName, "Break");
  });

  test("frames without an agent, and kinds the wallboard does not show, change nothing", () => {
    const floor = new Floor();
    const { agent, ...appFrame } = state("agent1", "Break");
    assert.equal(agent, "agent1");
    assert.equal(floor.apply(appFrame), null);
    assert.equal(floor.apply({ agent: "agent1", ...sample("calls/17-GetQuickConnects.event.json") }), null);
    assert.equal(floor.apply({ agent: "agent1", ...sample("ApiError.error.json") }), null);
    assert.equal(floor.agents.size, 0);
  });

  test("the call cell: the queue, the caller, the contact's state and since when", () => {
    const floor = new Floor();
    floor.apply(state("agent1", "Busy", { type: "system" }));
    assert.equal(callSummary(floor.agents.get("agent1")), null);
    floor.apply(call("agent1", "03-connected.event.json"));
    const summary = callSummary(floor.agents.get("agent1"));
    assert.deepEqual(summary, { title: "Billing", party: "+15555550123", state: "Connected",
      since: Date.parse(sample("calls/03-connected.event.json").message.call.since), more: 0 });
    floor.apply(call("agent1", "01-ringing.event.json", { id: "second", CallType: "outbound", queue: null,
      CallVariables: { DNIS: "+16013261548" } }));
    const two = callSummary(floor.agents.get("agent1"));
    assert.equal(two.title, "Outbound call", "the live contact that appeared last");
    assert.equal(two.party, "+16013261548");
    assert.equal(two.state, "Dialing");
    assert.equal(two.more, 1);
  });
});

describe("the not-ready highlight", () => {
  test("only a not-ready agent past the limit; 0 turns it off", () => {
    const floor = new Floor();
    floor.apply(state("agent1", "Lunch", { at: T0 }));
    floor.apply(state("agent2", "Available", { type: "routable", at: T0 }));
    floor.apply(state("agent3", "Busy", { type: "system", at: T0 }));
    const lunch = floor.agents.get("agent1");
    assert.equal(isOverdue(lunch, T0 + 300_000, 300_000), false, "at the limit, not past it");
    assert.equal(isOverdue(lunch, T0 + 300_001, 300_000), true);
    assert.equal(isOverdue(lunch, T0 + 10_000_000, 0), false);
    assert.equal(countOverdue(floor, T0 + 3_600_000, 300_000), 1, "ready and on-call agents never count");
  });

  test("the limit comes from ?notReadyLimit=SECONDS or the config object", () => {
    assert.equal(readPageConfig({ search: "?notReadyLimit=90", config: null }).notReadyLimitS, 90);
    assert.equal(readPageConfig({ search: "?notReadyLimit=-3", config: null,
      defaults: { notReadyLimitS: 300 } }).notReadyLimitS, 300);
    assert.equal(readPageConfig({ search: "?notReadyLimit=90", config: { notReadyLimitS: 600 } }).notReadyLimitS, 600);
    const settings = readPageConfig({ search: "?agents=*&control=1&batch=0&perf=1", config: null });
    assert.deepEqual([settings.agents, settings.control, settings.batch, settings.perf], ["*", true, false, true]);
  });
});

describe("filter and sort", () => {
  function floorOf() {
    const floor = new Floor();
    floor.apply(state("agent1", "Available", { type: "routable", at: T0 - 60_000, display: "Zoe Smith" }));
    floor.apply(state("agent2", "Break", { at: T0 - 600_000, display: "Ava Patel" }));
    floor.apply(state("agent3", "Lunch", { at: T0 - 30_000, display: "Liam Chen" }));
    floor.apply(state("agent4", "Busy", { type: "system", at: T0 - 120_000, display: "Mia Rossi" }));
    floor.apply(provider("agent4", false));
    return floor;
  }
  const logins = (records) => records.map((r) => r.login);

  test("by name, by longest and by shortest time in state", () => {
    const floor = floorOf();
    assert.deepEqual(logins(orderRecords(floor.agents.values(), query(), T0)), ["agent2", "agent3", "agent4", "agent1"]);
    assert.deepEqual(logins(orderRecords(floor.agents.values(), query({ sort: "longest" }), T0)),
      ["agent2", "agent4", "agent1", "agent3"]);
    assert.deepEqual(logins(orderRecords(floor.agents.values(), query({ sort: "shortest" }), T0)),
      ["agent3", "agent1", "agent4", "agent2"]);
  });

  test("by state, past the limit, softphone off, and by name or login, case-insensitive", () => {
    const floor = floorOf();
    const shown = (changes) => logins(orderRecords(floor.agents.values(), query(changes), T0));
    assert.deepEqual(shown({ state: "notready" }), ["agent2", "agent3"]);
    assert.deepEqual(shown({ state: OVERDUE }), ["agent2"]);
    assert.deepEqual(shown({ state: SOFTPHONE_DOWN }), ["agent4"]);
    assert.deepEqual(shown({ text: "  ROSSI " }), ["agent4"]);
    assert.deepEqual(shown({ text: "agent1" }), ["agent1"]);
    assert.deepEqual(shown({ text: "a", state: "ready" }), ["agent1"]);
    assert.equal(matches(floor.agents.get("agent1"), query({ text: "nobody" }), T0), false);
  });

  test("the order is computed again only when a change can move a row", () => {
    const floor = new Floor();
    const added = floor.apply(state("agent1", "Break", { at: T0 }));
    assert.equal(affectsOrder(added, query()), true, "a new agent always");
    const moved = floor.apply(state("agent1", "Available", { type: "routable", at: T0 + 1000 }));
    assert.equal(affectsOrder(moved, query()), false, "by name, unfiltered: the row stays where it is");
    assert.equal(affectsOrder(moved, query({ sort: "longest" })), true);
    assert.equal(affectsOrder(moved, query({ state: "ready" })), true);
    const muted = floor.apply(state("agent1", "Available", { type: "routable", at: T0 + 1000, muted: true }));
    assert.equal(affectsOrder(muted, query({ sort: "longest", state: "ready" })), false);
    const down = floor.apply(provider("agent1", false));
    assert.equal(affectsOrder(down, query({ state: SOFTPHONE_DOWN })), true);
    assert.equal(orderDependsOnTime(query({ state: OVERDUE })), true);
    assert.equal(orderDependsOnTime(query({ sort: "longest" })), false);
  });

  test("the scope a page asks for: * alone, or names", () => {
    assert.deepEqual(parseAgents("*"), ["*"]);
    assert.deepEqual(parseAgents("agent1, agent2 agent1"), ["agent1", "agent2"]);
    assert.deepEqual(parseAgents(["agent1", "*"]), ["*"]);
    assert.deepEqual(parseAgents(undefined), []);
  });
});

describe("batching per animation frame", () => {
  function stepper() {
    const frames = [];
    return { schedule: (callback) => frames.push(callback), frames,
      run: () => frames.splice(0).forEach((callback) => callback()) };
  }

  test("any number of marks between two frames makes one draw of the agents they name", () => {
    const draws = [];
    const frame = stepper();
    const batch = new FrameBatch((flush) => draws.push(flush), { schedule: frame.schedule });
    for (let i = 0; i < 2000; i += 1) batch.mark(`agent${i % 500}`, i === 7);
    assert.equal(frame.frames.length, 1, "one frame asked for");
    assert.equal(draws.length, 0, "nothing drawn before the frame");
    frame.run();
    assert.equal(draws.length, 1);
    assert.equal(draws[0].dirty.size, 500);
    assert.equal(draws[0].events, 2000);
    assert.equal(draws[0].reorder, true);
    assert.equal(draws[0].all, false);
    frame.run();
    assert.equal(draws.length, 1, "no frame, no draw, once nothing is marked");
    batch.mark("agent1");
    frame.run();
    assert.deepEqual([...draws[1].dirty], ["agent1"]);
    assert.equal(draws[1].reorder, false);
    assert.equal(batch.draws, 2);
    assert.equal(batch.applied, 2001);
  });

  test("invalidate draws every row in view; flush draws at once", () => {
    const draws = [];
    const frame = stepper();
    const batch = new FrameBatch((flush) => draws.push(flush), { schedule: frame.schedule });
    batch.invalidate({ reorder: true });
    batch.flush();
    assert.equal(draws.length, 1);
    assert.equal(draws[0].all, true);
    assert.equal(draws[0].reorder, true);
    frame.run();
    assert.equal(draws.length, 1, "the frame asked for earlier finds nothing left");
  });

  test("disabled, every mark draws at once (the benchmark's baseline)", () => {
    const draws = [];
    const batch = new FrameBatch((flush) => draws.push(flush), { schedule: () => assert.fail("no frames"),
      enabled: false });
    batch.mark("agent1");
    batch.mark("agent2");
    assert.deepEqual(draws.map((d) => [...d.dirty]), [["agent1"], ["agent2"]]);
  });
});

describe("the virtual list's window", () => {
  test("the rows in view plus the overscan, within the list", () => {
    assert.deepEqual(visibleRange(0, 500, 50, 2000, 4), { start: 0, end: 14 });
    assert.deepEqual(visibleRange(1000, 500, 50, 2000, 4), { start: 16, end: 34 });
    assert.deepEqual(visibleRange(99_000, 1000, 50, 2000, 4), { start: 1976, end: 2000 });
    assert.deepEqual(visibleRange(0, 500, 50, 0), { start: 0, end: 0 });
    assert.deepEqual(visibleRange(0, 500, 50, 3), { start: 0, end: 3 });
  });

  test("revealing a row scrolls as little as possible", () => {
    assert.equal(scrollToShow(5, 0, 500, 50), 0, "already in view");
    assert.equal(scrollToShow(12, 0, 500, 50), 150, "below: its bottom at the bottom");
    assert.equal(scrollToShow(2, 400, 500, 50), 100, "above: its top at the top");
  });
});

describe("frame statistics", () => {
  test("median, p99 and max of frame intervals, nearest rank", () => {
    const intervals = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.deepEqual(frameStats(intervals), { frames: 100, medianMs: 50, p99Ms: 99, maxMs: 100 });
    assert.equal(percentile([16.7], 99), 16.7);
    assert.ok(Number.isNaN(frameStats([]).medianMs));
  });
});
