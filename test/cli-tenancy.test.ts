// The tenancy commands through the real `ingot` binary against a real `ingot server` child
// process: an admin publishes an image, node types, projects and a pool with `ingot apply`; a
// project admin (a project-admin token, logged in with a default project) claims machines with
// user data and sees them pending; quotas warn and refuse; claim sets scale; deletes are
// accepted for the controller. No hosts are enrolled, so claims stay pending (the controller
// says why): --wait is exercised against what that produces (a timeout naming the pending
// reason, a claim set scaled down to zero, a pending claim released). Steps build on each other.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, FAST_SERVER_CONFIG, runIngot, startIngotServer, type CliResult, type IngotServerProcess } from './support/ingot-process.js';

const USER_DATA_MARKER = 'tenant-user-data-q8w3z1x5';
const SECRET_USER_DATA_MARKER = 'project-secret-user-data-m4n7b2';

const PLATFORM = `apiVersion: ingot.dev/v1
kind: OSImage
metadata: {name: ubuntu}
spec: {url: "https://images.example/ubuntu.qcow2", checksum: "${'c'.repeat(64)}", checksumType: sha256, format: qcow2}
---
apiVersion: ingot.dev/v1
kind: NodeType
metadata: {name: metal.small}
spec: {selector: {minCpus: 2, minMemoryMebibytes: 4096}, osImageName: ubuntu}
---
apiVersion: ingot.dev/v1
kind: NodeType
metadata: {name: gpu.large}
spec: {selector: {capabilities: {gpu: {model: A100, count: 2}}}, osImageName: ubuntu}
---
apiVersion: ingot.dev/v1
kind: Project
metadata: {name: red}
spec: {description: red team, allowedNodeTypes: ["metal.*"], quotas: {claims: {soft: 1, hard: 2}}}
---
apiVersion: ingot.dev/v1
kind: Project
metadata: {name: blue}
spec: {}
---
apiVersion: ingot.dev/v1
kind: IPPool
metadata: {name: rack1}
spec: {ranges: [{start: 192.0.2.10, end: 192.0.2.20}], prefix: 24, gateway: 192.0.2.1}
`;

describe('ingot tenancy commands against ingot server', () => {
  let work: string;
  let baseEnv: NodeJS.ProcessEnv;
  let server: IngotServerProcess;
  let admin: NodeJS.ProcessEnv;
  let red: NodeJS.ProcessEnv;
  let redToken = '';
  const outputs: string[] = [];

  const ingot = async (args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> => {
    const r = await runIngot(args, { cwd: work, env: { ...baseEnv, ...env } });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const file = (name: string, text: string) => {
    const p = join(work, name);
    writeFileSync(p, text);
    return p;
  };

  beforeAll(async () => {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'ingot-cli-tenancy-'));
    baseEnv = { ...process.env, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: '', INGOT_TOKEN: '', INGOT_PROJECT: '', NO_COLOR: '1' };
    server = await startIngotServer({ dataDir: join(work, 'data'), cwd: work, env: baseEnv, config: FAST_SERVER_CONFIG });
    if (!server.token) throw new Error(`no bootstrap token printed:\n${server.output()}`);
    admin = { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: server.token };
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('1. apply publishes an OS image, node types, projects and an IP pool, in dependency order', async () => {
    const f = file('platform.yaml', PLATFORM);
    const r = await ingot(['apply', '-f', f], admin);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'osimage/ubuntu created',
      'project/red created',
      'project/blue created',
      'ippool/rack1 created',
      'nodetype/metal.small created',
      'nodetype/gpu.large created',
    ]);
    const again = await ingot(['apply', '-f', f], admin);
    expect(again.code).toBe(0);
    expect(again.stdout.trim().split('\n').every((l) => l.endsWith(' unchanged'))).toBe(true);
  });

  it('2. admins list and show what they published', async () => {
    const images = await ingot(['osimage', 'list'], admin);
    expect(images.code).toBe(0);
    expect(images.stdout).toMatch(/^NAME\s+FORMAT\s+CHECKSUM\s+SECURE BOOT\s+VERIFICATION\s+AGE$/m);
    expect(images.stdout).toMatch(/^ubuntu\s+qcow2\s+sha256:cccccccccccc…\s+no\s+not asked\s+\S+$/m);
    const types = await ingot(['nodetype', 'list'], admin);
    expect(types.stdout).toMatch(/^metal\.small\s+ubuntu\s+cpus>=2 mem>=4096MiB\s+\S+$/m);
    expect(types.stdout).toMatch(/^gpu\.large\s+ubuntu\s+gpu A100x2/m);
    const projects = await ingot(['project', 'list'], admin);
    expect(projects.stderr).toBe('');
    expect(projects.stdout).toMatch(/^red\s+0\s+metal\.\*\s+\S*\s*soft 1, hard 2\s+\S+$/m);
    const project = await ingot(['project', 'show', 'red'], admin);
    expect(project.stdout).toContain('Claim quota:    soft 1, hard 2');
    const pool = await ingot(['ippool', 'show', 'rack1'], admin);
    expect(pool.code).toBe(0);
    expect(pool.stdout).toContain('Ranges:         192.0.2.10-192.0.2.20');
    expect(pool.stdout).toContain('Allocated:      0');
    const json = await ingot(['ippool', 'show', 'rack1', '-o', 'json'], admin);
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: 'IPPool', metadata: { name: 'rack1' }, addresses: [] });
  });

  it('3. a project-admin token is made for red; without a project, project commands say how to give one', async () => {
    const t = await ingot(['token', 'create', '--role', 'project-admin', '--project', 'red', '--description', 'red admin', '--expires-in', '1h'], admin);
    expect(t.code).toBe(0);
    redToken = /^(ingot_\S+)$/m.exec(t.stdout)?.[1] ?? '';
    expect(redToken).not.toBe('');
    const none = await ingot(['claim', 'list'], { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: redToken });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('ingot: error: no project given: use --project PROJECT, set INGOT_PROJECT, or save a default with `ingot login --server URL --token TOKEN --project PROJECT`');
    const env = await ingot(['claim', 'list'], { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: redToken, INGOT_PROJECT: 'red' });
    expect(env.code).toBe(0);
    expect(env.stdout).toContain('no claims in project red');
  });

  it('4. ingot login --project saves red as the default project', async () => {
    const r = await ingot(['login', '--server', server.apiUrl, '--token', redToken, '--project', 'red'], {});
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`logged in to ${server.apiUrl}, default project red; saved to`);
    const missing = await ingot(['login', '--server', server.apiUrl, '--token', redToken, '--project', 'nope'], {});
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('project "nope" does not exist (or the token is not a member of it); nothing was saved');
    red = {};
    // A tenant's `nodetype list` shows what its project may claim.
    const types = await ingot(['nodetype', 'list'], red);
    expect(types.code).toBe(0);
    expect(types.stdout).toContain('metal.small');
    expect(types.stdout).not.toContain('gpu.large');
  });

  it('5. claim create with user data, SSH keys and a network; --wait on a pending claim times out naming the reason and what to check', async () => {
    const ud = file('user-data.yaml', `#cloud-config\nruncmd: [echo ${USER_DATA_MARKER}]\n`);
    const keys = file('keys.pub', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx alice@example\n');
    const r = await ingot(['claim', 'create', 'web-1', '--node-type', 'metal.small', '--user-data-file', ud, '--ssh-key-file', keys, '--network', 'rack1', '--wait', '--timeout', '2s'], red);
    expect(r.stdout).toContain('claim/web-1 created in project red (pending: waiting for the scheduler)');
    expect(r.stdout).toMatch(/^claim\/web-1: pending \(.+\) \(\d+\.\ds\)$/m);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ingot: error: claim web-1 did not become ready within 2s; it is pending \(.+\)/);
    expect(r.stderr).toContain('a pending claim waits for a free host that matches its node type; check the reason above, `ingot claim show web-1 --project red`');
    expect(r.stderr).toContain('or wait longer with --timeout');
    expect(r.stderr).not.toContain('warning:');
  });

  it('6. claim list and show: pending with a reason; the user data is never shown', async () => {
    const list = await ingot(['claim', 'list'], red);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+NODE TYPE\s+STATE\s+HOST\s+ADDRESSES\s+AGE\s+REASON$/m);
    expect(list.stdout).toMatch(/^web-1\s+metal\.small\s+pending\s+\S+\s+\S.*$/m);
    const show = await ingot(['claim', 'show', 'web-1'], red);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^State:\s+pending$/m);
    expect(show.stdout).toMatch(/^Reason:\s+\S/m);
    expect(show.stdout).toMatch(/^User data:\s+inline \(sealed; never shown\)$/m);
    expect(show.stdout).toMatch(/^SSH keys:\s+1 \(ssh-ed25519\)$/m);
    expect(show.stdout).toMatch(/^Networks:\s+rack1$/m);
    for (const format of ['json', 'yaml']) {
      const r = await ingot(['claim', 'show', 'web-1', '-o', format], red);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('[sealed]');
    }
    const json = JSON.parse((await ingot(['claim', 'list', '-o', 'json'], red)).stdout) as { items: Array<{ metadata: { name: string }; status: { state: string; reason?: string } }> };
    expect(json.items.map((c) => [c.metadata.name, c.status.state])).toEqual([['web-1', 'pending']]);
  });

  it('7. a soft quota is a warning on stderr; a hard quota refuses naming the quota', async () => {
    const soft = await ingot(['claim', 'create', 'web-2', '--node-type', 'metal.small'], red);
    expect(soft.code).toBe(0);
    expect(soft.stdout).toContain('claim/web-2 created in project red');
    expect(soft.stderr).toMatch(/^warning: claim\/web-2: soft quota of 1 claims exceeded in project red \(spec\.quotas\.claims\.soft\)/m);
    expect(soft.stdout).not.toContain('soft quota');
    const hard = await ingot(['claim', 'create', 'web-3', '--node-type', 'metal.small'], red);
    expect(hard.code).toBe(1);
    expect(hard.stderr).toMatch(/^ingot: error: refused by quota: quota of 2 claims reached in project red \(spec\.quotas\.claims\.hard; 2 in use, 1 more asked for\); delete a claim or ask a platform admin to raise the quota/m);
    expect(hard.stderr).not.toContain('ask a platform admin for a role');
    const notAllowed = await ingot(['claim', 'create', 'gpu-1', '--node-type', 'gpu.large'], red);
    expect(notAllowed.code).toBe(1);
    expect(notAllowed.stderr).toContain('project red may not claim node type "gpu.large"');
  });

  it('8. project secrets hold user data for claims; their values are never shown', async () => {
    const ud = file('secret-user-data.yaml', `#cloud-config\nruncmd: [echo ${SECRET_USER_DATA_MARKER}]\n`);
    const r = await ingot(['secret', 'create', 'web-ud', '--project', 'red', '--from-file', `userData=${ud}`], red);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('secret/web-ud created in project red (keys: userData)\n');
    const list = await ingot(['secret', 'list', '--project', 'red'], red);
    expect(list.stdout).toMatch(/^web-ud\s+userData\s+1\s+\S+$/m);
    // Without --project, secrets are the platform's (which a project token may not read).
    const platform = await ingot(['secret', 'list'], red);
    expect(platform.code).toBe(1);
    expect(platform.stderr).toContain('not allowed');
  });

  it('9. claimset create and scale change spec.replicas; scale --wait ends once the set is settled', async () => {
    const blue = { ...admin, INGOT_PROJECT: 'blue' };
    const c = await ingot(['claimset', 'create', 'workers', '--node-type', 'gpu.large', '--replicas', '0', '--label', 'tier=batch'], blue);
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    expect(c.stdout).toBe('claimset/workers created in project blue (0 replicas)\n');
    const s = await ingot(['claimset', 'scale', 'workers', '--replicas', '3'], blue);
    expect(s.code).toBe(0);
    expect(s.stdout).toBe('claimset/workers scaled to 3 replicas\n');
    const shown = JSON.parse((await ingot(['claimset', 'show', 'workers', '-o', 'json'], blue)).stdout) as { spec: { replicas: number }; metadata: { labels: Record<string, string> } };
    expect(shown.spec.replicas).toBe(3);
    expect(shown.metadata.labels).toEqual({ tier: 'batch' });
    const list = await ingot(['claimset', 'list'], blue);
    expect(list.stdout).toMatch(/^NAME\s+NODE TYPE\s+REPLICAS\s+READY\s+PENDING\s+FAILED\s+AGE$/m);
    expect(list.stdout).toMatch(/^workers\s+gpu\.large\s+\d+\/3\s+0\s+\d+\s+0\s+\S+$/m);
    const down = await ingot(['claimset', 'scale', 'workers', '--replicas', '0', '--wait', '--timeout', '60s'], blue);
    expect(down.stderr).toBe('');
    expect(down.code).toBe(0);
    expect(down.stdout).toContain('claimset/workers has 0 ready replicas and no extra claims');
    const bad = await ingot(['claimset', 'scale', 'workers', '--replicas', 'many'], blue);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--replicas many: use a whole number from 0 to 10000');
    const del = await ingot(['claimset', 'delete', 'workers'], blue);
    expect(del.code).toBe(0);
    expect(del.stdout).toBe('claimset/workers deletion requested\n');
    // A set with claims: --wait lasts until they are released and the set is gone.
    expect((await ingot(['claimset', 'create', 'batch', '--node-type', 'gpu.large', '--replicas', '2'], blue)).code).toBe(0);
    const gone = await ingot(['claimset', 'delete', 'batch', '--wait', '--timeout', '60s'], blue);
    expect(gone.stderr).toBe('');
    expect(gone.code).toBe(0);
    expect(gone.stdout).toMatch(/^claimset\/batch: \d claims? still releasing/m);
    expect(gone.stdout).toMatch(/^claimset\/batch is gone \(/m);
    expect((await ingot(['claimset', 'show', 'batch'], blue)).code).toBe(1);
    // Two CLI waits of up to 60 s each, plus the commands around them.
  }, 180_000);

  it('10. apply puts a Claim into the --project given; platform kinds may not name a project', async () => {
    const f = file('claim.yaml', 'apiVersion: ingot.dev/v1\nkind: Claim\nmetadata: {name: api-1}\nspec: {nodeTypeName: gpu.large}\n');
    const r = await ingot(['apply', '-f', f, '--project', 'blue'], admin);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('claim/api-1 created in project blue\n');
    const all = await ingot(['claim', 'list', '--all-projects'], admin);
    expect(all.stdout).toMatch(/^PROJECT\s+NAME\s+NODE TYPE/m);
    expect(all.stdout).toMatch(/^blue\s+api-1\s+gpu\.large\s+pending/m);
    expect(all.stdout).toMatch(/^red\s+web-1\s+metal\.small\s+pending/m);
    // Without --project, the login default (red, saved in step 4) applies: red may not claim gpu.large.
    const viaDefault = await ingot(['apply', '-f', f], admin);
    expect(viaDefault.code).toBe(1);
    expect(viaDefault.stderr).toMatch(/claim\/api-1 \(project red\) \(document 1, line 1\) was refused: .*project red may not claim node type "gpu\.large"/);
    const noProject = await ingot(['apply', '-f', f], { ...admin, INGOT_CONFIG: join(work, 'no-config.json') });
    expect(noProject.code).toBe(1);
    expect(noProject.stderr).toContain('no project given');
  });

  it('11. claim delete is accepted for the controller (202); --wait follows it until it is gone', async () => {
    const r = await ingot(['claim', 'delete', 'web-2', '--wait', '--timeout', '60s'], red);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // "deletion requested" is printed for a 202 only (a 200 prints "deleted").
    expect(r.stdout).toMatch(/^claim\/web-2 deletion requested$/m);
    expect(r.stdout).toMatch(/^claim\/web-2 is gone \(\d/m);
    const list = await ingot(['claim', 'list', '-o', 'json'], red);
    expect((JSON.parse(list.stdout) as { items: Array<{ metadata: { name: string } }> }).items.map((c) => c.metadata.name)).toEqual(['web-1']);
    const gone = await ingot(['claim', 'show', 'web-2'], red);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('web-2');
  });

  it('12. no output of any command carried the user data', () => {
    expect(outputs.length).toBeGreaterThan(40);
    for (const text of outputs) {
      expect(text).not.toContain(USER_DATA_MARKER);
      expect(text).not.toContain(SECRET_USER_DATA_MARKER);
    }
  });
});
