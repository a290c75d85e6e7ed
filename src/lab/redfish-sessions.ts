// Redfish sessions (DSP0266 "Session login authentication"): POST to the Sessions collection
// with UserName/Password returns an X-Auth-Token; the session ends on DELETE or after
// SessionTimeout seconds without use. Each session is bound to the system whose BMC
// credentials created it, and is only good for that system's resources.
import { createHash, randomBytes } from 'node:crypto';

export interface LabSession {
  id: string;
  systemId: string;
  username: string;
  createdAt: string;
  lastUsedMs: number;
  tokenHash: string;
}

export const DEFAULT_SESSION_TIMEOUT_S = 1800;
export const MAX_SESSIONS_PER_SYSTEM = 64;

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

export class SessionStore {
  readonly #byTokenHash = new Map<string, LabSession>();
  readonly #byId = new Map<string, LabSession>();
  readonly #timeoutS = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  timeoutSeconds(systemId: string): number {
    return this.#timeoutS.get(systemId) ?? DEFAULT_SESSION_TIMEOUT_S;
  }

  setTimeoutSeconds(systemId: string, seconds: number): void {
    this.#timeoutS.set(systemId, seconds);
  }

  /** Creates a session; returns it with the token, which is not stored (only its hash is). */
  create(systemId: string, username: string): { session: LabSession; token: string } | undefined {
    const mine = this.list(systemId);
    if (mine.length >= MAX_SESSIONS_PER_SYSTEM) return undefined;
    const token = randomBytes(32).toString('base64url');
    const session: LabSession = {
      id: randomBytes(12).toString('hex'),
      systemId,
      username,
      createdAt: new Date(this.#now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      lastUsedMs: this.#now(),
      tokenHash: hashToken(token),
    };
    this.#byTokenHash.set(session.tokenHash, session);
    this.#byId.set(session.id, session);
    return { session, token };
  }

  #expired(s: LabSession): boolean {
    return this.#now() - s.lastUsedMs > this.timeoutSeconds(s.systemId) * 1000;
  }

  /** The live session for a token, refreshed; undefined when unknown or expired. */
  authenticate(token: string): LabSession | undefined {
    const s = this.#byTokenHash.get(hashToken(token));
    if (!s) return undefined;
    if (this.#expired(s)) {
      this.delete(s.id);
      return undefined;
    }
    s.lastUsedMs = this.#now();
    return s;
  }

  get(id: string): LabSession | undefined {
    const s = this.#byId.get(id);
    if (s && this.#expired(s)) {
      this.delete(s.id);
      return undefined;
    }
    return s;
  }

  list(systemId: string): LabSession[] {
    return [...this.#byId.values()].filter((s) => s.systemId === systemId && !this.#expired(s));
  }

  delete(id: string): boolean {
    const s = this.#byId.get(id);
    if (!s) return false;
    this.#byId.delete(id);
    this.#byTokenHash.delete(s.tokenHash);
    return true;
  }

  /** Ends every session of a system (its BMC was reset). */
  endAll(systemId: string): void {
    for (const s of [...this.#byId.values()]) if (s.systemId === systemId) this.delete(s.id);
  }
}
