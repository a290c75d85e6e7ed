// Secret: write-only values (BMC credentials, user data, CA bundles), encrypted at rest.
// Reads return the keys and a version, never a value.
import { Type, type Static } from 'typebox';
import { API_VERSION, InputMetadata, type Resource } from './envelope.js';

/** Keys as Kubernetes allows them in Secrets: alphanumerics, '-', '_' and '.'. */
export const SECRET_KEY_PATTERN = '^[-._a-zA-Z0-9]{1,253}$';
/** Upper bound on one secret's total value size, like Kubernetes' 1 MiB, minus room for the envelope. */
export const MAX_SECRET_BYTES = 512 * 1024;

export const SecretInput = Type.Object(
  {
    apiVersion: Type.Optional(Type.Literal(API_VERSION)),
    kind: Type.Optional(Type.Literal('Secret')),
    metadata: InputMetadata,
    stringData: Type.Record(Type.String({ pattern: SECRET_KEY_PATTERN }), Type.String({ maxLength: MAX_SECRET_BYTES }), {
      minProperties: 1,
      maxProperties: 32,
      additionalProperties: false,
      description: 'write-only values; never returned',
    }),
    type: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: false },
);
export type SecretInput = Static<typeof SecretInput>;

export interface SecretSpec {
  type: string;
}
export interface SecretStatus {
  keys: string[];
  /** Increases by one on every change of the values; hosts record the version last verified good. */
  version: number;
}
export type Secret = Resource<SecretSpec, SecretStatus> & { kind: 'Secret' };
