/**
 * The screen pop's two decisions, without the DOM: which call event pops
 * (a ringing inbound call), and the CRM URL built from a template and the
 * call's `CallVariables`. Pure functions, tested with node:test.
 * @module pages/screenpop-url
 */

/** `{Name}`: a placeholder for the contact attribute `Name`. */
const PLACEHOLDER = /\{([A-Za-z0-9_.-]+)\}/g;

/**
 * Whether this call should pop the CRM: an inbound call that rings
 * (calls.md: `event` `connecting`, `CallType` `inbound`).
 * @param {object} call `message.call` of an InboundCallStateChange event
 */
export function isRingingInbound(call) {
  return Boolean(call) && call.event === "connecting" && call.CallType === "inbound";
}

/**
 * Fill `template` with the call's variables. Each `{Name}` becomes the value
 * of attribute `Name`, URL-encoded (`encodeURIComponent`: a caller's `+` becomes
 * `%2B`, so the CRM reads a `+` and not a space, and a `/`, `?` or `&` in a value
 * cannot change the URL's shape); a name the call lacks
 * becomes empty and is listed in `missing`. The result must be an absolute
 * http: or https: URL, or nothing is opened.
 * @param {string} template e.g. "https://crm.example.com/customers/{CustomerId}"
 * @param {Record<string, string>} variables the call's CallVariables
 * @returns {{ok: true, url: string, missing: string[]} | {ok: false, problem: string, missing: string[]}}
 */
export function fillTemplate(template, variables = {}) {
  const missing = [];
  const filled = String(template ?? "").replace(PLACEHOLDER, (_, name) => {
    if (!Object.hasOwn(variables, name)) {
      if (!missing.includes(name)) missing.push(name);
      return "";
    }
    return encodeURIComponent(String(variables[name]));
  });
  let url;
  try {
    url = new URL(filled);
  } catch {
    return { ok: false, problem: `not an absolute URL: ${filled}`, missing };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    // A javascript: or data: "URL" would run code instead of opening a page.
    return { ok: false, problem: `only http: and https: URLs are opened, not ${url.protocol}`, missing };
  }
  return { ok: true, url: url.href, missing };
}
