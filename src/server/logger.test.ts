import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

describe('createLogger', () => {
  it('redacts credentials and secret values', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = createLogger({ level: 'info', destination });
    log.info({ req: { headers: { authorization: 'Bearer ingot_SECRET1' } } }, 'request');
    log.info({ body: { stringData: { password: 'SECRET2' } }, credentials: { password: 'SECRET3' }, token: 'SECRET4' }, 'body');
    log.info({ host: { spec: { userData: 'SECRET5' } } }, 'nested');
    const text = lines.join('');
    expect(text).toContain('[redacted]');
    for (const s of ['SECRET1', 'SECRET2', 'SECRET3', 'SECRET4', 'SECRET5']) expect(text).not.toContain(s);
  });
});
