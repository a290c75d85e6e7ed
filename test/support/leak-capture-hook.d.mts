// Types for leak-capture-hook.mjs (plain JavaScript so child processes can --import it).
export declare const MIN_SECRET_LENGTH: number;
/** Records a value that must never appear in captured output (no-op outside a capturing run). */
export declare function recordSecret(kind: string, value: string): void;
/** Appends text that must not contain a known value (no-op outside a capturing run). */
export declare function recordOutput(channel: string, text: string): void;
