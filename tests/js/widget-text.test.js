// The widget's sentences (static/js/pages/widget-text.js): the state's kind, the
// empty and error states, the timeout notice, and which buttons wait for others.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  blockedButtons, connectionProblemText, emptyStateText, isTimeout, stateKindText, stateRequestErrorText,
} from "../../static/js/pages/widget-text.js";

test("a system state reads as being on a call, not as Not ready", () => {
  assert.equal(stateKindText({ state: "Not_Ready", type: "system" }, "Busy"), "On a call");
  assert.equal(stateKindText({ state: "Not_Ready", type: "system" }, "PendingBusy"), "On a call");
  assert.equal(stateKindText({ state: "Not_Ready", type: "system" }, "AfterCallWork"), "After-call work");
  assert.equal(stateKindText({ state: "Not_Ready", type: "not_routable" }, "Break"), "Not ready");
  assert.equal(stateKindText({ state: "Ready", type: "routable" }, "Available"), "Ready");
});

test("no softphone yet: the card says whose softphone to open", () => {
  const facts = { hub: "open", providerConnected: false, agent: "agent1", hasState: false };
  assert.equal(emptyStateText(facts), "Waiting for agent1's softphone: open the CCP page for this agent.");
  assert.equal(emptyStateText({ ...facts, agent: null }),
    "Waiting for the agent's softphone: open the CCP page for this agent.");
  assert.equal(emptyStateText({ ...facts, hasState: true }), null, "a state is shown instead");
  assert.equal(emptyStateText({ ...facts, hub: "connecting" }), null, "the connection's message says it");
  assert.match(emptyStateText({ ...facts, providerConnected: true }), /^Asking the softphone/);
});

test("a refused token is said in words, with its cause and what to do", () => {
  const refusal = { errorType: "NOT_AUTHENTICATED", errorMessage: "token has expired.", msg: "You are not signed in." };
  assert.equal(connectionProblemText(refusal, { token: true }),
    "The bridge refused this page's token: token has expired. Ask for a new link.");
  assert.match(connectionProblemText(refusal, { token: false }), /^The bridge refused this page: token has expired\. Open it with a token/);
  assert.match(connectionProblemText({ errorType: "CONNECT_FAILED", errorMessage: "cannot connect to ws://x/ws (code 1006)" },
    { token: true }), /^Cannot reach the bridge: cannot connect .*reload the page\.$/);
  assert.equal(connectionProblemText(null, { token: true }), null);
});

test("a timed-out state request never claims the state was not changed", () => {
  const timeouts = [
    { errorType: "REQUEST_TIMEOUT", errorMessage: "no answer to SetNotReady (x) within 15000 ms (client-side timeout)" },
    { errorType: "UPDATE_AGENT_STATE_FAILED", msg: "Amazon Connect did not answer in time; the agent state was not changed.",
      errorMessage: "Amazon Connect did not answer putAgentState 'Lunch' within 8000 ms" },
    { errorType: "UPDATE_AGENT_STATE_FAILED",
      errorMessage: "Amazon Connect accepted the request but no snapshot showed its effect within 8000 ms" },
  ];
  for (const error of timeouts) {
    assert.ok(isTimeout(error), error.errorMessage);
    const text = stateRequestErrorText(error);
    assert.match(text, /did not answer in time/);
    assert.match(text, /cannot tell whether the state changed/);
    assert.doesNotMatch(text, /not changed/);
  }
  const refused = { errorType: "UPDATE_AGENT_STATE_FAILED", errorMessage: "putAgentState 'Lunch' failed: AccessDenied",
    msg: "Amazon Connect refused the state change." };
  assert.equal(isTimeout(refused), false);
  assert.equal(stateRequestErrorText(refused), "Amazon Connect refused the state change.");
});

test("a state request in flight blocks the other state buttons, mute blocks unmute", () => {
  assert.deepEqual([...blockedButtons(["logout"])].sort(), ["cancelNext", "logout", "notReady", "ready"]);
  assert.deepEqual([...blockedButtons(["mute"])].sort(), ["mute", "unmute"]);
  assert.deepEqual([...blockedButtons([])], []);
});
