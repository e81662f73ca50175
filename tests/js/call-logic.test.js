/** The widget's call cards without a browser: contacts from events, buttons, targets, input checks. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  CALL_ACTIONS, buttonStates, callsAfter, callsFromSync, checkDtmf, checkPhoneNumber, directionLabel,
  nextStateName, partyNumber, requestData, screenPopEntries, stateLabel, targetData,
} from "../../static/js/pages/call-logic.js";

/** A sample of the contract (../shared/protocol/samples/calls/ beside the checkout). */
function sample(name) {
  return JSON.parse(readFileSync(new URL(`../../../shared/protocol/samples/calls/${name}`, import.meta.url)));
}

const ringing = sample("01-ringing.event.json").message.call;
const connected = sample("03-connected.event.json").message.call;
const held = sample("05-hold.event.json").message.call;
const acw = sample("09-acw.event.json").message.call;
const dropped = sample("11-dropped.event.json").message.call;

test("contacts: an event adds or replaces its contact, Dropped removes it, the order is kept", () => {
  const other = { ...connected, id: "second" };
  let calls = callsAfter(new Map(), ringing);
  calls = callsAfter(calls, other);
  calls = callsAfter(calls, connected);
  assert.deepEqual([...calls.keys()], [ringing.id, "second"], "first appearance decides the order");
  assert.equal(calls.get(ringing.id).event, "connected");
  const before = calls;
  calls = callsAfter(calls, dropped);
  assert.deepEqual([...calls.keys()], ["second"]);
  assert.equal(before.size, 2, "the old map is not changed");
  // A late Dropped for a contact never seen changes nothing.
  assert.deepEqual([...callsAfter(new Map(), dropped).keys()], []);
});

test("contacts from StateSync: the provider's list, as a map", () => {
  const calls = callsFromSync(sample("16-StateSync.event.json").message.calls);
  assert.deepEqual([...calls.keys()], [connected.id]);
  assert.equal(callsFromSync([]).size, 0);
  assert.equal(callsFromSync(undefined).size, 0);
});

test("what the card says: number, direction, state, screen-pop data", () => {
  assert.equal(partyNumber(ringing), "+15555550123");
  assert.equal(directionLabel(ringing), "Inbound call");
  assert.deepEqual([ringing, connected, held, acw, dropped].map(stateLabel),
    ["Ringing", "Connected", "On hold", "After-call work", "Ended"]);
  assert.deepEqual(screenPopEntries(ringing),
    [["DNIS", "+18005550199"], ["CustomerId", "C-20411"], ["Reason", "billing"]]);

  const outbound = { ...ringing, CallType: "outbound", CallVariables: { DNIS: "+16013261548" } };
  assert.equal(stateLabel(outbound), "Dialing");
  assert.equal(partyNumber(outbound), "+16013261548");
  assert.equal(directionLabel(outbound), "Outbound call");
  assert.deepEqual(screenPopEntries(outbound), []);
  // No number in the variables: the customer's connection says it, or nothing does.
  assert.equal(partyNumber({ ...ringing, CallVariables: {} }), "+15555550123");
  assert.equal(partyNumber({ ...ringing, CallVariables: {}, connections: [] }), "Unknown number");
  assert.equal(directionLabel({ ...ringing, CallType: "transfer" }), "Transferred call");
});

test("buttons follow ButtonStates: Enable, Disable, Hide; not usable or busy disables", () => {
  const states = buttonStates(ringing, { usable: true });
  assert.deepEqual(Object.keys(states), CALL_ACTIONS.map((a) => a.action));
  assert.deepEqual(states.answer, { rule: "Enable", hidden: false, disabled: false, busy: false });
  assert.equal(states.hold.hidden, true);

  const onHold = buttonStates(held, { usable: true });
  assert.equal(onHold.hold.hidden, true);
  assert.equal(onHold.resume.disabled, false);
  assert.deepEqual(onHold.keypad, { rule: "Disable", hidden: false, disabled: true, busy: false });

  const busy = buttonStates(connected, { usable: true, busy: new Set(["hold"]) });
  assert.deepEqual(busy.hold, { rule: "Enable", hidden: false, disabled: true, busy: true });
  assert.equal(busy.disconnect.disabled, false);

  const down = buttonStates(connected, { usable: false });
  assert.ok(Object.values(down).every((state) => state.disabled), "no softphone: nothing can be done");

  // A button the provider leaves out is hidden, never offered.
  const bare = buttonStates({ ...connected, ButtonStates: { items: {}, count: 0 } }, { usable: true });
  assert.ok(Object.values(bare).every((state) => state.hidden));
});

test("each request names its target: the contact, or the connection it acts on", () => {
  assert.equal(requestData("answer", ringing), ringing.id);
  assert.equal(requestData("reject", ringing), ringing.id);
  assert.equal(requestData("clearContact", acw), acw.id);
  // The samples' Hold and Resume carry the customer's connection.
  assert.equal(requestData("hold", connected), sample("04-Hold.request.json").data);
  assert.equal(requestData("resume", held), sample("06-Resume.request.json").data);
  assert.equal(requestData("disconnect", connected), `${connected.id}-a`, "the agent leaves the call");
  assert.equal(requestData("conference", connected), undefined);
  assert.equal(requestData("swap", connected), undefined);
  // During a consult the held party is resumed, whoever it is.
  const consult = { ...held, connections: [...held.connections.map((c) => ({ ...c, status: "connected" })),
    { connectionId: "third", type: "outbound", phoneNumber: "+18005550111", status: "hold", since: held.since }] };
  assert.equal(requestData("resume", consult), "third");
});

test("phone numbers are checked before sending: E.164, spaces and dashes forgiven", () => {
  assert.deepEqual(checkPhoneNumber("+16013261548"), { ok: true, value: "+16013261548" });
  assert.deepEqual(checkPhoneNumber(" +1 (601) 326-1548 "), { ok: true, value: "+16013261548" });
  for (const bad of ["", "   ", "16013261548", "+0601", "+1", "+1234567890123456", "+1601abc", "+1601#2"]) {
    const checked = checkPhoneNumber(bad);
    assert.equal(checked.ok, false, bad);
    assert.match(checked.problem, /\S/);
  }
  assert.match(checkPhoneNumber("6013261548").problem, /\+/);
});

test("DTMF is checked before sending: 0-9 * # and , only, 1 to 64", () => {
  assert.deepEqual(checkDtmf("1234#"), { ok: true, value: "1234#" });
  assert.deepEqual(checkDtmf("*9, 1"), { ok: true, value: "*9,1" });
  assert.deepEqual(checkDtmf("1".repeat(64)), { ok: true, value: "1".repeat(64) });
  for (const bad of ["", "12a", "+1", "1".repeat(65), "1;2"]) assert.equal(checkDtmf(bad).ok, false, bad);
});

test("transfer, consult and dial targets: a quick connect's ARN, or a checked number", () => {
  const arn = sample("17-GetQuickConnects.event.json").message.endpoints[0].endpointARN;
  assert.deepEqual(targetData({ endpointARN: arn, number: "junk" }), { ok: true, value: { endpointARN: arn } });
  assert.deepEqual(targetData({ number: "+18005550111" }), { ok: true, value: sample("14-Transfer.request.json").data });
  assert.equal(targetData({ number: "0800" }).ok, false);
  assert.equal(targetData().ok, false);
});

test("the queued next state, from SetAgentState's message", () => {
  assert.equal(nextStateName({ data: { nextState: { name: "Lunch", type: "not_routable" } } }), "Lunch");
  assert.equal(nextStateName({ data: {} }), null);
  assert.equal(nextStateName(null), null);
});
