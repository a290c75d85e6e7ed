// Issue 5 end to end: an operator declares an alert rule in the `ingot server --config` YAML
// ("a host updated or deleted by an identity without the controller role") and a webhook on
// a local receiver; a real server process sends the alert when a platform-admin changes a
// host, and not when a controller does.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../src/server/audit/sinks/webhook-sink.js';
import { hostApi } from './support/host-api.js';
import { ensureBuilt, FAST_SERVER_CONFIG, startIngotServer, type IngotServerProcess } from './support/ingot-process.js';

interface Received {
  type: 'event' | 'alert';
  rule?: string;
  severity?: string;
  event: { seq: number; action: string; outcome: string; roles: string[]; target: { kind: string; name: string } };
}

const WEBHOOK_SECRET = 'e2e-webhook-signing-secret-0123456789';

describe('alert rules from the server config reach the webhook', () => {
  let work: string;
  let server: IngotServerProcess;
  let receiver: Server;
  const received: Received[] = [];
  let badSignatures = 0;
  let adminToken = '';
  let controllerToken = '';
  const asAdmin = hostApi(() => ({ apiUrl: server.apiUrl, token: adminToken }));
  const asController = hostApi(() => ({ apiUrl: server.apiUrl, token: controllerToken }));

  async function waitFor<T>(what: string, find: () => T | undefined): Promise<T> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`webhook receiver never got ${what}; got: ${JSON.stringify(received.map((m) => [m.type, m.rule, m.event.seq, m.event.action]))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const alerts = () => received.filter((m) => m.type === 'alert');

  beforeAll(async () => {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'ingot-audit-alerts-'));
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (!verifyWebhookSignature(WEBHOOK_SECRET, req.headers['x-ingot-signature'] as string | undefined, body)) badSignatures += 1;
        received.push(JSON.parse(body) as Received);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as { port: number }).port;
    const secretFile = join(work, 'webhook.secret');
    writeFileSync(secretFile, `${WEBHOOK_SECRET}\n`, { mode: 0o600 });
    const config = [
      FAST_SERVER_CONFIG,
      'audit:',
      '  webhook:',
      `    url: http://127.0.0.1:${port}/ingot-audit`,
      `    secretFile: ${secretFile}`,
      '  alertRules:',
      '    - name: host-changed-by-non-controller',
      '      description: hosts change only through automation holding the controller role',
      '      match:',
      '        actions: ["host:update", "host:delete"]',
      '        targetKinds: [Host]',
      '        outcomes: [succeeded]',
      '        actorLacksRole: controller',
      '      severity: high',
    ].join('\n');
    server = await startIngotServer({ dataDir: join(work, 'data'), cwd: work, env: { ...process.env, HOME: work }, config });
    if (!server.token) throw new Error(`no bootstrap token printed:\n${server.output()}`);
    adminToken = server.token;
    const minted = await asAdmin.api<{ token: string }>('POST', '/api/v1/tokens', { roles: ['controller'], description: 'e2e controller', expiresInSeconds: 3600 });
    expect(minted.status).toBe(201);
    controllerToken = minted.body.token;
    const secret = await asAdmin.api('POST', '/api/v1/secrets', { apiVersion: 'ingot.dev/v1', kind: 'Secret', metadata: { name: 'bmc-creds' }, stringData: { username: 'admin', password: 'alert-e2e-bmc-password' } });
    expect(secret.status).toBe(201);
    const host = await asAdmin.api('POST', '/api/v1/hosts', {
      apiVersion: 'ingot.dev/v1',
      kind: 'Host',
      metadata: { name: 'rack1-h1' },
      spec: { bmc: { address: 'fake://rack1-h1', credentialsName: 'bmc-creds' }, online: false },
    });
    expect(host.status, JSON.stringify(host.body)).toBe(201);
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('a platform-admin (no controller role) updating a host raises the alert, signed with the configured secret', async () => {
    await asAdmin.patchHost('rack1-h1', { metadata: { labels: { team: 'storage' } } });
    const alert = await waitFor('the alert', () => alerts().find((m) => m.event.action === 'host:update'));
    expect(alert).toMatchObject({ type: 'alert', rule: 'host-changed-by-non-controller', severity: 'high', event: { action: 'host:update', outcome: 'succeeded', target: { kind: 'Host', name: 'rack1-h1' } } });
    expect(alert.event.roles).toEqual(['platform-admin']);
    // The host creation and the secret matched no rule: events only.
    expect(alerts()).toHaveLength(1);
    expect(badSignatures).toBe(0);
  });

  it('the same update by a controller token raises no alert', async () => {
    await asController.patchHost('rack1-h1', { metadata: { labels: { team: 'compute' } } });
    const controllerEvent = await waitFor('the controller update event', () => received.find((m) => m.type === 'event' && m.event.action === 'host:update' && m.event.roles.includes('controller')));
    // The webhook delivers in order and an event's alerts are queued right after it: a later
    // admin change's alert arriving proves the controller's change had its chance to alert.
    await asAdmin.patchHost('rack1-h1', { metadata: { labels: { team: 'network' } } });
    await waitFor('the second admin alert', () => (alerts().length >= 2 ? true : undefined));
    const alerted = alerts().map((m) => m.event.seq);
    expect(alerted).not.toContain(controllerEvent.event.seq);
    expect(alerts().every((m) => !m.event.roles.includes('controller'))).toBe(true);
    expect(alerts()).toHaveLength(2);
    expect(badSignatures).toBe(0);
  });

  it('SIGHUP reloads the rules from the config file; a bad file keeps the running rules', async () => {
    const configFile = join(work, 'data.config.yaml');
    const base = readFileSync(configFile, 'utf8').split('\n  alertRules:')[0]!;
    // A broken rules section is refused: the running rule still alerts on admin changes.
    writeFileSync(configFile, `${base}\n  alertRules:\n    - name: broken\n      match: {nonsense: true}\n`);
    server.child.kill('SIGHUP');
    await waitForOutput(/alert rules not reloaded \(the running rules stay\): .*nonsense/);
    await asAdmin.patchHost('rack1-h1', { metadata: { labels: { team: 'db' } } });
    await waitFor('the alert of the still-running rule', () => (alerts().length >= 3 ? true : undefined));
    // Now a rule that watches controllers instead.
    writeFileSync(configFile, `${base}\n  alertRules:\n    - name: controller-touched-host\n      match: {actions: ["host:update"], actorHasRole: controller}\n      severity: low\n`);
    server.child.kill('SIGHUP');
    await waitForOutput(/1 alert rule loaded from/);
    await asController.patchHost('rack1-h1', { metadata: { labels: { team: 'ops' } } });
    const alert = await waitFor('the new rule alert', () => alerts().find((m) => m.rule === 'controller-touched-host'));
    expect(alert.event.roles).toEqual(['controller']);
  });

  async function waitForOutput(pattern: RegExp): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!pattern.test(server.output())) {
      if (Date.now() > deadline) throw new Error(`server never printed ${pattern}; output:\n${server.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
});
