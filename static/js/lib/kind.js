/**
 * Helpers for message kinds (`"channel/topic/subtopic"`) and envelopes.
 *
 * The names themselves (kind constants, error types, close codes) are
 * generated from schemas/ into names.js: import them from there, never spell
 * them by hand.
 * @module lib/kind
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

/** True for an event: a frame that carries `message` (and is not an error). */
export function isEvent(envelope) {
  return Boolean(envelope) && !isError(envelope) && "message" in envelope;
}

/** True for a request: neither an error nor an event (it carries `data`, if anything). */
export function isRequest(envelope) {
  return Boolean(envelope) && !isError(envelope) && !("message" in envelope);
}
