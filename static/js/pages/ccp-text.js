/**
 * What ccp.html says when the hub will not let its provider in: in words,
 * with what to do. Pure (no DOM), so node:test checks it (tests/js/ccp-text.test.js).
 * @module pages/ccp-text
 */

import { ErrorType } from "../lib/names.js";
import { shellWord } from "./index-text.js";

/**
 * The page's message when the client closed for good after the hub refused
 * its Hello, or null to keep the error's own `msg`. A secured hub refuses a
 * page opened without a token: that is how the page was opened, not a bug in
 * the provider, so it says which token to get and where to put it.
 * @param {{errorType?: string, errorMessage?: string, msg?: string}|null} error the client's closeError
 * @param {{token: boolean, agent: string}} how the page was opened (with a token or not) and the
 *   agent the CCP says is logged in
 * @returns {string|null}
 */
export function ccpRefusalText(error, { token, agent }) {
  if (!error || error.errorType !== ErrorType.NOT_AUTHENTICATED) return null;
  const command = `connect-bridge token --agent ${shellWord(agent)} --role provider`;
  if (!token) {
    return "This bridge is secured: the softphone page needs a provider token. "
      + `Get one with "${command}" (run it where the hub's BRIDGE_SECRET is set), then open this page `
      + "with &token=<the token> added to its address, or set window.CONNECT_BRIDGE_CONFIG.token.";
  }
  const cause = String(error.errorMessage || error.msg || "no reason given").trim().replace(/[.\s]+$/, "");
  return `The bridge refused this page's token: ${cause}. Get a new provider token ("${command}") `
    + "and open the page with it.";
}
