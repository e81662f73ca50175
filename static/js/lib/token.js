/**
 * Reading a bridge token in the browser. Only to catch a wrong token early
 * (a token for another agent than the one logged in to the CCP); the hub
 * alone checks signatures and expiry.
 * @module lib/token
 */

/**
 * The agent a bridge token names (its `sub` claim), read without checking the
 * signature (the hub does that), or null when it is not a readable JWT.
 */
export function tokenSubject(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = payload + "=".repeat((4 - (payload.length % 4)) % 4);
    const claims = JSON.parse(atob(padded));
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch {
    return null;
  }
}
