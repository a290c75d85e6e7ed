import { describe, expect, it } from 'vitest';
import { ApiError } from '../client/api-error.js';
import { HostFailedError, WaitTimeoutError } from '../client/wait-for-host-state.js';
import { explainError } from './cli-error.js';

const server = 'http://127.0.0.1:7385';

describe('explainError', () => {
  it('tells what to do when the server cannot be reached', () => {
    const err = new ApiError({ status: 0, code: 'INGOT_ERR_CONNECTION', message: `cannot reach the Ingot API at ${server}: connection refused`, server });
    expect(explainError(err)).toBe(`cannot reach the Ingot API at ${server}: connection refused. Is \`ingot server\` running? Set INGOT_SERVER or run \`ingot login\``);
  });

  it('points a refused token at ingot login', () => {
    const err = new ApiError({ status: 401, code: 'INGOT_ERR_UNAUTHENTICATED', message: 'the token is not valid', server });
    expect(explainError(err)).toBe(`the token was refused: the token is not valid; get a valid token and run \`ingot login --server ${server} --token TOKEN\` (or set INGOT_TOKEN)`);
  });

  it('lists field details the message does not already name', () => {
    const err = new ApiError({ status: 400, code: 'INGOT_ERR_VALIDATION', message: 'the host is not valid', details: [{ field: 'spec.bmc.address', message: 'unknown scheme' }], server });
    expect(explainError(err)).toBe('the host is not valid\n  spec.bmc.address: unknown scheme');
    const named = new ApiError({ status: 400, code: 'INGOT_ERR_VALIDATION', message: 'spec.bogus: unknown field', details: [{ field: 'spec.bogus', message: 'unknown field' }], server });
    expect(explainError(named)).toBe('spec.bogus: unknown field');
  });

  it('says where a host failed and what to look at next', () => {
    const err = new HostFailedError({ hostName: 'r1-n07', failedIn: 'inspecting', errorType: 'inspection', errorMessage: 'agent timed out', message: 'host r1-n07 failed in inspecting: inspection: agent timed out' });
    const text = explainError(err);
    expect(text.split('\n')[0]).toBe('host r1-n07 failed in inspecting: inspection: agent timed out');
    expect(text).toContain('ingot host events r1-n07');
  });

  it('suggests a longer timeout after a timeout', () => {
    expect(explainError(new WaitTimeoutError('n1', 'available', 60_000, 'inspecting'))).toMatch(/^host n1 did not reach available within 1m \(last state: inspecting\); .*--timeout$/);
  });
});
