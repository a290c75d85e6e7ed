// One lab VM behind a real Ingot, set up only as a user sets it up: the built CLI (`ingot
// ramdisk build`, `ingot server`, `ingot lab --vms 1`, `ingot lab enroll`, `ingot host …`) and
// the HTTP API. Shared by the VM end-to-end test (test/vm-e2e.test.ts) and `npm run bench:vm`;
// it asserts nothing (no vitest here), it throws with what it saw when something does not happen.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { GUEST_SERVICE_ADDRESS } from '../../src/lab/vm/guest-network.js';
import type { Host } from '../../src/model/host.js';
import { BIN, ensureBuilt, runIngot, startIngotServer, type CliResult, type IngotServerProcess } from './ingot-process.js';

export const AGENT_GUEST_PORT = 7386;

export interface RamdiskBuilt {
  digest: string;
  buildSeconds: number;
  sizes: { kernel: number; initramfs: number; initramfsUncompressed: number; bootIso: number };
}

export interface VmRigOptions {
  work: string;
  diskGiB: number;
  memoryMiB: number;
  /** Files the image server offers, by URL path (e.g. `/marker.raw`). */
  images: Record<string, string>;
}

export class VmRig {
  readonly serverDir: string;
  readonly labDir: string;
  server: IngotServerProcess | undefined;
  lab: ChildProcessWithoutNullStreams | undefined;
  labOutput = '';
  hostName = '';
  systemId = '';
  private imageServer: Server | undefined;
  private imagesPort = 0;
  private readonly env: NodeJS.ProcessEnv;

  constructor(readonly opts: VmRigOptions) {
    this.serverDir = join(opts.work, 'server');
    this.labDir = join(opts.work, 'lab');
    mkdirSync(opts.work, { recursive: true });
    this.env = { ...process.env, HOME: opts.work, INGOT_CONFIG: join(opts.work, 'cli.json'), INGOT_SERVER: '', INGOT_TOKEN: '', NO_COLOR: '1' };
    ensureBuilt();
  }

  /** `ingot …` against the rig's server; throws with the output unless it exits 0. */
  async ingot(args: string[], timeoutMs = 120_000): Promise<CliResult> {
    const r = await runIngot(args, { cwd: this.opts.work, env: { ...this.env, INGOT_SERVER: this.server?.apiUrl ?? '', INGOT_TOKEN: this.server?.token ?? '' }, timeoutMs });
    if (r.code !== 0) throw new Error(`ingot ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    return r;
  }

  /** `ingot ramdisk build -o json` into the server's data directory; what it printed. */
  async buildRamdisk(timeoutMs: number): Promise<RamdiskBuilt> {
    return JSON.parse((await this.ingot(['ramdisk', 'build', '--quiet', '--data-dir', this.serverDir, '-o', 'json'], timeoutMs)).stdout) as RamdiskBuilt;
  }

  /**
   * The image server (host loopback; the conductor fetches from it with images.downloadSource
   * local and the agent from the agent listener, so the VM needs no route to it), `ingot
   * server` with the agent API URL the VM reaches, and `ingot lab --vms 1` forwarding that
   * URL's port to the agent listener.
   */
  async start(): Promise<void> {
    this.imageServer = createServer((req, res) => {
      const file = this.opts.images[req.url ?? ''];
      if (!file) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(statSync(file).size) });
      createReadStream(file).pipe(res);
    });
    this.imagesPort = await new Promise<number>((resolve) => this.imageServer!.listen(0, '127.0.0.1', () => resolve((this.imageServer!.address() as AddressInfo).port)));
    const config = [
      `agentApiUrl: http://${GUEST_SERVICE_ADDRESS}:${AGENT_GUEST_PORT}`,
      'conductor: {powerPollMs: 1000, agentPollMs: 1000}',
      'images: {downloadSource: local}',
    ].join('\n');
    this.server = await startIngotServer({ dataDir: this.serverDir, cwd: this.opts.work, env: this.env, config });
    const agentPort = new URL(this.server.agentUrl).port;
    this.lab = spawn(process.execPath, [
      BIN, 'lab', '--vms', '1', '--vm-memory', String(this.opts.memoryMiB), '--vm-disk-size', String(this.opts.diskGiB),
      '--vm-forward', `${AGENT_GUEST_PORT}:${agentPort}`, '--listen', '127.0.0.1:0', '--data-dir', this.labDir,
    ], { cwd: this.opts.work, env: this.env });
    this.lab.stdout.on('data', (c: Buffer) => (this.labOutput += c.toString()));
    this.lab.stderr.on('data', (c: Buffer) => (this.labOutput += c.toString()));
    const deadline = Date.now() + 60_000;
    while (!this.labOutput.includes('Press Ctrl-C')) {
      if (this.lab.exitCode !== null || Date.now() > deadline) throw new Error(`ingot lab did not start:\n${this.labOutput}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** `ingot lab enroll`; remembers the one host's name and lab system id. */
  async enroll(): Promise<void> {
    await this.ingot(['lab', 'enroll', '--data-dir', this.labDir]);
    const hosts = JSON.parse((await this.ingot(['host', 'list', '-o', 'json'])).stdout) as { items: Array<{ metadata: { name: string }; spec: { bmc: { address: string } } }> };
    if (hosts.items.length !== 1) throw new Error(`expected one enrolled host, got ${hosts.items.length}`);
    this.hostName = hosts.items[0]!.metadata.name;
    this.systemId = hosts.items[0]!.spec.bmc.address.split('/').pop()!;
  }

  imageUrl(path: string): string {
    return `http://127.0.0.1:${this.imagesPort}${path}`;
  }

  async api<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.server!.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.server!.token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': contentType } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  async patchHost(patch: unknown): Promise<void> {
    const r = await this.api('PATCH', `/api/v1/hosts/${this.hostName}`, patch, 'application/merge-patch+json');
    if (r.status !== 200) throw new Error(`PATCH host ${this.hostName}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  async host(): Promise<Host> {
    const r = await this.api<Host>('GET', `/api/v1/hosts/${this.hostName}`);
    if (r.status !== 200) throw new Error(`GET host ${this.hostName}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Polls until `check` passes; on timeout says where the host was and shows the serial console. */
  async waitFor<T>(what: string, check: (h: Host) => T | undefined | false, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const h = await this.host();
      const result = check(h);
      if (result) return result;
      if (Date.now() > deadline) {
        const s = h.status;
        throw new Error(
          `host ${this.hostName} did not reach "${what}" in ${timeoutMs / 1000} s: state ${s.provisioning.state}, errorType "${s.errorType}", errorMessage "${s.errorMessage}"\n` +
            `serial console (end):\n${this.console().slice(-3000)}\nlab (end):\n${this.labOutput.slice(-1500)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  private systemFile(name: string): string {
    return join(this.labDir, 'systems', this.systemId, name);
  }

  /** Everything the VM wrote to its serial port so far. */
  console(): string {
    const file = this.systemFile('console.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  diskPath(): string {
    return this.systemFile('disk-0.img');
  }

  /** The first NIC's MAC on QEMU's command line (qemu.log): the VM as it really runs. */
  vmMac(): string | undefined {
    return /virtio-net-pci,[^ ]*mac=([0-9a-f:]{17})/i.exec(readFileSync(this.systemFile('qemu.log'), 'utf8'))?.[1];
  }

  writeFile(name: string, text: string): string {
    const file = join(this.opts.work, name);
    writeFileSync(file, text);
    return file;
  }

  async stop(): Promise<void> {
    for (const child of [this.lab, this.server?.child]) {
      if (child && child.exitCode === null && child.signalCode === null) {
        const closed = new Promise((r) => child.once('close', r));
        child.kill('SIGTERM');
        await closed;
      }
    }
    if (this.imageServer) await new Promise((r) => this.imageServer!.close(r));
  }
}

/** sha256sum streams the file: a VM's disk is a sparse file of GiBs. */
export function sha256File(path: string): string {
  return execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0]!;
}
