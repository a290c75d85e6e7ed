// The error a body scanner throws: where in the text (a UTF-16 offset, or a byte offset for
// undecodable bytes) and why. body-parsers.ts turns it into a 400 naming line and column.

export class BodyScanError extends Error {
  /** Offset in the decoded text (or in the bytes, when `inBytes`). */
  readonly offset: number;
  readonly inBytes: boolean;
  constructor(reason: string, offset: number, inBytes = false) {
    super(reason);
    this.name = 'BodyScanError';
    this.offset = offset;
    this.inBytes = inBytes;
  }
}

/**
 * Bounds every body is held to before a parser builds anything from it. The parsers of the
 * JSON and YAML libraries recurse once per nesting level, so an unbounded document is a way
 * to exhaust the stack (and, for YAML, the heap); these numbers are far above what any
 * manifest or agent report needs (a manifest nests about 6 levels and holds a few hundred nodes).
 */
export interface BodyBounds {
  /** Deepest nesting of arrays/objects (YAML: sequences/mappings, block or flow). */
  maxDepth: number;
  /** Most values (scalars and collections) in one body. */
  maxNodes: number;
  /** Most YAML aliases (`*name`) in one body; each may expand to a whole subtree. */
  maxAliases: number;
}

export const DEFAULT_BODY_BOUNDS: BodyBounds = { maxDepth: 64, maxNodes: 100_000, maxAliases: 20 };
