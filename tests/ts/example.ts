// An app written against the declarations: it must type-check (tests/test_typescript.py).
import { BridgeClient, BridgeError, ConnectionState } from "../../static/js/lib/client.js";
import type { Position } from "../../static/js/lib/client.js";
import type { RequestData, SetAgentStateEvent } from "../../static/js/lib/kinds.js";
import { ErrorType, SET_AGENT_STATE, SET_NOT_READY, SET_READY } from "../../static/js/lib/names.js";
import { parseKind } from "../../static/js/lib/kind.js";
import { tokenExpiry } from "../../static/js/lib/token.js";

const bus = new BridgeClient({ url: "ws://127.0.0.1:8765/ws", agent: "agent1", source: "example" });

bus.addStateListener((state, detail) => {
  if (state === ConnectionState.RECONNECTING) console.log(`retrying in ${detail.retryInMs} ms`);
});

bus.on(SET_AGENT_STATE, (event: SetAgentStateEvent) => {
  const data = event.message.data;
  const reason: string | undefined = data.reasonCode?.id;
  console.log(event.message.event, data.state, data.type, data.muted, reason, event.retained === true);
});

bus.on("*", (envelope) => console.log(envelope.channel, envelope.topic, envelope.subtopic, envelope.agent));

async function takeABreak(): Promise<void> {
  bus.start();
  const welcome = await bus.ready(5000);
  if (welcome.role !== "supervisor") console.log(welcome.agent, welcome.providerConnected);
  console.log(welcome.connectionId, bus.state, bus.agent, bus.providerConnected);
  const breakData: RequestData<typeof SET_NOT_READY> = { ReasonCodeId: "Break" };
  try {
    const answer = await bus.request(SET_NOT_READY, breakData, { timeout: 3000 });
    console.log(answer.replyTo);
    await bus.request(SET_READY);
    await bus.request("Amazon/Agent/SetNotReady", { ReasonCodeId: "Lunch" });
  } catch (err) {
    if (err instanceof BridgeError && err.errorType === ErrorType.AGENT_STATE_NOT_FOUND) console.log(err.msg);
  }
  const state = await bus.waitFor(SET_AGENT_STATE, (event) => event.message.data.state === "Not_Ready");
  console.log(state.message.rules?.ButtonStates.count, bus.last(SET_AGENT_STATE)?.message.event);
  console.log(parseKind(SET_NOT_READY).subtopic, tokenExpiry("a.b.c"));
  bus.close();
}

void takeABreak();

// Recovery: start from a position kept from an earlier visit; read what came back.
const kept: Position | undefined = bus.positions["agent1"];
const again = new BridgeClient({ url: "ws://127.0.0.1:8765/ws", agent: "agent1", recover: kept });
again.on(SET_AGENT_STATE, (event) => console.log(event.offset, event.epoch, event.recovered === true));
const floor = new BridgeClient({ url: "ws://127.0.0.1:8765/ws", role: "supervisor", agents: ["*"],
  recover: { agent7: { epoch: "k3v9Xq2bT0c", offset: 12 } } });
const recovered = floor.recovered;
if (recovered !== null && typeof recovered === "object") console.log(recovered["agent7"] === true);
console.log(again.recovered === true, again.duplicatesDropped, floor.positions["agent7"]?.offset);
