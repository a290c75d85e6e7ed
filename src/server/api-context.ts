// What the public API's routes share: built once by buildApiServer and handed to each route plugin.
import type { AuditWriter } from './audit/audit-writer.js';
import type { SecretBox } from '../store/secret-box.js';
import type { Store } from '../store/store.js';
import type { Policy } from './auth/policy.js';
import type { WatchRegistry } from './watch-stream.js';

export interface ApiContext {
  store: Store;
  secretBox: SecretBox;
  policy: Policy;
  watches: WatchRegistry;
  watchHeartbeatMs: number;
  watchPollMs: number;
  /** Records events routes raise themselves (soft quota warnings); absent when auditing is off. */
  audit?: AuditWriter;
}
