// Bearer-token authentication (RFC 6750). The presented token is hashed before it is looked
// up, so lookup time depends on the hash, not on how many leading characters an attacker got
// right; the found hash is still compared with timingSafeEqual as a second guard.
import { timingSafeEqual } from 'node:crypto';
import { IngotError } from '../../model/errors.js';
import type { Store, StoredToken } from '../../store/store.js';
import type { Identity } from './policy.js';
import { hashToken, isWellFormedToken } from './tokens.js';
import { looksLikeJwt, type OidcVerifier } from './oidc.js';

/** lastUsedAt is a hint for operators ("is this token still used?"), not an audit trail: write it at most once a minute. */
const TOUCH_INTERVAL_MS = 60_000;

export interface AuthenticatorOptions {
  store: Store;
  now?: () => number;
  onTouchError?: (err: unknown) => void;
  /** Also accept OIDC JWTs (API listener only); without it a JWT is just a malformed token. */
  oidc?: OidcVerifier;
}

export interface Authenticator {
  /** Resolves the Authorization header to an identity, or throws 401 INGOT_ERR_UNAUTHENTICATED. */
  authenticate(authorization: string | undefined, expectedType: StoredToken['type']): Promise<Identity>;
}

function sameHash(stored: string, computed: string): boolean {
  const a = Buffer.from(stored, 'hex');
  const b = Buffer.from(computed, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A refused credential. `credentialId` is set when the server knows the token (it exists but
 * is revoked, expired or of the other listener's kind), so failures can be counted against
 * that token rather than against everyone sharing the caller's address.
 */
export class UnauthenticatedError extends IngotError {
  readonly credentialId: string | undefined;
  constructor(reason: string, credentialId?: string) {
    super('INGOT_ERR_UNAUTHENTICATED', `${reason}; send \`Authorization: Bearer <token>\` with a valid Ingot token (the first one is printed once by \`ingot server\` on first start)`);
    this.credentialId = credentialId;
  }
}

function unauthenticated(reason: string, credentialId?: string): UnauthenticatedError {
  return new UnauthenticatedError(reason, credentialId);
}

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { store } = options;
  const now = options.now ?? Date.now;
  const lastTouched = new Map<string, number>();

  return {
    async authenticate(authorization, expectedType) {
      if (!authorization) throw unauthenticated('no credentials were sent');
      const match = /^Bearer +(\S+) *$/i.exec(authorization);
      if (!match) throw unauthenticated('the Authorization header is not a Bearer token');
      const token = match[1]!;
      if (options.oidc && expectedType === 'api' && looksLikeJwt(token)) return options.oidc.verify(token);
      if (!isWellFormedToken(token)) throw unauthenticated('the token is malformed');
      const hash = hashToken(token);
      const found = await store.findTokenByHash(hash);
      if (!found || !sameHash(found.hash, hash)) {
        throw unauthenticated('the token is not known');
      }
      const at = now();
      if (found.revokedAt) throw unauthenticated('the token was revoked', found.id);
      if (found.expiresAt > 0 && found.expiresAt <= at) throw unauthenticated('the token has expired', found.id);
      // Agent tokens only work on the agent listener and API tokens only on the public one.
      if (found.type !== expectedType) throw unauthenticated(`this is an ${found.type} token, not valid on this listener`, found.id);

      const previous = lastTouched.get(found.id) ?? (found.lastUsedAt ? Date.parse(found.lastUsedAt) : 0);
      if (at - previous >= TOUCH_INTERVAL_MS) {
        lastTouched.set(found.id, at);
        store.touchToken(found.id, new Date(at).toISOString()).catch((err: unknown) => options.onTouchError?.(err));
      }
      return {
        tokenId: found.id,
        principal: found.principal ?? found.id,
        type: found.type,
        roles: found.type === 'agent' ? ['agent'] : found.roles,
        project: found.project,
        hostUid: found.hostUid,
        ...(found.description ? { description: found.description } : {}),
      };
    },
  };
}
