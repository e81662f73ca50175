/** TypeScript declarations of kind.js (hand-written; keep in step with it). */

/** The three names of a kind. */
export interface KindName {
  channel: string;
  topic: string;
  subtopic: string;
}

/** Split `"Amazon/Agent/SetNotReady"` into its three names; a TypeError for anything else. */
export declare function parseKind(kind: string): KindName;
/** The kind an envelope names, as `"channel/topic/subtopic"`, or null. */
export declare function kindOf(envelope: unknown): string | null;
/** True for `<channel>/Error/ApiError`, whatever the channel. */
export declare function isError(envelope: unknown): boolean;
/** True for an event: a frame that carries `message` (and is not an error). */
export declare function isEvent(envelope: unknown): boolean;
/** True for a request: neither an error nor an event. */
export declare function isRequest(envelope: unknown): boolean;
