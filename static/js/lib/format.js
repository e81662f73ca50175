/**
 * Small formatting helpers shared by the pages.
 * @module lib/format
 */

/**
 * Time in state as a clock: "0:07", "12:45", "1:02:09". A negative span (the
 * CCP's clock a little ahead of this machine's) shows as zero, not as nonsense.
 * @param {number} ms
 */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const ss = String(seconds).padStart(2, "0");
  if (hours > 0) return `${hours}:${String(minutes).padStart(2, "0")}:${ss}`;
  return `${minutes}:${ss}`;
}

/** The coarse state as a person reads it. */
export function coarseLabel(state) {
  return { Ready: "Ready", Not_Ready: "Not ready", Logout: "Logged out" }[state] || "Unknown";
}

/** How the pages name the client's connection state ("Bridge: connected"). */
export function hubStatusText(state) {
  const text = {
    idle: "not started", connecting: "connecting", open: "connected",
    reconnecting: "reconnecting", closed: "disconnected",
  }[state];
  return `Bridge: ${text || state}`;
}
