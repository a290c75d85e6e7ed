// Turning `ingot claim create` / `ingot claimset create` flags into a ClaimSpec, checked
// locally so a typo is named before anything is sent. File contents (user data, SSH keys) are
// read with size bounds and never echoed back in messages.
import { readFileSync, statSync } from 'node:fs';
import { NODE_TYPE_NAME_PATTERN, MAX_USER_DATA_BYTES, type ClaimNetwork, type ClaimSpec } from '../model/claim.js';
import { DNS_LABEL } from '../model/envelope.js';
import { CliError } from './cli-error.js';

const NODE_TYPE_NAME = new RegExp(NODE_TYPE_NAME_PATTERN);
const SSH_KEY = /^(ssh-|ecdsa-|sk-)\S+\s+\S+/;
const MAX_SSH_KEYS = 32;
const MAX_SSH_KEY_FILE_BYTES = 256 * 1024;
const MAX_NETWORKS = 8;

export interface ClaimFlags {
  nodeType?: string;
  userDataFile?: string;
  userDataSecret?: string;
  sshKeyFile?: string[];
  network?: string[];
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function checkName(name: string, what: string): void {
  if (!DNS_LABEL.test(name) || name.length > 63) throw new CliError(`${what} name "${name}" is not a DNS label: use lower-case letters, digits and "-", at most 63 characters`);
}

/** `--network POOL` or `--network POOL=ADDRESS`. */
export function parseNetworkFlag(value: string): ClaimNetwork {
  const eq = value.indexOf('=');
  const pool = eq < 0 ? value : value.slice(0, eq);
  const address = eq < 0 ? undefined : value.slice(eq + 1);
  if (!DNS_LABEL.test(pool) || pool.length > 63) throw new CliError(`--network ${value}: "${pool}" is not an IP pool name; use --network POOL or --network POOL=ADDRESS (see \`ingot ippool list\`)`);
  if (address !== undefined) {
    if (address.length < 2 || address.length > 45 || !/^[0-9a-fA-F.:]+$/.test(address)) {
      throw new CliError(`--network ${value}: "${address}" is not an IPv4 or IPv6 address; use --network POOL=192.0.2.10, or leave the address out for the lowest free one`);
    }
    return { ipPoolName: pool, address };
  }
  return { ipPoolName: pool };
}

function readBounded(path: string, max: number, flag: string): string {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new CliError(`${flag} ${path}: not a regular file`);
    size = st.size;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${flag}: cannot read ${path}; check the path`);
  }
  if (size > max) throw new CliError(`${flag} ${path}: the file is ${size} bytes, more than the ${max} allowed`);
  return readFileSync(path, 'utf8');
}

/** The keys of an authorized_keys-style file: one per line; blank lines and # comments skipped. */
export function parseSshKeys(text: string, source: string): string[] {
  const keys: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (!SSH_KEY.test(line)) throw new CliError(`--ssh-key-file ${source}, line ${i + 1}: not an SSH public key (expected "ssh-ed25519 AAAA… comment", as in a .pub file); is this the private key?`);
    keys.push(line);
  });
  if (keys.length === 0) throw new CliError(`--ssh-key-file ${source}: holds no public key`);
  return keys;
}

/** The ClaimSpec the flags ask for; throws CliError naming the flag at fault. */
export function claimSpecFromFlags(flags: ClaimFlags): ClaimSpec {
  const nodeType = flags.nodeType;
  if (!nodeType) throw new CliError('--node-type is required: the kind of machine to claim (see `ingot nodetype list --project PROJECT`)');
  if (!NODE_TYPE_NAME.test(nodeType) || nodeType.length > 253) throw new CliError(`--node-type "${nodeType}" is not a node type name (lower-case letters, digits, "-" and "."); see \`ingot nodetype list --project PROJECT\``);
  if (flags.userDataFile !== undefined && flags.userDataSecret !== undefined) {
    throw new CliError('give either --user-data-file or --user-data-secret, not both');
  }
  const spec: ClaimSpec = { nodeTypeName: nodeType };
  if (flags.userDataFile !== undefined) spec.userData = readBounded(flags.userDataFile, MAX_USER_DATA_BYTES, '--user-data-file');
  if (flags.userDataSecret !== undefined) {
    if (!DNS_LABEL.test(flags.userDataSecret) || flags.userDataSecret.length > 63) {
      throw new CliError(`--user-data-secret "${flags.userDataSecret}" is not a secret name; create one with \`ingot secret create NAME --project PROJECT --from-file userData=FILE\``);
    }
    spec.userDataSecretName = flags.userDataSecret;
  }
  const keys: string[] = [];
  for (const file of flags.sshKeyFile ?? []) keys.push(...parseSshKeys(readBounded(file, MAX_SSH_KEY_FILE_BYTES, '--ssh-key-file'), file));
  if (keys.length > MAX_SSH_KEYS) throw new CliError(`--ssh-key-file: ${keys.length} keys given, at most ${MAX_SSH_KEYS} allowed`);
  if (keys.length > 0) spec.sshKeys = [...new Set(keys)];
  const networks = (flags.network ?? []).map(parseNetworkFlag);
  if (networks.length > MAX_NETWORKS) throw new CliError(`--network is given ${networks.length} times; a claim has at most ${MAX_NETWORKS} networks`);
  if (networks.length > 0) spec.networks = networks;
  return spec;
}

/** `--label k=v` (repeatable) into a map. */
export function parseLabels(values: string[] | undefined): Record<string, string> | undefined {
  if (!values || values.length === 0) return undefined;
  const labels: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new CliError(`--label ${v}: use KEY=VALUE, e.g. --label app=web`);
    labels[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return labels;
}
