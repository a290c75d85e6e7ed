import { describe, expect, it } from 'vitest';
import { IngotError } from '../model/errors.js';
import { toErrorResponse } from './error-handler.js';
import { humanizeSchemaErrors } from './validation-messages.js';

describe('toErrorResponse', () => {
  it('keeps internal details out of 500 answers', () => {
    const { status, body } = toErrorResponse(new Error('SQLITE_CORRUPT: SELECT * FROM secret_values at /srv/ingot.db'), 'req-1');
    expect(status).toBe(500);
    expect(body.code).toBe('INGOT_ERR_INTERNAL');
    expect(body.message).toContain('req-1');
    expect(JSON.stringify(body)).not.toMatch(/SQLITE|SELECT|\/srv/);
  });
  it('passes IngotErrors through with their status', () => {
    const { status, body } = toErrorResponse(new IngotError('INGOT_ERR_CONFLICT', 'changed'), 'r');
    expect(status).toBe(409);
    expect(body).toEqual({ code: 'INGOT_ERR_CONFLICT', message: 'changed', requestId: 'r' });
  });
});

describe('humanizeSchemaErrors', () => {
  it('names nested fields, quoting keys that are not identifiers', () => {
    const problems = humanizeSchemaErrors([
      { instancePath: '/metadata/labels/a~1b', keyword: 'maxLength', params: { limit: 63 } },
      { instancePath: '/spec', keyword: 'required', params: { missingProperty: 'bmc' } },
      { instancePath: '/spec/bootMode', keyword: 'enum', params: { allowedValues: ['UEFI', 'legacy'] } },
    ]);
    expect(problems).toEqual([
      { field: 'metadata.labels["a/b"]', message: 'must be at most 63 characters long' },
      { field: 'spec.bmc', message: 'is required' },
      { field: 'spec.bootMode', message: 'must be one of: UEFI, legacy' },
    ]);
  });
});
