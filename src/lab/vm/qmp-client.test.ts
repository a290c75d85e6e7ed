import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { QmpClient, QmpError, type QmpEvent } from './qmp-client.js';

function pair() {
  const fromQemu = new PassThrough();
  const toQemu = new PassThrough();
  const sent: unknown[] = [];
  toQemu.setEncoding('utf8');
  toQemu.on('data', (line: string) => line.trim().split('\n').forEach((l) => sent.push(JSON.parse(l))));
  return { client: new QmpClient(fromQemu, toQemu), fromQemu, sent };
}

describe('QmpClient', () => {
  it('negotiates, matches replies to commands in order, and passes events through', async () => {
    const { client, fromQemu, sent } = pair();
    const events: QmpEvent[] = [];
    client.on('event', (e: QmpEvent) => events.push(e));
    const connected = client.connect();
    fromQemu.write('{"QMP": {"version": {}, "capabilities": []}}\n');
    await new Promise((r) => setImmediate(r));
    fromQemu.write('{"return": {}}\n');
    await connected;
    const status = client.execute('query-status');
    const bad = client.execute('nonsense');
    // An event between command and reply, and a reply split across writes.
    fromQemu.write('{"event": "RESET", "data": {"guest": true}}\n{"return": {"status": "ru');
    fromQemu.write('nning"}}\n{"error": {"class": "CommandNotFound", "desc": "The command nonsense has not been found"}}\n');
    await expect(status).resolves.toEqual({ status: 'running' });
    const err = await bad.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as Error).message).toContain('nonsense has not been found');
    expect(events).toEqual([{ event: 'RESET', data: { guest: true } }]);
    expect(sent).toEqual([{ execute: 'qmp_capabilities' }, { execute: 'query-status' }, { execute: 'nonsense' }]);
  });

  it('fails pending and later commands when QEMU goes away', async () => {
    const { client, fromQemu } = pair();
    const pending = client.execute('query-status');
    fromQemu.end();
    await expect(pending).rejects.toThrow('QEMU closed its QMP stream');
    await expect(client.execute('cont')).rejects.toThrow('cannot send cont');
    expect(client.closed).toBe(true);
  });
});
