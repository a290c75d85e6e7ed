// The lab's own certificate authority and the server certificate its Redfish service presents.
// Real BMCs ship self-signed or site-CA certificates; Ingot verifies BMC TLS by default (DESIGN:
// "verify its TLS certificate ... a CA bundle per host"), so the lab hands out a CA file that
// enrollment stores in the `lab-ca` Secret. Generated once with the openssl CLI and reused, so
// hosts enrolled against a lab keep working across lab restarts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const run = promisify(execFile);

export interface LabCa {
  dir: string;
  caFile: string;
  caKeyFile: string;
  certFile: string;
  keyFile: string;
  caPem: string;
  certPem: string;
  keyPem: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function openssl(args: string[]): Promise<void> {
  try {
    // execFile, no shell: every argument reaches openssl verbatim.
    await run('openssl', args, { timeout: 60_000, maxBuffer: 1024 * 1024 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed while creating the lab CA: ${stderr.trim() || String(err)}; is the openssl CLI installed?`, {
      cause: err,
    });
  }
}

/**
 * Returns the lab CA and server certificate in DATA_DIR/ca/, creating them on first use.
 * The server certificate names localhost, 127.0.0.1 and ::1 as subjectAltNames (RFC 6125:
 * clients match the SAN, not the CN). Keys are written mode 0600.
 */
export async function ensureLabCa(dataDir: string, opts: { extraNames?: string[] } = {}): Promise<LabCa> {
  const dir = join(dataDir, 'ca');
  const caFile = join(dir, 'ca.crt');
  const caKeyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  await mkdir(dir, { recursive: true, mode: 0o700 });

  if (!(await exists(caFile)) || !(await exists(caKeyFile))) {
    await rm(certFile, { force: true });
    await rm(keyFile, { force: true });
    await openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', caKeyFile, '-out', caFile, '-days', '3650', '-subj', '/O=Ingot Lab/CN=Ingot Lab CA',
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectKeyIdentifier=hash',
    ]);
    await chmod(caKeyFile, 0o600);
  }

  if (!(await exists(certFile)) || !(await exists(keyFile))) {
    const csrFile = join(dir, 'server.csr');
    const extFile = join(dir, 'server.ext');
    const names = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', ...(opts.extraNames ?? [])];
    await writeFile(
      extFile,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        `subjectAltName=${names.join(',')}`,
        'authorityKeyIdentifier=keyid',
        '',
      ].join('\n'),
    );
    await openssl([
      'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', csrFile, '-subj', '/O=Ingot Lab/CN=localhost',
    ]);
    await chmod(keyFile, 0o600);
    // Serial chosen by openssl (-set_serial would need bookkeeping); 825 days is the longest
    // validity Apple platforms accept for TLS server certificates.
    await openssl([
      'x509', '-req', '-in', csrFile, '-CA', caFile, '-CAkey', caKeyFile, '-CAcreateserial',
      '-out', certFile, '-days', '825', '-sha256', '-extfile', extFile,
    ]);
    await rm(csrFile, { force: true });
    await rm(extFile, { force: true });
    await rm(join(dir, 'ca.srl'), { force: true });
  }

  const [caPem, certPem, keyPem] = await Promise.all([readFile(caFile, 'utf8'), readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  return { dir, caFile, caKeyFile, certFile, keyFile, caPem, certPem, keyPem };
}
