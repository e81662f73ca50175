/**
 * Reading a bridge token in the browser: to catch a wrong token early (a
 * token for another agent than the one logged in to the CCP) and to know when
 * to refresh it; the hub alone checks signatures and expiry.
 * @module lib/token
 */

/**
 * The agent a bridge token names (its `sub` claim), read without checking the
 * signature (the hub does that), or null when it is not a readable JWT.
 */
export function tokenSubject(token) {
  const claims = readClaims(token);
  return claims !== null && typeof claims.sub === "string" ? claims.sub : null;
}

/**
 * When a bridge token expires (its `exp` claim), in ms since the epoch, read
 * without checking the signature, or null. The client refreshes before then.
 */
export function tokenExpiry(token) {
  const claims = readClaims(token);
  return claims !== null && typeof claims.exp === "number" && Number.isFinite(claims.exp) ? claims.exp * 1000 : null;
}

function readClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = payload + "=".repeat((4 - (payload.length % 4)) % 4);
    const claims = JSON.parse(atob(padded));
    return claims !== null && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}
