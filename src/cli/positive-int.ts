// Whole-number flags (--limit, --after-seq), bounded so a typo cannot ask the server for
// everything at once.
import { CliError } from './cli-error.js';

export function parseWholeNumber(text: string, flag: string, max: number, min = 1): number {
  const n = /^[0-9]+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new CliError(`${flag} ${text}: use a whole number from ${min} to ${max}`);
  return n;
}
