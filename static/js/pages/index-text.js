/**
 * What the landing page says on a secured hub: for each page, the command that
 * prints a token and the address to open with it. Pure (no DOM), so node:test
 * checks it (tests/js/index-text.test.js).
 * @module pages/index-text
 */

/**
 * Quote a value for a POSIX shell when it needs it (an agent name is free text).
 * @param {string} value
 */
export function shellWord(value) {
  return /^[A-Za-z0-9_.@+-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * The token command and the address of each page, for `agent`.
 * @param {string} agent the agent's login name
 * @returns {{ccp: {command: string, url: string}, widget: {command: string, url: string},
 *   wallboard: {command: string, url: string}}}
 */
export function securedPageHelp(agent) {
  const who = shellWord(agent);
  const query = encodeURIComponent(agent);
  return {
    ccp: {
      command: `connect-bridge token --agent ${who} --role provider --ttl 28800`,
      url: `ccp.html?emulate=1&agent=${query}&token=…`,
    },
    widget: {
      command: `connect-bridge token --agent ${who} --role app --ttl 3600`,
      url: "widget.html?token=…",
    },
    wallboard: {
      command: "connect-bridge token --role supervisor --name lead1 --agents '*' --control",
      url: "wallboard.html?token=…",
    },
  };
}
