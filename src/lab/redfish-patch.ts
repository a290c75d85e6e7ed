// PATCH planning per DSP0266 "Update (PATCH)": writable properties are validated and applied;
// read-only and unknown ones are reported (PropertyNotWritable / PropertyUnknown). If nothing
// in the body can be applied the request fails with 400; if some of it can, the service
// applies that part and answers 200 with the messages. A bad value fails the whole request
// and changes nothing.
import {
  RedfishError,
  message,
  propertyNotWritable,
  propertyUnknown,
  propertyValueFormatError,
  propertyValueNotInList,
  propertyValueTypeError,
  type RedfishMessage,
} from './redfish-messages.js';

export type Field =
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'string'; maxLength: number; nullable?: boolean; check?: (v: string) => string | undefined }
  | { kind: 'boolean' }
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'object'; fields: Record<string, Field> };

export interface PatchPlan {
  /** The accepted part of the body, same shape, values validated. */
  accepted: Record<string, unknown>;
  warnings: RedfishMessage[];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkValue(path: string, field: Field, value: unknown, errors: RedfishMessage[]): boolean {
  switch (field.kind) {
    case 'enum':
      if (typeof value !== 'string') {
        errors.push(propertyValueTypeError(path, value, 'string'));
        return false;
      }
      if (!field.values.includes(value)) {
        errors.push(propertyValueNotInList(path, value, field.values));
        return false;
      }
      return true;
    case 'string': {
      if (value === null && field.nullable) return true;
      if (typeof value !== 'string') {
        errors.push(propertyValueTypeError(path, value, field.nullable ? 'string or null' : 'string'));
        return false;
      }
      if (value.length > field.maxLength) {
        errors.push(propertyValueFormatError(path, value.slice(0, 32), `longer than ${field.maxLength} characters`));
        return false;
      }
      const why = field.check?.(value);
      if (why) {
        errors.push(propertyValueFormatError(path, value.slice(0, 256), why));
        return false;
      }
      return true;
    }
    case 'boolean':
      if (typeof value !== 'boolean') {
        errors.push(propertyValueTypeError(path, value, 'boolean'));
        return false;
      }
      return true;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < field.min || value > field.max) {
        errors.push(propertyValueTypeError(path, value, `integer from ${field.min} to ${field.max}`));
        return false;
      }
      return true;
    case 'object':
      return true;
  }
}

function walk(
  body: Record<string, unknown>,
  fields: Record<string, Field>,
  current: Record<string, unknown>,
  prefix: string,
  errors: RedfishMessage[],
  warnings: RedfishMessage[],
): Record<string, unknown> {
  const accepted: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const path = prefix ? `${prefix}/${key}` : key;
    const field = fields[key];
    if (!field) {
      warnings.push(Object.hasOwn(current, key) ? propertyNotWritable(path) : propertyUnknown(path));
      continue;
    }
    if (field.kind === 'object') {
      if (!isPlainObject(value)) {
        errors.push(propertyValueTypeError(path, value, 'object'));
        continue;
      }
      const sub = walk(value, field.fields, isPlainObject(current[key]) ? (current[key] as Record<string, unknown>) : {}, path, errors, warnings);
      if (Object.keys(sub).length > 0) accepted[key] = sub;
      continue;
    }
    if (checkValue(path, field, value, errors)) accepted[key] = value;
  }
  return accepted;
}

/**
 * Plans a PATCH of `current` (the resource as GET shows it) with `body`. Throws a 400
 * RedfishError when the body is empty, has a bad value, or has nothing writable.
 */
export function planPatch(body: unknown, fields: Record<string, Field>, current: Record<string, unknown>): PatchPlan {
  if (!isPlainObject(body)) {
    throw new RedfishError(400, [message('UnrecognizedRequestBody', 'The service detected a malformed request body that it was unable to interpret: a PATCH body must be a JSON object.', { severity: 'Critical', resolution: 'Correct the request body and resubmit the request if it failed.' })]);
  }
  if (Object.keys(body).length === 0) {
    throw new RedfishError(400, [message('EmptyJSON', 'The request body submitted contained an empty JSON object and the service is unable to process it.', { severity: 'Warning', resolution: 'Add properties in the JSON object and resubmit the request.' })]);
  }
  const errors: RedfishMessage[] = [];
  const warnings: RedfishMessage[] = [];
  const accepted = walk(body, fields, current, '', errors, warnings);
  if (errors.length > 0) throw new RedfishError(400, [...errors, ...warnings]);
  if (Object.keys(accepted).length === 0) throw new RedfishError(400, warnings);
  return { accepted, warnings };
}
