// Admission for Host writes: the checks that need more than a schema (parsing the BMC address,
// looking up referenced Secrets, checksum policy). Runs before anything is stored; any failure
// leaves the database untouched. 400 means "the document is wrong", 422 means "the document is
// fine but refers to something missing or not allowed here".
import { BmcAddressError, parseBmcAddress } from '../../model/bmc-address.js';
import { IngotError, validationError, type FieldProblem } from '../../model/errors.js';
import type { HostSpec } from '../../model/host.js';
import type { Store } from '../../store/store.js';
import { metadataProblems } from './metadata-admission.js';

/** Hex digest lengths per checksum type. */
const DIGEST_HEX_LENGTH = { md5: 32, sha256: 64, sha512: 128 } as const;
type ChecksumType = keyof typeof DIGEST_HEX_LENGTH;

export interface HostAdmissionOptions {
  allowMd5Checksums: boolean;
}

/** Secret references a host may hold, the keys each must have, and an example to create it. */
const SECRET_REFS = [
  { field: 'spec.bmc.credentialsName', get: (s: HostSpec) => s.bmc?.credentialsName, keys: ['username', 'password'], example: '--from-literal username=… --from-literal password=…' },
  { field: 'spec.bmc.caBundleName', get: (s: HostSpec) => s.bmc?.caBundleName, keys: ['ca.crt'], example: '--from-file ca.crt=./bmc-ca.pem' },
  { field: 'spec.userDataName', get: (s: HostSpec) => s.userDataName, keys: ['userData'], example: '--from-file userData=./cloud-init.yaml' },
] as const;

/** Document-level problems (400): address syntax, checksum shape, image URL. */
export function hostSpecProblems(spec: HostSpec, options: HostAdmissionOptions): { invalid: FieldProblem[]; unprocessable: FieldProblem[] } {
  const invalid: FieldProblem[] = [];
  const unprocessable: FieldProblem[] = [];
  if (spec.bmc) {
    try {
      parseBmcAddress(spec.bmc.address);
    } catch (err) {
      if (!(err instanceof BmcAddressError)) throw err;
      invalid.push({ field: 'spec.bmc.address', message: err.message });
    }
  }
  if (spec.image && spec.externallyProvisioned) {
    // Provisioning would write over an OS Ingot did not install, without the inspection and
    // cleaning every other host gets first; the conductor would otherwise ignore the image.
    unprocessable.push({
      field: 'spec.image',
      message:
        'cannot be set on an externally provisioned host (spec.externallyProvisioned: true): to let Ingot provision it, first set spec.externallyProvisioned to false ' +
        '(the host is then inspected, cleaned and becomes available), then set spec.image; to keep its OS, leave spec.image unset',
    });
  }
  if (spec.image) {
    const { url, checksum } = spec.image;
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      invalid.push({ field: 'spec.image.url', message: 'must be an absolute http:// or https:// URL' });
    }
    if (parsed) {
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
        invalid.push({ field: 'spec.image.url', message: `scheme "${parsed.protocol.replace(/:$/, '')}" is not supported; use an http:// or https:// URL` });
      } else if (parsed.username || parsed.password) {
        invalid.push({ field: 'spec.image.url', message: 'must not carry credentials; serve the image from a location agents can read without them' });
      }
    }
    const declared = spec.image.checksumType as ChecksumType | undefined;
    const inferred = declared ?? (Object.entries(DIGEST_HEX_LENGTH).find(([, len]) => len === checksum.length)?.[0] as ChecksumType | undefined);
    if (!inferred) {
      invalid.push({ field: 'spec.image.checksum', message: 'must be a hex sha256 (64 characters) or sha512 (128 characters) digest' });
    } else if (checksum.length !== DIGEST_HEX_LENGTH[inferred]) {
      invalid.push({
        field: 'spec.image.checksum',
        message: `is ${checksum.length} hex characters, but a ${inferred} digest has ${DIGEST_HEX_LENGTH[inferred]}; check spec.image.checksumType`,
      });
    } else if (inferred === 'md5' && !options.allowMd5Checksums) {
      unprocessable.push({
        field: declared ? 'spec.image.checksumType' : 'spec.image.checksum',
        message: 'md5 is too weak to verify images and is not allowed by this server; publish a sha256 or sha512 checksum',
      });
    }
  }
  return { invalid, unprocessable };
}

/**
 * Throws 400 INGOT_ERR_VALIDATION or 422 INGOT_ERR_UNPROCESSABLE (with every problem found of
 * that class) unless the host may be stored. Reads through `store`, so call it inside the
 * transaction that writes the host.
 */
export async function admitHost(
  store: Store,
  input: { metadata: { project?: string; labels?: Record<string, unknown>; annotations?: Record<string, unknown> }; spec: HostSpec },
  options: HostAdmissionOptions,
): Promise<void> {
  const { invalid, unprocessable } = hostSpecProblems(input.spec, options);
  invalid.unshift(...metadataProblems(input.metadata, { kind: 'Host', platformOnly: true }));
  if (invalid.length > 0) throw validationError(invalid);

  for (const ref of SECRET_REFS) {
    const name = ref.get(input.spec);
    if (!name) continue;
    // Hosts are platform-scoped, so only platform Secrets resolve (DESIGN.md: same-scope references only).
    const secret = await store.get({ kind: 'Secret', project: '', name });
    if (!secret) {
      unprocessable.push({ field: ref.field, message: `Secret "${name}" does not exist; create it first with \`ingot secret create ${name} ${ref.example}\`` });
      continue;
    }
    const keys = Array.isArray(secret.status.keys) ? (secret.status.keys as string[]) : [];
    const missing = ref.keys.filter((k) => !keys.includes(k));
    if (missing.length > 0) {
      unprocessable.push({
        field: ref.field,
        message: `Secret "${name}" lacks the key${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (it has: ${keys.join(', ') || 'none'}); replace it with \`ingot secret create ${name} ${ref.example}\``,
      });
    }
  }
  if (unprocessable.length > 0) {
    throw new IngotError('INGOT_ERR_UNPROCESSABLE', unprocessable.map((p) => `${p.field}: ${p.message}`).join('; '), { details: unprocessable });
  }
}

/** Names of the Secrets a host spec refers to (for "who uses this secret?"). */
export function referencedSecrets(spec: HostSpec): string[] {
  return SECRET_REFS.map((r) => r.get(spec)).filter((n): n is string => typeof n === 'string');
}
