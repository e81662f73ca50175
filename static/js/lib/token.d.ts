/** TypeScript declarations of token.js (hand-written; keep in step with it). */

/** The agent a bridge token names (its `sub` claim), read without checking the signature, or null. */
export declare function tokenSubject(token: string): string | null;
/** When a bridge token expires (its `exp` claim), in ms since the epoch, or null. */
export declare function tokenExpiry(token: string): number | null;
