/** The small shared modules of static/js/lib/: kinds, formatting, tokens, page settings. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { coarseLabel, formatDuration, hubStatusText } from "../../static/js/lib/format.js";
import { isError, isEvent, isRequest, kindOf, parseKind } from "../../static/js/lib/kind.js";
import { CloseCode, ErrorType, HUMAN_MESSAGES, SET_NOT_READY } from "../../static/js/lib/names.js";
import { readPageConfig } from "../../static/js/lib/page-config.js";
import { tokenSubject } from "../../static/js/lib/token.js";

test("kinds: parse, name and classify envelopes", () => {
  assert.deepEqual(parseKind(SET_NOT_READY), { channel: "Amazon", topic: "Agent", subtopic: "SetNotReady" });
  for (const bad of ["Amazon/Agent", "Amazon//SetNotReady", "a/b/c/d", ""]) {
    assert.throws(() => parseKind(bad), TypeError, bad);
  }
  assert.equal(kindOf({ channel: "Amazon", topic: "Agent", subtopic: "SetReady" }), "Amazon/Agent/SetReady");
  assert.equal(kindOf({ channel: "Amazon", topic: "Agent" }), null);
  assert.equal(kindOf("text"), null);
  const error = { channel: "Amazon", topic: "Error", subtopic: "ApiError", data: {} };
  const event = { channel: "Amazon", topic: "Agent", subtopic: "SetAgentState", message: {} };
  const request = { channel: "Amazon", topic: "Agent", subtopic: "SetReady", source: "app", id: "1" };
  assert.deepEqual([isError(error), isEvent(error), isRequest(error)], [true, false, false]);
  assert.deepEqual([isError(event), isEvent(event), isRequest(event)], [false, true, false]);
  assert.deepEqual([isError(request), isEvent(request), isRequest(request)], [false, false, true]);
});

test("the generated names: close codes and a sentence for every error type", () => {
  assert.deepEqual({ ...CloseCode }, { NORMAL: 1000, GOING_AWAY: 1001, POLICY_VIOLATION: 1008,
    MESSAGE_TOO_BIG: 1009, REPLACED: 4001, TOKEN_EXPIRED: 4003, TOO_SLOW: 4008 });
  assert.deepEqual(Object.keys(HUMAN_MESSAGES).sort(), Object.keys(ErrorType).sort());
});

test("hubStatusText names every connection state", () => {
  assert.equal(hubStatusText("open"), "Bridge: connected");
  assert.equal(hubStatusText("reconnecting"), "Bridge: reconnecting");
  assert.equal(hubStatusText("something-new"), "Bridge: something-new");
});

test("formatDuration and coarseLabel", () => {
  assert.equal(formatDuration(7_400), "0:07");
  assert.equal(formatDuration(765_000), "12:45");
  assert.equal(formatDuration(3_729_000), "1:02:09");
  assert.equal(formatDuration(-5_000), "0:00");
  assert.equal(coarseLabel("Not_Ready"), "Not ready");
  assert.equal(coarseLabel("Busy"), "Unknown");
});

test("tokenSubject reads sub without checking the signature", () => {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  assert.equal(tokenSubject(`${part({ alg: "HS256" })}.${part({ sub: "jdoe", role: "provider" })}.sig`), "jdoe");
  assert.equal(tokenSubject("not-a-jwt"), null);
  assert.equal(tokenSubject(`${part({})}.${part({ sub: 5 })}.sig`), null);
});

test("page settings: the query string, unless the host page set a config object", () => {
  const fromQuery = readPageConfig({ search: "?hub=ws://h/ws&agent=agent2&emulate=1&callTimeout=600",
    config: undefined });
  assert.equal(fromQuery.hubUrl, "ws://h/ws");
  assert.equal(fromQuery.agent, "agent2");
  assert.equal(fromQuery.emulate, true);
  assert.equal(fromQuery.callTimeoutMs, 600);

  const config = { hubUrl: "wss://bridge.example.com/ws", token: "t" };
  const locked = readPageConfig({ search: "?hub=wss://evil.example/ws&agent=x", config });
  assert.equal(locked.hubUrl, "wss://bridge.example.com/ws");
  assert.equal(locked.agent, undefined);

  const open = readPageConfig({ search: "?hub=wss://evil.example/ws&agent=x",
    config: { ...config, allowQuery: true } });
  assert.equal(open.hubUrl, "wss://bridge.example.com/ws", "the host page's own values win");
  assert.equal(open.agent, "x");
});

test("layers: lib imports only lib; provider and emulator only lib and themselves; all but pages load in Node",
  async () => {
    const { readdir, readFile } = await import("node:fs/promises");
    const path = await import("node:path");
    const root = new URL("../../static/js/", import.meta.url);
    const allowed = { lib: ["lib"], provider: ["lib", "provider"], emulator: ["lib", "emulator"],
      pages: ["lib", "provider", "emulator", "pages"] };
    assert.deepEqual((await readdir(root)).sort(), Object.keys(allowed).sort());
    for (const [folder, may] of Object.entries(allowed)) {
      for (const file of await readdir(new URL(`${folder}/`, root))) {
        const text = await readFile(new URL(`${folder}/${file}`, root), "utf8");
        for (const [, target] of text.matchAll(/^import[^;]*?from "([^"]+)";/gms)) {
          const layer = path.posix.normalize(`${folder}/${target}`).split("/")[0];
          assert.ok(may.includes(layer), `${folder}/${file} imports ${target}`);
        }
        // TypeScript declarations (lib/*.d.ts) obey the layers too, but only modules load.
        if (folder !== "pages" && file.endsWith(".js")) await import(new URL(`${folder}/${file}`, root));
      }
    }
  });
