/** The screen pop's decisions: which event pops, and the URL built from the template. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { fillTemplate, isRingingInbound } from "../../static/js/pages/screenpop-url.js";

function call(name) {
  const url = new URL(`../../../shared/protocol/samples/calls/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url)).message.call;
}

test("only a ringing inbound call pops", () => {
  const ringing = call("01-ringing.event.json");
  assert.equal(isRingingInbound(ringing), true);
  assert.equal(isRingingInbound(call("03-connected.event.json")), false);
  assert.equal(isRingingInbound({ ...ringing, CallType: "outbound" }), false, "an outbound dial does not");
  assert.equal(isRingingInbound(null), false);
});

test("the template is filled with the call's variables, URL-encoded", () => {
  const vars = call("01-ringing.event.json").CallVariables;
  assert.deepEqual(fillTemplate("https://crm.example.com/customers/{CustomerId}", vars),
    { ok: true, url: "https://crm.example.com/customers/C-20411", missing: [] });
  assert.deepEqual(fillTemplate("https://crm.example.com/search?phone={ANI}&why={Reason}", vars),
    { ok: true, url: "https://crm.example.com/search?phone=%2B15555550123&why=billing", missing: [] });
  // A value cannot change the URL's shape.
  const odd = fillTemplate("https://crm.example.com/c/{Id}?x=1", { Id: "../admin?y=2&z=#3" });
  assert.equal(odd.url, "https://crm.example.com/c/..%2Fadmin%3Fy%3D2%26z%3D%233?x=1");
});

test("unknown placeholders are left empty and reported", () => {
  const filled = fillTemplate("https://crm.example.com/c/{CustomerId}?t={Ticket}&u={Ticket}", { ANI: "+1" });
  assert.deepEqual(filled, { ok: true, url: "https://crm.example.com/c/?t=&u=", missing: ["CustomerId", "Ticket"] });
});

test("only absolute http(s) URLs are opened", () => {
  for (const template of ["javascript:alert({ANI})", "data:text/html,{ANI}", "/customers/{ANI}", "{ANI}", "", undefined]) {
    const filled = fillTemplate(template, { ANI: "+15555550123" });
    assert.equal(filled.ok, false, String(template));
    assert.match(filled.problem, /\S/);
  }
  assert.equal(fillTemplate("http://crm.local/{ANI}", { ANI: "1" }).ok, true);
});
