// What this machine offers for lab VMs: the QEMU binary, Debian's OVMF firmware (with or
// without the Secure Boot build), the helpers the lab runs beside QEMU, and whether KVM is
// usable. Every missing piece is reported with the Debian package that provides it.
import { constants as fsConstants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import { join } from 'node:path';
import { findOnPath } from '../../images/qemu-img.js';

/** Where Debian's `ovmf` package puts its firmware (4 MiB flash layout). */
export const OVMF_DIR = '/usr/share/OVMF';

export interface OvmfFiles {
  /** Read-only firmware code, mapped as pflash unit 0. */
  code: string;
  /** Template of the UEFI variable store; each VM gets its own copy (pflash unit 1). */
  vars: string;
  /**
   * The Secure Boot build (needs SMM) and a variable store with Microsoft's keys enrolled and
   * Secure Boot enforcing; absent when the package lacks them.
   */
  secureBoot?: { code: string; vars: string };
}

export interface VmHost {
  qemu: string;
  /** `kvm` when /dev/kvm opens read-write, else `tcg` (emulation: slower, works anywhere). */
  accel: 'kvm' | 'tcg';
  ovmf: OvmfFiles;
  /** util-linux setpriv: starts QEMU with a parent-death signal, so no VM outlives the lab. */
  setpriv: string;
  /** socat: relays each guest connection on a forwarded port to the host's loopback. */
  socat: string;
}

export class VmHostError extends Error {}

async function readable(path: string): Promise<boolean> {
  try {
    await access(path, fsConstants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when KVM can be used: /dev/kvm exists and this process may open it read-write. */
export async function kvmUsable(device = '/dev/kvm'): Promise<boolean> {
  try {
    const handle = await open(device, 'r+');
    await handle.close();
    return true;
  } catch {
    return false;
  }
}

export interface ProbeOptions {
  /** Force an accelerator instead of detecting one (`tcg` also where KVM works). */
  accel?: 'kvm' | 'tcg';
  ovmfDir?: string;
}

/** Finds everything lab VMs need, or throws one error listing every missing piece and its fix. */
export async function probeVmHost(opts: ProbeOptions = {}): Promise<VmHost> {
  const missing: string[] = [];
  const need = async (tool: string, pkg: string): Promise<string> => {
    const found = await findOnPath(tool);
    if (!found) missing.push(`${tool} (apt-get install ${pkg})`);
    return found ?? '';
  };
  const qemu = await need('qemu-system-x86_64', 'qemu-system-x86');
  const setpriv = await need('setpriv', 'util-linux');
  const socat = await need('socat', 'socat');
  const dir = opts.ovmfDir ?? OVMF_DIR;
  const code = join(dir, 'OVMF_CODE_4M.fd');
  const vars = join(dir, 'OVMF_VARS_4M.fd');
  if (!(await readable(code)) || !(await readable(vars))) missing.push(`UEFI firmware ${code} and ${vars} (apt-get install ovmf)`);
  if (missing.length > 0) throw new VmHostError(`lab VMs need ${missing.join(', ')}`);
  const sbCode = join(dir, 'OVMF_CODE_4M.secboot.fd');
  const sbVars = join(dir, 'OVMF_VARS_4M.ms.fd');
  const secureBoot = (await readable(sbCode)) && (await readable(sbVars)) ? { code: sbCode, vars: sbVars } : undefined;
  const kvm = await kvmUsable();
  if (opts.accel === 'kvm' && !kvm) throw new VmHostError('--vm-accel kvm: /dev/kvm is missing or not writable by this user; use --vm-accel tcg (or leave it out to detect)');
  return { qemu, accel: opts.accel ?? (kvm ? 'kvm' : 'tcg'), ovmf: { code, vars, ...(secureBoot ? { secureBoot } : {}) }, setpriv, socat };
}
