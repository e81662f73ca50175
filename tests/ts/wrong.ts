// Deliberately wrong: tsc must refuse each marked line (tests/test_typescript.py).
import { BridgeClient } from "../../static/js/lib/client.js";
import { SET_AGENT_STATE, SET_NOT_READY } from "../../static/js/lib/names.js";

const bus = new BridgeClient({ url: "ws://127.0.0.1:8765/ws", agent: "agent1" });
void bus.request(SET_NOT_READY, { ReasonCodeId: 5 }); // WRONG: ReasonCodeId is a string
void bus.request(SET_NOT_READY, { Reason: "Break" }); // WRONG: no such member
bus.on(SET_AGENT_STATE, (event) => {
  const muted: string = event.message.data.muted; // WRONG: muted is a boolean
  console.log(muted);
});
