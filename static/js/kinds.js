/**
 * Message kinds of the connect-bridge wire protocol, version 1.
 *
 * One place spells every name, so a typo shows up as an undefined import
 * instead of a frame the hub answers with UNKNOWN_MESSAGE.
 * @module kinds
 */

/** @typedef {{channel: string, topic: string, subtopic: string}} KindName */

/**
 * Split `"Amazon/Agent/SetNotReady"` into its three names.
 * @param {string} kind
 * @returns {KindName}
 */
export function parseKind(kind) {
  const parts = String(kind).split("/");
  if (parts.length !== 3 || parts.some((part) => part === "")) {
    throw new TypeError(`a kind is channel/topic/subtopic, not ${JSON.stringify(kind)}`);
  }
  const [channel, topic, subtopic] = parts;
  return { channel, topic, subtopic };
}

/**
 * The kind an envelope names, as `"channel/topic/subtopic"`, or null.
 * @param {any} envelope
 * @returns {string|null}
 */
export function kindOf(envelope) {
  if (!envelope || typeof envelope !== "object") return null;
  const { channel, topic, subtopic } = envelope;
  if (typeof channel !== "string" || typeof topic !== "string" || typeof subtopic !== "string") {
    return null;
  }
  return `${channel}/${topic}/${subtopic}`;
}

/** True for `<channel>/Error/ApiError`, whatever the channel. */
export function isError(envelope) {
  return Boolean(envelope) && envelope.topic === "Error" && envelope.subtopic === "ApiError";
}

export const HELLO = "Bridge/Session/Hello";
export const WELCOME = "Bridge/Session/Welcome";
export const PROVIDER_STATUS = "Bridge/Session/ProviderStatus";
export const REPLACED = "Bridge/Session/Replaced";

export const SET_NOT_READY = "Amazon/Agent/SetNotReady";
export const SET_READY = "Amazon/Agent/SetReady";
export const LOGOUT = "Amazon/Agent/Logout";
export const MUTE = "Amazon/Agent/Mute";
export const UNMUTE = "Amazon/Agent/Unmute";
export const GET_STATES = "Amazon/Agent/GetStates";
export const STATE_SYNC = "Amazon/Agent/StateSync";
export const SET_AGENT_STATE = "Amazon/Agent/SetAgentState";

/** WebSocket close codes the hub uses (protocol README, "close code"). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  REPLACED: 4001,
  TOO_SLOW: 4008,
});
