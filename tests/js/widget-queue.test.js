// The widget during a contact (static/js/pages/widget-text.js): state buttons
// that would only queue say so, the queued state in words, and when the widget
// can cancel it (Connect cancels a queued state when the agent picks, during
// the contact, the state they are in behind it).
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  cancelQueued, queuedStateText, stateButtonLabels, stateChangesQueue,
} from "../../static/js/pages/widget-text.js";

const busy = (nextState) => ({ event: "Busy", data: { type: "system", state: "Not_Ready", ...(nextState ? { nextState } : {}) } });
const available = { event: "Available", data: { type: "routable", state: "Ready" } };
const LUNCH = { name: "Lunch", type: "not_routable" };

test("only a contact's system state makes state changes queue", () => {
  assert.equal(stateChangesQueue(busy()), true);
  assert.equal(stateChangesQueue({ event: "AfterCallWork", data: { type: "system" } }), true);
  assert.equal(stateChangesQueue(available), false);
  assert.equal(stateChangesQueue({ event: "Break", data: { type: "not_routable" } }), false);
  assert.equal(stateChangesQueue(null), false);
});

test("on a contact the state buttons say they act after the call", () => {
  assert.deepEqual(stateButtonLabels(true),
    { ready: "Ready after call", notReady: "Not Ready after call", logout: "Log out after call" });
  assert.deepEqual(stateButtonLabels(false), { ready: "Ready", notReady: "Not Ready", logout: "Log out" });
});

test("the queued state reads as what happens after this call", () => {
  assert.equal(queuedStateText(LUNCH), "After this call: Not Ready (Lunch)");
  assert.equal(queuedStateText({ name: "Available", type: "routable" }), "After this call: Ready (Available)");
  assert.equal(queuedStateText({ name: "Offline", type: "offline" }), "After this call: Logged out");
  assert.equal(queuedStateText(undefined), null);
  assert.equal(queuedStateText(null), null);
});

test("a queued state is cancelled by asking for the routable state behind the call", () => {
  const behind = { name: "Available", type: "routable" };
  assert.deepEqual(cancelQueued(busy(LUNCH), behind),
    { reason: "Available", label: "Cancel: stay Available after this call" });
  assert.equal(cancelQueued(busy(), behind), null, "nothing queued, nothing to cancel");
  assert.equal(cancelQueued(busy(LUNCH), null), null, "joined during the call: the state behind it is unknown");
  assert.equal(cancelQueued(busy(LUNCH), { name: "Break", type: "not_routable" }), null,
    "Connect documents the cancel back to Available only");
  assert.equal(cancelQueued({ ...available, data: { ...available.data, nextState: LUNCH } }, behind), null,
    "no contact: nothing is queued");
});
