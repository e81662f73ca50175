// What the landing page (static/js/pages/index-text.js) and the softphone page
// (static/js/pages/ccp-text.js) say on a secured hub: the token to get and where it goes.
import { test } from "node:test";
import assert from "node:assert/strict";

import { securedPageHelp, shellWord } from "../../static/js/pages/index-text.js";
import { ccpRefusalText } from "../../static/js/pages/ccp-text.js";

test("each page names the command that prints its token and the address to open", () => {
  const help = securedPageHelp("agent9");
  assert.equal(help.ccp.command, "connect-bridge token --agent agent9 --role provider --ttl 28800");
  assert.equal(help.ccp.url, "ccp.html?emulate=1&agent=agent9&token=…");
  assert.equal(help.widget.command, "connect-bridge token --agent agent9 --role app --ttl 3600");
  assert.equal(help.widget.url, "widget.html?token=…");
  assert.match(help.wallboard.command, /^connect-bridge token --role supervisor .*--agents '\*' --control$/);
  assert.equal(help.wallboard.url, "wallboard.html?token=…");
});

test("an agent name is quoted for the shell when it needs it", () => {
  assert.equal(shellWord("jdoe@example.com"), "jdoe@example.com");
  assert.equal(shellWord("agent 9"), "'agent 9'");
  assert.equal(shellWord("o'neil"), "'o'\\''neil'");
  assert.equal(securedPageHelp("agent 9").ccp.url, "ccp.html?emulate=1&agent=agent%209&token=…");
});

test("a softphone page refused for want of a token says which token and where to put it", () => {
  const refused = { errorType: "NOT_AUTHENTICATED", errorMessage: "this hub needs a token", msg: "You are not signed in to the bridge." };
  const text = ccpRefusalText(refused, { token: false, agent: "agent9" });
  assert.match(text, /^This bridge is secured: the softphone page needs a provider token\./);
  assert.match(text, /"connect-bridge token --agent agent9 --role provider"/);
  assert.match(text, /&token=<the token>/);
  assert.doesNotMatch(text, /bug/);
  assert.equal(ccpRefusalText({ ...refused, errorMessage: "token has expired." }, { token: true, agent: "agent9" }),
    "The bridge refused this page's token: token has expired. Get a new provider token "
    + "(\"connect-bridge token --agent agent9 --role provider\") and open the page with it.");
  assert.equal(ccpRefusalText({ errorType: "CONNECT_FAILED" }, { token: false, agent: "agent9" }), null);
  assert.equal(ccpRefusalText(null, { token: false, agent: "agent9" }), null);
});
