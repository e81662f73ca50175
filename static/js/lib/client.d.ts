/**
 * TypeScript declarations of client.js, the browser client (hand-written; keep in step with it).
 *
 * Kinds named by a literal (`SET_NOT_READY` from names.js, or the string
 * itself) type their `data` and their events from kinds.d.ts, which is
 * generated from the schemas; any other kind takes a plain object.
 */

import type { ErrorEnvelope, EventKind, Events, RequestData, RequestKind, WelcomeEvent } from "./kinds.js";
import type { KindName } from "./kind.js";

/** Any envelope as received: a supervisor's frames also carry the agent's name in `agent`. */
export interface Envelope {
  channel: string;
  topic: string;
  subtopic: string;
  agent?: string;
  /** The event's place in its agent's stream (events only). */
  offset?: number;
  /** The agent's stream the offset counts in. */
  epoch?: string;
  [key: string]: unknown;
}

/** Where an event stands in its agent's stream: what `positions` gives and `recover` takes. */
export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

/** An event of `K` as a handler gets it: its envelope, plus `agent` for a supervisor. */
export type EventOf<K extends string> = K extends EventKind ? Events[K] & { agent?: string } : Envelope;
/** What a request of `K` carries as `data`: typed for the kinds of the schemas. */
export type DataOf<K extends string> = K extends RequestKind ? RequestData<K> : object | null;

/** Error types the client raises itself; they never travel on the wire. */
export declare const ClientErrorType: Readonly<{
  CONNECTION_LOST: "CONNECTION_LOST";
  CONNECT_FAILED: "CONNECT_FAILED";
  CLIENT_CLOSED: "CLIENT_CLOSED";
  REPLACED: "REPLACED";
}>;

/** Any failure the bus reports, on the wire (`local` false) or in the client (`local` true). */
export declare class BridgeError extends Error {
  constructor(
    data: { errorType: string; errorMessage?: string; msg?: string; request?: KindName | null },
    envelope?: ErrorEnvelope | Envelope | null,
    options?: { local?: boolean },
  );
  name: "BridgeError";
  /** True for errors the client raised itself rather than received. */
  local: boolean;
  /** The stable code: an `ErrorType` of names.js or a `ClientErrorType`. */
  errorType: string;
  /** The technical cause ("" when none). */
  errorMessage: string;
  /** A sentence fit to show a person. */
  msg: string;
  /** The kind of the failed request when known. */
  request: KindName | null;
  /** The error frame as received; null for errors the client raised. */
  envelope: ErrorEnvelope | Envelope | null;
  /** The agent the error is about (frames to supervisors carry it), else null. */
  agent: string | null;
}

/** Connection states, the Python client's names. */
export declare const ConnectionState: Readonly<{
  IDLE: "idle";
  CONNECTING: "connecting";
  OPEN: "open";
  RECONNECTING: "reconnecting";
  CLOSED: "closed";
}>;
export type ConnectionStateName = (typeof ConnectionState)[keyof typeof ConnectionState];

/** Timing defaults in ms. */
export declare const DEFAULTS: Readonly<{
  requestTimeout: 15000;
  connectTimeout: 10000;
  backoffInitial: 500;
  backoffMax: 30000;
  stableAfter: 10000;
}>;

/** The delay in ms before reconnect attempt `attempt` (from 0), full jitter. */
export declare function backoffDelay(attempt: number, initial?: number, max?: number, random?: () => number): number;
/** A unique request id. */
export declare function newId(): string;

/** The Welcome's message: an app's or provider's (`agent`, `providerConnected`), or a supervisor's. */
export type Welcome = WelcomeEvent["message"];

/** What a state listener and the "state" event get. */
export interface StateDetail {
  state: ConnectionStateName;
  previous: ConnectionStateName;
  attempt?: number;
  retryInMs?: number;
  code?: number | null;
  reason?: string;
  welcome?: Welcome;
  error?: BridgeError | null;
}

/** What the "retry" event carries. */
export interface RetryDetail {
  attempt: number;
  retryInMs: number;
  code: number | null;
  reason: string;
  error: BridgeError | null;
}

export interface BridgeClientOptions {
  /** The hub's WebSocket URL, e.g. ws://host:port/ws. */
  url: string;
  /** A signed token, or a function giving a fresh one before every connection (and to refresh). */
  token?: string | (() => string | Promise<string>);
  /** The agent's name (open hub only; apps and providers). */
  agent?: string;
  role?: "app" | "provider" | "supervisor";
  /** A supervisor on an open hub: the agents to follow, or ["*"]. */
  agents?: string[];
  /** A supervisor on an open hub: ask for the right to send requests. */
  control?: boolean;
  /** This app's name in `source` (1 to 64 characters); default "browser". */
  source?: string;
  /** ms before a request gives up (default 15000). */
  requestTimeout?: number;
  /** ms to connect and get Welcome before trying again (default 10000). */
  connectTimeout?: number;
  reconnect?: boolean;
  backoffInitial?: number;
  backoffMax?: number;
  stableAfter?: number;
  /**
   * A position to start from on the first connection: an app's `{epoch, offset}`, a
   * supervisor's `{agent: {epoch, offset}}` (what `positions` gives). Not for providers.
   */
  recover?: Position | Readonly<Record<string, Position>>;
  /** For tests. */
  WebSocket?: typeof WebSocket;
  /** For tests: the backoff's random source. */
  random?: () => number;
}

export declare class BridgeClient extends EventTarget {
  /** Give either `token` (a secured hub) or `agent` (an open hub); a supervisor `token` or `agents`. */
  constructor(options: BridgeClientOptions);
  url: string;
  role: "app" | "provider" | "supervisor";
  source: string;
  requestTimeout: number;
  connectTimeout: number;
  reconnect: boolean;
  backoffInitial: number;
  backoffMax: number;
  stableAfter: number;

  /** The current connection state. */
  get state(): ConnectionStateName;
  /** The last Welcome's message, or null. */
  get welcome(): Welcome | null;
  /** The agent this client joined (from Welcome), or the one it asked for; null for a supervisor. */
  get agent(): string | null;
  /** A supervisor's scope, or null. */
  get agents(): string[] | null;
  /** Whether a supervisor may send requests, or null for other roles. */
  get control(): boolean | null;
  /** The hub's id for the current (or last) connection, or null. */
  get connectionId(): string | null;
  /** Whether the agent's provider is connected; null before it is known, and for a supervisor. */
  get providerConnected(): boolean | null;
  /** Why the client closed for good, when it was not close(). */
  get closeError(): BridgeError | null;
  /** How many connections have been made. */
  get connections(): number;
  /**
   * Whether the current (or last) connection recovered the missed events: null when it asked
   * for none; an app's a boolean; a supervisor's one boolean per agent asked.
   */
  get recovered(): boolean | Readonly<Record<string, boolean>> | null;
  /** The last position seen per agent (a frozen copy): what the next reconnect recovers from. */
  get positions(): Readonly<Record<string, Position>>;
  /** Events dropped because their position had been delivered already. */
  get duplicatesDropped(): number;

  /** Call `listener` on every change of `state`; returns a function that removes it. */
  addStateListener(listener: (state: ConnectionStateName, detail: StateDetail) => void): () => void;
  /** Open the connection (once); it comes back by itself after drops until close(). */
  start(): this;
  /** Close for good; requests in flight reject with CLIENT_CLOSED. */
  close(reason?: string): void;
  /** Resolves with the Welcome message once open; rejects with closeError, or CONNECT_FAILED after `timeout` ms. */
  ready(timeout?: number): Promise<Welcome>;

  /**
   * Send a request and wait for the event that answers it; rejects with a BridgeError.
   * `options.agent`: a supervisor's target agent.
   */
  request<K extends string>(
    kind: K,
    data?: DataOf<K>,
    options?: { timeout?: number; id?: string; agent?: string },
  ): Promise<Envelope>;
  /** Call `handler` for every event of `kind`, or of every kind with "*"; returns a remover. */
  on<K extends string>(kind: K, handler: (envelope: EventOf<K>) => void): () => void;
  /** Call `handler` for every error frame that answers no pending request. */
  onError(handler: (error: BridgeError) => void): () => void;
  /** The latest event of `kind` on the current connection, or null; a supervisor names the agent. */
  last<K extends string>(kind: K, agent?: string): EventOf<K> | null;
  /** The first event of `kind` for which `predicate` holds; rejects with a TimeoutError after `timeout` ms. */
  waitFor<K extends string>(
    kind: K,
    predicate?: (envelope: EventOf<K>) => boolean,
    options?: { timeout?: number; current?: boolean },
  ): Promise<EventOf<K>>;

  /** Providers: call `handler` for every request routed to this provider. */
  onRequest(handler: (request: Envelope & { source: string; id?: string; data?: unknown }) => void): () => void;
  /** Providers: send an event; false when not connected. */
  publish<K extends string>(
    kind: K,
    message: K extends EventKind ? Events[K]["message"] : object,
    options?: { replyTo?: string },
  ): boolean;
  /** Providers: answer the request envelope `to` with an error; false when not connected. */
  sendError(to: Envelope, errorType: string, errorMessage: string, options?: { msg?: string }): boolean;
  /** Send one envelope as it is; false when not connected. */
  send(envelope: object): boolean;
}
