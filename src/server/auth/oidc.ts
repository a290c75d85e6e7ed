// OIDC bearer tokens: a JWT from the organisation's identity provider, verified
// against its issuer, audience and published keys (RFC 7519 §7.2, RFC 9068), then mapped from
// claims (groups) to Ingot roles. Ingot never sees a password and stores nothing for these
// callers; the JWT's own expiry bounds it. Only asymmetric algorithms are accepted: with a
// public key set, an HS* token would be "signed" with a key anyone can read, and `none` is no
// signature at all (RFC 8725 §3.1, §3.2).
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { IngotError } from '../../model/errors.js';
import { API_ROLES, type Identity } from './policy.js';

export const OIDC_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;

export interface OidcConfig {
  /** Expected `iss`, exactly (e.g. https://login.example.com/realms/ops). */
  issuer: string;
  /** Expected `aud` (the client id Ingot is registered as). */
  audience: string;
  /** A JWKS document on disk (read at start). One of jwksFile / jwksUrl. */
  jwksFile?: string;
  /** The issuer's JWKS endpoint (fetched and cached; refetched on an unknown `kid`). */
  jwksUrl?: string;
  /** Claim holding the caller's groups (a string or an array of strings; dotted path for nested claims). Default `groups`. */
  rolesClaim?: string;
  /** Claim value (group) -> Ingot role. Values not in the map are ignored. */
  roleMap: Record<string, string>;
  /** Claim holding the caller's project, for project-* roles. */
  projectClaim?: string;
  /** Allowed clock skew for exp/nbf/iat; default 30 s. */
  clockToleranceSeconds?: number;
}

export interface OidcVerifier {
  /** Verifies a compact JWT and maps it to an identity; throws 401 INGOT_ERR_UNAUTHENTICATED saying why. */
  verify(jwt: string): Promise<Identity>;
}

/** JWTs from real providers are a few KiB; refuse anything absurd before parsing it. */
export const MAX_JWT_LENGTH = 16 * 1024;
const MAX_JWKS_BYTES = 1024 * 1024;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const PROJECT_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Three base64url parts (the signature may be empty: an unsecured JWT, refused later with a reason). */
export function looksLikeJwt(token: string): boolean {
  return token.length <= MAX_JWT_LENGTH && !token.startsWith('ingot') && JWT_SHAPE.test(token);
}

function unauthenticated(reason: string): IngotError {
  return new IngotError('INGOT_ERR_UNAUTHENTICATED', `OIDC token refused: ${reason}; sign in again to get a fresh token from the identity provider, or use an Ingot token`);
}

function loadJwksFile(path: string): JSONWebKeySet {
  let doc: unknown;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_JWKS_BYTES) throw new Error(`larger than ${MAX_JWKS_BYTES} bytes`);
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`oidc.jwksFile ${path} cannot be read as JSON (${(err as Error).message}); give the identity provider's JWKS document ({"keys": [...]})`);
  }
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new Error(`oidc.jwksFile ${path} has no "keys" array; give a JWKS document (RFC 7517 §5)`);
  // Symmetric keys have no place in a public key set; dropping them makes HS* impossible even if the allow-list changed.
  const asymmetric = keys.filter((k: unknown) => typeof k === 'object' && k !== null && (k as { kty?: unknown }).kty !== 'oct');
  if (asymmetric.length === 0) throw new Error(`oidc.jwksFile ${path} holds no public keys (RSA, EC or OKP)`);
  return { keys: asymmetric } as JSONWebKeySet;
}

/** Validates the settings (operator errors surface at start, naming the field). */
export function validateOidcConfig(config: OidcConfig): void {
  const field = (name: string, problem: string) => new Error(`oidc.${name}: ${problem}`);
  if (!config.issuer) throw field('issuer', 'required: the `iss` your identity provider puts in tokens');
  if (!config.audience) throw field('audience', 'required: the client id (`aud`) tokens are issued for');
  if (!!config.jwksFile === !!config.jwksUrl) throw field('jwksFile', 'give exactly one of oidc.jwksFile and oidc.jwksUrl');
  if (config.jwksUrl) {
    let url: URL;
    try {
      url = new URL(config.jwksUrl);
    } catch {
      throw field('jwksUrl', `"${config.jwksUrl}" is not a URL`);
    }
    const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
    // Keys fetched over plain HTTP could be swapped on the way; only loopback (tests, a local proxy) is exempt.
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw field('jwksUrl', 'must be https:// (plain http only on loopback)');
  }
  for (const [value, role] of Object.entries(config.roleMap ?? {})) {
    if (!API_ROLES.includes(role)) throw field(`roleMap.${value}`, `"${role}" is not an Ingot role; use one of ${API_ROLES.join(', ')}`);
  }
  const tolerance = config.clockToleranceSeconds;
  if (tolerance !== undefined && (!Number.isInteger(tolerance) || tolerance < 0 || tolerance > 600)) throw field('clockToleranceSeconds', 'an integer from 0 to 600');
}

function claimAt(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Explains a jose failure in words an operator can act on; never includes the token. */
function reasonOf(err: unknown, config: OidcConfig): string {
  if (err instanceof errors.JWTExpired) return 'the token has expired (exp is in the past)';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return `wrong issuer (iss must be ${config.issuer})`;
    if (err.claim === 'aud') return `wrong audience (aud must include ${config.audience})`;
    if (err.claim === 'nbf') return 'the token is not valid yet (nbf is in the future)';
    if (err.claim === 'iat') return 'the token was issued in the future (iat)';
    return `claim ${err.claim} is invalid (${err.reason})`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return `the signing algorithm is not allowed (only ${OIDC_ALGORITHMS.join(', ')})`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'the signature does not verify with the issuer\'s keys';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no key of the issuer matches the token (kid/alg): it was not signed by the configured issuer';
  if (err instanceof errors.JWKSMultipleMatchingKeys) return 'several issuer keys match the token and none verifies it';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return "the issuer's key set could not be fetched";
  if (err instanceof errors.JOSENotSupported) return 'the token uses an unsupported algorithm or key type';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'the token is not a valid signed JWT';
  if (isKeySetFailure(err)) return "the issuer's key set could not be fetched";
  return "the token could not be verified (the issuer's key set may be unreachable)";
}

/** Failures that are the key set's fault, not the caller's: worth an operator's attention. */
function isKeySetFailure(err: unknown): boolean {
  // jose reports a JWKS endpoint's bad HTTP answer as a plain JOSEError (ERR_JOSE_GENERIC).
  return err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || !(err instanceof errors.JOSEError) || (err as errors.JOSEError).code === 'ERR_JOSE_GENERIC';
}

export function createOidcVerifier(config: OidcConfig, hooks: { onKeySetError?: (message: string) => void } = {}): OidcVerifier {
  validateOidcConfig(config);
  const keys: JWTVerifyGetKey = config.jwksFile
    ? createLocalJWKSet(loadJwksFile(config.jwksFile))
    : createRemoteJWKSet(new URL(config.jwksUrl!), { timeoutDuration: 5_000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  const rolesClaim = config.rolesClaim ?? 'groups';
  const roleMap = new Map(Object.entries(config.roleMap ?? {}));

  return {
    async verify(jwt) {
      if (jwt.length > MAX_JWT_LENGTH) throw unauthenticated(`longer than ${MAX_JWT_LENGTH} characters`);
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(jwt, keys, {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: [...OIDC_ALGORITHMS],
          clockTolerance: config.clockToleranceSeconds ?? 30,
          requiredClaims: ['iss', 'aud', 'exp', 'sub'],
        }));
      } catch (err) {
        if (isKeySetFailure(err)) hooks.onKeySetError?.(`OIDC key set ${config.jwksUrl ?? config.jwksFile}: ${(err as Error)?.message ?? String(err)}`.slice(0, 500));
        throw unauthenticated(reasonOf(err, config));
      }
      const sub = payload.sub;
      if (typeof sub !== 'string' || sub.length === 0 || sub.length > 255 || /[\u0000-\u001f\u007f]/.test(sub)) {
        throw unauthenticated('the sub claim is missing or not a printable string of at most 255 characters');
      }
      const raw = claimAt(payload, rolesClaim);
      const values = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw.filter((v): v is string => typeof v === 'string') : [];
      // Unknown groups are ignored: an identity provider carries many groups unrelated to Ingot.
      const roles = [...new Set(values.slice(0, 1024).map((v) => roleMap.get(v)).filter((r): r is string => r !== undefined))];
      let project = '';
      if (config.projectClaim) {
        const p = claimAt(payload, config.projectClaim);
        if (p !== undefined) {
          if (typeof p !== 'string' || !PROJECT_PATTERN.test(p)) throw unauthenticated(`claim ${config.projectClaim} is not a project name (lower-case letters, digits and dashes, at most 63)`);
          project = p;
        }
      }
      const name = [payload.preferred_username, payload.email].find((v): v is string => typeof v === 'string' && v.length > 0);
      return {
        tokenId: `oidc:${sub}`,
        principal: `oidc:${sub}`,
        type: 'api',
        roles,
        project,
        hostUid: '',
        ...(name ? { description: name.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 100) } : {}),
      };
    },
  };
}
