// The shape of an API token, shared by the server (which mints and checks tokens) and the CLI
// (`ingot token generate`, for a bootstrap token chosen before the first start): `ingot_` + 32
// random bytes in base64url (43 characters), 256 bits of entropy.
import { randomBytes } from 'node:crypto';

export const TOKEN_PREFIX = 'ingot_';
/** Exactly the shape generateToken produces: anything else is refused before any lookup. */
export const TOKEN_PATTERN = /^ingot_[A-Za-z0-9_-]{43}$/;

export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}
