// API tokens: `ingot_` + 32 random bytes in base64url (43 characters). Only the SHA-256 of a
// token is stored; a fast hash is enough because the token has 256 bits of entropy (nothing to
// brute-force, unlike a password), and it lets the lookup be an index hit.
import { createHash } from 'node:crypto';
import { AGENT_TOKEN_PATTERN } from '../../model/agent-protocol.js';
import { generateToken, TOKEN_PATTERN, TOKEN_PREFIX } from '../../model/api-token.js';

export { generateToken, TOKEN_PATTERN, TOKEN_PREFIX };

/** API tokens (`ingot_…`) and one-boot agent tokens (`ingotagent_…`, minted by src/conductor/agent-queue.ts). */
export function isWellFormedToken(token: string): boolean {
  return TOKEN_PATTERN.test(token) || AGENT_TOKEN_PATTERN.test(token);
}

/** Lower-case hex SHA-256, the form stored in StoredToken.hash. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
