/**
 * Where a page gets its settings: `window.CONNECT_BRIDGE_CONFIG` set by the
 * host page, or the query string.
 *
 * A link is easy to forge, and a forged `?hub=wss://elsewhere` would send the
 * agent's token and state to someone else's server. So when the host page
 * sets a config object, the query string is ignored unless that object says
 * `allowQuery: true`. Without a config object (local demo, tests) the query
 * string is all there is.
 * @module lib/page-config
 */

/** Query keys and the config keys they fill. */
const QUERY_KEYS = {
  hub: "hubUrl",
  token: "token",
  agent: "agent",
  source: "source",
  ccpUrl: "ccpUrl",
  region: "region",
  emulate: "emulate",
  callTimeout: "callTimeoutMs",
  requestTimeout: "requestTimeoutMs",
  state: "initialState",
  latency: "latencyMs",
  refresh: "refreshMs",
  name: "name",
  template: "template", // screenpop.html: the CRM URL template
  // wallboard.html (a supervisor): the agents to follow on an open hub ("*" or "a,b"),
  // whether to ask for control there, the not-ready limit in seconds, and for the
  // benchmark, batching per frame (on unless 0) and the frame-timing probe.
  agents: "agents",
  control: "control",
  notReadyLimit: "notReadyLimitS",
  batch: "batch",
  perf: "perf",
};

const NUMBER_KEYS = new Set(["callTimeoutMs", "requestTimeoutMs", "latencyMs", "refreshMs", "notReadyLimitS"]);
const BOOLEAN_KEYS = new Set(["emulate", "control", "batch", "perf"]);

/** The hub on the same host and port as the page, over ws: or wss: to match. */
export function defaultHubUrl(location = globalThis.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function convert(key, value) {
  if (NUMBER_KEYS.has(key)) {
    const number = Number(value);
    return Number.isFinite(number) && number >= 0 ? number : undefined;
  }
  if (BOOLEAN_KEYS.has(key)) return value === "" || value === "1" || value === "true" || value === true;
  return value;
}

/**
 * Merge the settings for this page.
 * @param {object} [options]
 * @param {string} [options.search] the query string (defaults to location.search)
 * @param {object} [options.config] the host page's object (defaults to window.CONNECT_BRIDGE_CONFIG)
 * @param {object} [options.defaults]
 * @returns {object} settings: hubUrl, token, agent, ccpUrl, emulate, callTimeoutMs, ...
 */
export function readPageConfig({ search = globalThis.location?.search ?? "",
  config = globalThis.CONNECT_BRIDGE_CONFIG, defaults = {} } = {}) {
  const settings = { hubUrl: globalThis.location ? defaultHubUrl() : undefined, ...defaults };
  const useQuery = !config || config.allowQuery === true;
  if (config) {
    for (const [key, value] of Object.entries(config)) {
      if (value !== undefined && value !== null) settings[key] = convert(key, value) ?? settings[key];
    }
  }
  if (useQuery) {
    const params = new URLSearchParams(search);
    for (const [queryKey, key] of Object.entries(QUERY_KEYS)) {
      if (!params.has(queryKey)) continue;
      // With allowQuery the host page's own values still win over the link's.
      if (config && config[key] !== undefined) continue;
      const value = convert(key, params.get(queryKey));
      if (value !== undefined) settings[key] = value;
    }
  }
  return settings;
}
