// Tokens, authorization and the audit trail through the real `ingot` binary against a real
// `ingot server` child process: what an operator types to hand out a least-privilege token,
// see it refused where it should be, revoke it, and prove from the audit trail what happened
// (and that editing the trail behind Ingot's back is noticed). Steps build on each other.
//
// The server runs with a policy file that also lets platform-reader create tokens, so the
// no-escalation check itself (a token can only grant what its creator holds) is what refuses
// the reader's admin token, not merely the missing token:create permission.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ensureBuilt, FAST_SERVER_CONFIG, runIngot, startIngotServer, type CliResult, type IngotServerProcess } from './support/ingot-process.js';

interface AuditRow {
  seq: number;
  id: string;
  actor: string;
  action: string;
  outcome: string;
  reason: string;
  target: { kind: string; name: string };
}

describe('ingot token and ingot audit against ingot server', () => {
  let work: string;
  let dataDir: string;
  let baseEnv: NodeJS.ProcessEnv;
  let server: IngotServerProcess;
  let admin: NodeJS.ProcessEnv;
  let reader: NodeJS.ProcessEnv;
  let readerToken = '';
  let readerId = '';

  const ingot = (args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> => runIngot(args, { cwd: work, env: { ...baseEnv, ...env } });

  beforeAll(async () => {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'ingot-cli-security-'));
    dataDir = join(work, 'data');
    baseEnv = { ...process.env, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: '', INGOT_TOKEN: '', NO_COLOR: '1' };
    const policyFile = join(work, 'policy.yaml');
    writeFileSync(policyFile, 'token:create: "role:platform-admin or role:platform-reader"\n');
    server = await startIngotServer({ dataDir, cwd: work, env: baseEnv, config: FAST_SERVER_CONFIG, extraArgs: ['--policy-file', policyFile] });
    if (!server.token) throw new Error(`no bootstrap token printed:\n${server.output()}`);
    admin = { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: server.token };
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('1. token create prints the value once, with a warning to store it', async () => {
    const r = await ingot(['token', 'create', '--role', 'platform-reader', '--description', 'ci reader', '--expires-in', '30d'], admin);
    expect(r.stderr).toContain('warning: this is the only time the token value is shown; store it now');
    expect(r.code).toBe(0);
    const created = /^token\/([0-9a-f-]+) created \(roles: platform-reader, expires (\S+)\)$/m.exec(r.stdout);
    expect(created).not.toBeNull();
    readerId = created![1]!;
    // 30 days from now, give or take the test's own run time.
    const expires = Date.parse(created![2]!);
    expect(Math.abs(expires - (Date.now() + 30 * 86_400_000))).toBeLessThan(3_600_000);
    readerToken = /^(ingot_\S+)$/m.exec(r.stdout)?.[1] ?? '';
    expect(readerToken).not.toBe('');
    expect(r.stderr).not.toContain(readerToken);
    expect(r.stderr).toContain(`ingot token revoke ${readerId}`);
    reader = { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: readerToken };
  });

  it('2. a bad --expires-in is refused naming the flag, a too long one naming the server maximum', async () => {
    const r = await ingot(['token', 'create', '--role', 'platform-reader', '--expires-in', 'forever'], admin);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ingot: error: --expires-in "forever" is not a duration; use a form such as 90s, 5m, 1h30m, 30d');
    // longer than the server allows: the server's own limit is named
    const long = await ingot(['token', 'create', '--role', 'platform-reader', '--expires-in', '200d'], admin);
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/expiresInSeconds.*is 17280000, more than the server maximum of 7776000 \(90 days\); ask for a shorter lifetime/);
    expect(long.stdout).not.toMatch(/ingot_/);
  });

  it('3. token list shows the token but never its value', async () => {
    const r = await ingot(['token', 'list'], admin);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+DESCRIPTION\s+ROLES\s+PROJECT\s+EXPIRES\s+LAST USED$/m);
    const row = r.stdout.split('\n').find((l) => l.startsWith(readerId));
    expect(row).toBeDefined();
    expect(row).toMatch(/ci reader\s+platform-reader\s+\d{4}-\d{2}-\d{2} \(in (29|30)d\)\s+never$/);
    expect(r.stdout).not.toContain(readerToken);
    const json = await ingot(['token', 'list', '-o', 'json'], admin);
    expect(json.code).toBe(0);
    expect(json.stdout).not.toContain(readerToken);
    const items = (JSON.parse(json.stdout) as { items: Array<Record<string, unknown>> }).items;
    const mine = items.find((t) => t.id === readerId);
    expect(mine).toMatchObject({ description: 'ci reader', roles: ['platform-reader'], revokedAt: null });
    expect(mine).not.toHaveProperty('token');
    expect(mine).not.toHaveProperty('hash');
  });

  it('4. the reader can list hosts, but creating a secret is refused naming the action', async () => {
    const list = await ingot(['host', 'list'], reader);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    const r = await ingot(['secret', 'create', 'reader-secret', '--from-literal', 'password=hunter2'], reader);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ingot: error: not allowed: action secret:create .*is not allowed for your roles \(platform-reader\); ask a platform admin for a token with one of: platform-admin$/m);
    expect(r.stderr).not.toContain('hunter2');
    // and it was not created
    const secrets = await ingot(['secret', 'list', '-o', 'json'], admin);
    expect(secrets.stdout).not.toContain('reader-secret');
  });

  it('5. the reader cannot mint an admin token (no privilege escalation), only what it holds', async () => {
    const r = await ingot(['token', 'create', '--role', 'platform-admin', '--description', 'escalate', '--expires-in', '1h'], reader);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not allowed: roles platform-admin would allow .*host:create.*which your token does not; a token can only grant what its creator holds/);
    expect(r.stdout).not.toMatch(/ingot_/);
    const same = await ingot(['token', 'create', '--role', 'platform-reader', '--description', 'reader child', '--expires-in', '1h', '-o', 'json'], reader);
    expect(same.code).toBe(0);
    expect(JSON.parse(same.stdout)).toMatchObject({ roles: ['platform-reader'], description: 'reader child', token: expect.stringMatching(/^ingot_/) });
    const list = await ingot(['token', 'list', '-o', 'json'], admin);
    const descriptions = (JSON.parse(list.stdout) as { items: Array<{ description: string }> }).items.map((t) => t.description);
    expect(descriptions).toContain('reader child');
    expect(descriptions).not.toContain('escalate');
  });

  it('6. after token revoke the reader token gets 401', async () => {
    const before = await ingot(['token', 'list'], admin);
    expect(before.stdout.split('\n').find((l) => l.startsWith(readerId))).toMatch(/\d+[smhd] ago$/); // last used by steps 4-5
    const r = await ingot(['token', 'revoke', readerId], admin);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`token/${readerId} revoked\n`);
    const refused = await ingot(['host', 'list'], reader);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^ingot: error: the token was refused: .*ingot login/m);
    const after = await ingot(['token', 'list'], admin);
    expect(after.stdout.split('\n').find((l) => l.startsWith(readerId))).toMatch(/revoked \d+s ago/);
    const bad = await ingot(['token', 'revoke', readerToken], admin);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('the argument is not a token id: that is a token value; take the ID column of `ingot token list` (not the token value)');
    expect(bad.stderr).not.toContain(readerToken);
  });

  it('7. audit list shows the writes and the denied request', async () => {
    const r = await ingot(['audit', 'list', '--limit', '200'], admin);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^SEQ\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME\s+REASON$/m);
    expect(r.stdout).toMatch(new RegExp(`token:create\\s+Token/${readerId}\\s+succeeded`));
    expect(r.stdout).toMatch(new RegExp(`token:revoke\\s+Token/${readerId}\\s+succeeded`));
    expect(r.stdout).toMatch(/secret:create\s+Secret\s+denied\s+INGOT_ERR_FORBIDDEN: action secret:create/);
    expect(r.stdout).toMatch(/\bauth:failed\b.*\bdenied\b/); // the revoked token's attempt
    for (const secret of [readerToken, 'hunter2']) expect(r.stdout).not.toContain(secret);

    const denied = await ingot(['audit', 'list', '--action', 'secret:create', '-o', 'json'], admin);
    expect(denied.code).toBe(0);
    const items = (JSON.parse(denied.stdout) as { items: AuditRow[] }).items;
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ action: 'secret:create', outcome: 'denied' });
    expect(items[0]!.actor).toContain(readerId);
    // --actor takes the ACTOR column as is
    const byReader = await ingot(['audit', 'list', '--actor', items[0]!.actor, '-o', 'json'], admin);
    const actions = (JSON.parse(byReader.stdout) as { items: AuditRow[] }).items.map((e) => `${e.action}/${e.outcome}`);
    expect(actions).toEqual(expect.arrayContaining(['secret:create/denied', 'token:create/failed', 'token:create/succeeded']));
    expect(actions.every((a) => !a.startsWith('token:revoke'))).toBe(true);

    const limited = await ingot(['audit', 'list', '--limit', '2', '-o', 'json'], admin);
    const last2 = (JSON.parse(limited.stdout) as { items: AuditRow[] }).items;
    expect(last2).toHaveLength(2);
    expect(last2[0]!.seq).toBeLessThan(last2[1]!.seq); // the newest, shown oldest first
    const badFilter = await ingot(['audit', 'list', '--outcome', 'maybe'], admin);
    expect(badFilter.code).toBe(1);
    expect(badFilter.stderr).toContain('--outcome maybe: use one of allowed, denied, failed, succeeded');
  });

  it('8. audit tail shows the last events and --follow prints new ones as they happen', async () => {
    const tail = await ingot(['audit', 'tail', '-n', '3'], admin);
    expect(tail.code).toBe(0);
    expect(tail.stdout.trim().split('\n')).toHaveLength(3);
    expect(tail.stdout).toMatch(/^\d+ \S+ (allowed|denied|failed|succeeded) \S+:\S+ /m);

    const child = spawn(process.execPath, [BIN, 'audit', 'tail', '--follow', '-n', '1', '--interval', '200ms', '--action', 'secret:create'], { cwd: work, env: { ...baseEnv, ...admin } });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const closed = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    try {
      // The follower prints the last matching event (step 4's denial) once it has taken its
      // starting position; only then write.
      const ready = Date.now() + 30_000;
      while (!/ denied secret:create /.test(out) && Date.now() < ready) await new Promise((r) => setTimeout(r, 50));
      expect(out).toMatch(/^\d+ \S+ denied secret:create Secret by \S+ \(ci reader\): INGOT_ERR_FORBIDDEN/m);
      const made = await ingot(['secret', 'create', 'followed', '--from-literal', 'password=s3cret-value'], admin);
      expect(made.code).toBe(0);
      const deadline = Date.now() + 20_000;
      while (!/secret:create Secret\/followed by /.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(out).toMatch(/^\d+ \S+ succeeded secret:create Secret\/followed by /m);
      expect(out).not.toContain('s3cret-value');
      expect(out).not.toContain('token:create'); // the filter holds while following
      expect(out.trim().split('\n')).toHaveLength(2);
    } finally {
      child.kill('SIGINT');
    }
    expect(await closed).toBe(130);
  });

  let okCount = 0;
  it('9. audit verify: the chain is intact', async () => {
    const r = await ingot(['audit', 'verify'], admin);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /^audit chain OK: (\d+) events, head ([0-9a-f]{64}) \(seq (\d+)\)$/m.exec(r.stdout);
    expect(m).not.toBeNull();
    okCount = Number(m![1]);
    expect(okCount).toBe(Number(m![3]));
    expect(okCount).toBeGreaterThanOrEqual(7); // steps 1, 4 (denied), 5 (x2), 6 (revoke, refused), 8
  });

  it('10. editing one audit row in the database makes audit verify exit 1 naming that event', async () => {
    const db = new Database(join(dataDir, 'ingot.db'));
    let target: { seq: number; id: string };
    try {
      db.pragma('busy_timeout = 5000');
      target = db.prepare(`SELECT seq, id FROM audit_events WHERE action = 'secret:create' AND outcome = 'denied'`).get() as { seq: number; id: string };
      expect(target).toBeDefined();
      // Someone covering their tracks: the denial now reads as a success.
      const changed = db.prepare(`UPDATE audit_events SET outcome = 'succeeded', reason = '' WHERE seq = ?`).run(target.seq);
      expect(changed.changes).toBe(1);
    } finally {
      db.close();
    }
    const r = await ingot(['audit', 'verify'], admin);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`ingot: error: audit chain BROKEN at seq ${target.seq} (event ${target.id}): audit event seq ${target.seq} (id ${target.id}): its contents do not match its hash: the event was edited`);
    expect(r.stderr).toContain(`${target.seq - 1} events before it verified`);
    const json = await ingot(['audit', 'verify', '-o', 'json'], admin);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, seq: target.seq, id: target.id, problem: 'hash-mismatch' });
  });

  it('11. token generate prints a fresh well-formed token, without a server (the bootstrap-token error points to it)', async () => {
    const first = await ingot(['token', 'generate'], { INGOT_SERVER: 'http://127.0.0.1:9' });
    const second = await ingot(['token', 'generate'], {});
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^ingot_[A-Za-z0-9_-]{43}\n$/);
    expect(second.stdout).toMatch(/^ingot_[A-Za-z0-9_-]{43}\n$/);
    expect(second.stdout).not.toBe(first.stdout);
  });
});
