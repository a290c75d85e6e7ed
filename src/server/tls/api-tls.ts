// TLS for the public API. Operators give a certificate and key (PEM); `clientCaFile`
// turns on mutual TLS, where the handshake itself refuses a client without a certificate from
// that CA (the bearer token is still required on top: mTLS proves the machine, the token the
// caller). Dev mode makes a throwaway CA and server certificate with openssl so HTTPS can be
// tried without a PKI; it is loudly marked as such.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecureContextOptions, TlsOptions } from 'node:tls';

export interface ApiTlsConfig {
  /** PEM server certificate (chain) file. Required unless `dev`. */
  certFile?: string;
  /** PEM private key file of the certificate. Required unless `dev`. */
  keyFile?: string;
  /** PEM CA bundle: clients must present a certificate issued by it (mutual TLS). */
  clientCaFile?: string;
  /** Generate (once) a self-signed CA and a server certificate for 127.0.0.1/localhost in DATA_DIR/tls. Development only. */
  dev?: boolean;
}

export interface ApiHttpsOptions {
  https: TlsOptions & SecureContextOptions;
  /** Dev mode: the generated CA certificate clients must trust. */
  devCaFile?: string;
}

/** PEM files are small; a bigger file is not what the operator meant to give. */
const MAX_PEM_BYTES = 1024 * 1024;
const DEV_CA_DAYS = 825;
const DEV_SERVER_DAYS = 365;
/** Regenerate the dev certificates when the server one has less than this left. */
const DEV_RENEW_MS = 7 * 24 * 3600 * 1000;

function readPem(path: string, field: string, marker: RegExp, what: string): string {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_PEM_BYTES) throw new Error(`larger than ${MAX_PEM_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (err) {
    throw new Error(`${field} ${path} cannot be read (${(err as Error).message}); give the PEM file of ${what}`);
  }
  if (!marker.test(text)) throw new Error(`${field} ${path} is not a PEM file of ${what} (no "-----BEGIN …-----" block of the right kind)`);
  return text;
}

const CERT_MARKER = /-----BEGIN CERTIFICATE-----/;
const KEY_MARKER = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString('utf8').trim().split('\n')[0] ?? '';
    throw new Error(`tls dev mode: openssl ${args[0]} failed (${stderr || (err as Error).message}); install openssl or give --tls-cert and --tls-key`);
  }
}

function usable(certFile: string, now: number): boolean {
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    return Date.parse(cert.validTo) - now > DEV_RENEW_MS;
  } catch {
    return false;
  }
}

/**
 * Creates DATA_DIR/tls/{ca.crt,ca.key,server.crt,server.key} (keys 0600) unless a usable set
 * is already there, so clients that trusted the CA once keep working across restarts.
 */
export function ensureDevCertificates(dataDir: string, now = Date.now()): { caFile: string; certFile: string; keyFile: string; created: boolean } {
  const dir = join(dataDir, 'tls');
  const caFile = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  if ([caFile, caKey, certFile, keyFile].every((f) => existsSync(f)) && usable(certFile, now) && usable(caFile, now)) {
    return { caFile, certFile, keyFile, created: false };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  for (const f of [caFile, caKey, certFile, keyFile, join(dir, 'server.csr'), join(dir, 'server.ext'), join(dir, 'ca.srl')]) rmSync(f, { force: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-days', String(DEV_CA_DAYS), '-subj', '/CN=Ingot development CA (not for production)',
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', 'ca.key', '-out', 'ca.crt'], dir);
  openssl(['req', ...ec, '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr'], dir);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', String(DEV_SERVER_DAYS),
    '-extfile', 'server.ext', '-out', 'server.crt'], dir);
  chmodSync(caKey, 0o600);
  chmodSync(keyFile, 0o600);
  for (const f of ['server.csr', 'server.ext', 'ca.srl']) rmSync(join(dir, f), { force: true });
  return { caFile, certFile, keyFile, created: true };
}

/** Validates the TLS settings and reads the files into Node https server options. */
export function loadApiHttpsOptions(config: ApiTlsConfig, dataDir: string): ApiHttpsOptions {
  let certFile = config.certFile;
  let keyFile = config.keyFile;
  let devCaFile: string | undefined;
  if (config.dev) {
    if (certFile || keyFile) throw new Error('tls: dev mode generates its own certificate; give either tls.dev (--tls-dev) or tls.certFile and tls.keyFile (--tls-cert/--tls-key), not both');
    const dev = ensureDevCertificates(dataDir);
    certFile = dev.certFile;
    keyFile = dev.keyFile;
    devCaFile = dev.caFile;
  } else if (!certFile || !keyFile) {
    throw new Error('tls: both tls.certFile and tls.keyFile (--tls-cert and --tls-key) are needed, or tls.dev (--tls-dev) for a generated development certificate');
  }
  const https: TlsOptions & SecureContextOptions = {
    cert: readPem(certFile, 'tls.certFile', CERT_MARKER, 'the server certificate'),
    key: readPem(keyFile, 'tls.keyFile', KEY_MARKER, "the server certificate's private key"),
    // TLS 1.0/1.1 are deprecated (RFC 8996).
    minVersion: 'TLSv1.2',
  };
  if (config.clientCaFile) {
    https.ca = readPem(config.clientCaFile, 'tls.clientCaFile', CERT_MARKER, 'the CA that issues client certificates');
    // Handshake-level refusal: a client without a certificate chaining to `ca` never reaches HTTP.
    https.requestCert = true;
    https.rejectUnauthorized = true;
  }
  return { https, ...(devCaFile ? { devCaFile } : {}) };
}
