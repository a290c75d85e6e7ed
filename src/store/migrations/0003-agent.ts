// The agent protocol's state: commands queued for on-host agents, and agent sessions
// (one per boot of the agent: its one-boot token and its boot medium).
// - agent_commands: (host_uid, operation_id) is unique, so AgentPort.start is idempotent even
//   when two conductors race (the loser's insert does nothing). `request` is JSON without user
//   data in clear: the user data inside a deploy request is sealed with the SecretBox (see
//   src/conductor/agent-queue.ts for why it is sealed rather than referenced).
// - agent_sessions: media_hash is the SHA-256 of the unguessable boot-medium id (the URL is a
//   capability, like a token, so only its hash is kept); sealed_token is the one-boot token
//   sealed with the SecretBox, because the boot medium must carry it and may be built by any
//   server process (PostgreSQL scale-out). boot_config holds the rest of the medium's content.
import { type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../store.js';

export function agentMigration(dialect: Dialect): Migration {
  const pg = dialect === 'postgres';
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('agent_commands')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host_uid', 'text', (c) => c.notNull())
        .addColumn('operation_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('request', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('percent', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('message', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('result', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('agent_commands_host_operation', ['host_uid', 'operation_id'])
        .execute();
      await db.schema.createIndex('agent_commands_host_state').on('agent_commands').columns(['host_uid', 'state', 'created_at']).execute();

      await db.schema
        .createTable('agent_sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host_uid', 'text', (c) => c.notNull())
        .addColumn('boot_id', 'text', (c) => c.notNull().unique())
        .addColumn('token_id', 'text', (c) => c.notNull().unique())
        .addColumn('media_hash', 'text', (c) => c.notNull().unique())
        .addColumn('boot_config', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('sealed_token', pg ? 'bytea' : 'blob', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('looked_up_at', 'text')
        .addColumn('last_seen_at', 'text')
        .addColumn('ended_at', 'text')
        .execute();
      await db.schema.createIndex('agent_sessions_host').on('agent_sessions').columns(['host_uid', 'created_at']).execute();
    },

    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('agent_sessions').execute();
      await db.schema.dropTable('agent_commands').execute();
    },
  };
}
