// API tokens: `ingot_` + 32 random bytes in base64url (43 characters). Only the SHA-256 of a
// token is stored; a fast hash is enough because the token has 256 bits of entropy (nothing to
// brute-force, unlike a password), and it lets the lookup be an index hit.
import { createHash, randomBytes } from 'node:crypto';
import { AGENT_TOKEN_PATTERN } from '../../model/agent-protocol.js';

export const TOKEN_PREFIX = 'ingot_';
/** Exactly the shape generateToken produces: anything else is refused before any lookup. */
export const TOKEN_PATTERN = /^ingot_[A-Za-z0-9_-]{43}$/;

export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** API tokens (`ingot_…`) and one-boot agent tokens (`ingotagent_…`, minted by src/conductor/agent-queue.ts). */
export function isWellFormedToken(token: string): boolean {
  return TOKEN_PATTERN.test(token) || AGENT_TOKEN_PATTERN.test(token);
}

/** Lower-case hex SHA-256, the form stored in StoredToken.hash. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
