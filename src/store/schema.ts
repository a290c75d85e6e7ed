// Row types of the database, as Kysely sees them. JSON columns are TEXT on both dialects so
// one code path reads and writes them; PostgreSQL casts to jsonb where a query needs it.
import type { Generated } from 'kysely';

/** PostgreSQL's bigint and bigserial come back from `pg` as strings; SQLite gives numbers. */
export type BigIntColumn = number | string;

export interface ResourcesTable {
  kind: string;
  /** '' for platform-scoped resources. */
  project: string;
  name: string;
  uid: string;
  resource_version: number;
  labels: string;
  annotations: string;
  spec: string;
  status: string;
  created_at: string;
  updated_at: string;
  deletion_timestamp: string | null;
}

export interface EventsTable {
  id: Generated<BigIntColumn>;
  kind: string;
  project: string;
  name: string;
  uid: string;
  type: string;
  reason: string;
  message: string;
  from_state: string | null;
  to_state: string | null;
  created_at: string;
}

export interface ChangesTable {
  seq: Generated<BigIntColumn>;
  kind: string;
  project: string;
  name: string;
  type: string;
  object: string;
  created_at: string;
}

export interface LeasesTable {
  name: string;
  holder: string;
  purpose: string;
  expires_at: BigIntColumn;
}

export interface SecretDataTable {
  uid: string;
  version: number;
  key_id: string;
  ciphertext: Buffer;
}

export interface TokensTable {
  id: string;
  hash: string;
  description: string;
  roles: string;
  project: string;
  type: string;
  host_uid: string;
  expires_at: BigIntColumn;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  /** Whom the token acts for (migration 0007); '' when unknown (the token's own id stands in). */
  principal: Generated<string>;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface AuditEventsTable {
  seq: BigIntColumn;
  id: string;
  time: string;
  actor: string;
  roles: string;
  project: string;
  source_address: string;
  request_id: string;
  action: string;
  target_kind: string;
  target_project: string;
  target_name: string;
  outcome: string;
  reason: string;
  changes: string;
  prev_hash: string;
  hash: string;
  /** How many identical events this row stands for (migration 0007); 1 for most. */
  repeat_count: Generated<number>;
}

/** One row (id 1): the last appended audit seq and hash. */
export interface AuditHeadTable {
  id: number;
  seq: BigIntColumn;
  hash: string;
}

export interface AgentCommandsTable {
  id: string;
  host_uid: string;
  operation_id: string;
  kind: string;
  request: string;
  state: string;
  percent: number;
  message: string;
  result: string | null;
  created_at: string;
  updated_at: string;
}

export interface AgentSessionsTable {
  id: string;
  host_uid: string;
  boot_id: string;
  token_id: string;
  media_hash: string;
  boot_config: string;
  sealed_token: Buffer;
  created_at: string;
  expires_at: BigIntColumn;
  looked_up_at: string | null;
  last_seen_at: string | null;
  ended_at: string | null;
}

export interface IpAllocationsTable {
  pool_uid: string;
  /** Canonical text (src/model/ip-address.ts formatIp). */
  address: string;
  family: number;
  claim_uid: string;
  created_at: string;
}

export interface HostBindingsTable {
  host_uid: string;
  claim_uid: string;
  project: string;
  created_at: string;
}

export interface ApprovalsTable {
  id: string;
  action: string;
  target_kind: string;
  target_name: string;
  /** JSON: { method, path, body } */
  request: string;
  cause: string;
  requested_by: string;
  requested_at: string;
  expires_at: string;
  state: string;
  decided_by: string | null;
  decided_at: string | null;
  reason: string | null;
}

/** One admitted rate-limited action (Store.admitWindowedAction). */
export interface ActionWindowTable {
  id: string;
  /** Which window: e.g. 'destructive-host-change'. */
  kind: string;
  /** Epoch milliseconds. */
  at: BigIntColumn;
}

export interface Database {
  resources: ResourcesTable;
  events: EventsTable;
  changes: ChangesTable;
  leases: LeasesTable;
  secret_data: SecretDataTable;
  tokens: TokensTable;
  settings: SettingsTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  agent_commands: AgentCommandsTable;
  agent_sessions: AgentSessionsTable;
  ip_allocations: IpAllocationsTable;
  host_bindings: HostBindingsTable;
  approvals: ApprovalsTable;
  action_window: ActionWindowTable;
}
