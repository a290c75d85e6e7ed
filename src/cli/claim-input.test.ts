import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimSpecFromFlags, parseLabels, parseNetworkFlag, parseSshKeys } from './claim-input.js';

const dir = mkdtempSync(join(tmpdir(), 'ingot-claim-input-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('claim flags', () => {
  it('--network POOL and POOL=ADDRESS', () => {
    expect(parseNetworkFlag('rack1')).toEqual({ ipPoolName: 'rack1' });
    expect(parseNetworkFlag('rack1=192.0.2.15')).toEqual({ ipPoolName: 'rack1', address: '192.0.2.15' });
    expect(parseNetworkFlag('v6=2001:db8::10')).toEqual({ ipPoolName: 'v6', address: '2001:db8::10' });
    expect(() => parseNetworkFlag('Rack_1')).toThrow(/"Rack_1" is not an IP pool name/);
    expect(() => parseNetworkFlag('rack1=not-an-ip')).toThrow(/"not-an-ip" is not an IPv4 or IPv6 address/);
  });

  it('reads user data and SSH keys from files into the spec', () => {
    const ud = file('ud.yaml', '#cloud-config\npackages: [nginx]\n');
    const keys = file('keys.pub', '# team keys\nssh-ed25519 AAAAC3Nza alice@x\n\necdsa-sha2-nistp256 AAAAE2Vj bob@y\n');
    const spec = claimSpecFromFlags({ nodeType: 'metal.small', userDataFile: ud, sshKeyFile: [keys], network: ['rack1', 'v6=2001:db8::10'] });
    expect(spec).toEqual({
      nodeTypeName: 'metal.small',
      userData: '#cloud-config\npackages: [nginx]\n',
      sshKeys: ['ssh-ed25519 AAAAC3Nza alice@x', 'ecdsa-sha2-nistp256 AAAAE2Vj bob@y'],
      networks: [{ ipPoolName: 'rack1' }, { ipPoolName: 'v6', address: '2001:db8::10' }],
    });
  });

  it('refuses both user data sources, a missing node type, a private key and an oversized file, without echoing contents', () => {
    expect(() => claimSpecFromFlags({ nodeType: 'a', userDataFile: 'x', userDataSecret: 'y' })).toThrow('either --user-data-file or --user-data-secret, not both');
    expect(() => claimSpecFromFlags({})).toThrow(/--node-type is required/);
    expect(() => claimSpecFromFlags({ nodeType: 'Metal_Small' })).toThrow(/is not a node type name/);
    const priv = file('id', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n');
    let message = '';
    try {
      claimSpecFromFlags({ nodeType: 'a', sshKeyFile: [priv] });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('line 1: not an SSH public key');
    expect(message).toContain('is this the private key?');
    expect(message).not.toContain('b3BlbnNzaC1rZXktdjEAAAAABG5vbmU');
    const big = file('big', 'x'.repeat(64 * 1024 + 1));
    expect(() => claimSpecFromFlags({ nodeType: 'a', userDataFile: big })).toThrow(/more than the 65536 allowed/);
    expect(() => claimSpecFromFlags({ nodeType: 'a', userDataFile: join(dir, 'missing') })).toThrow(/cannot read .*missing; check the path/);
  });

  it('parseSshKeys skips comments and blank lines, and needs at least one key', () => {
    expect(parseSshKeys('ssh-rsa AAAAB3 c\n', 'k')).toEqual(['ssh-rsa AAAAB3 c']);
    expect(() => parseSshKeys('\n# only a comment\n', 'k')).toThrow('--ssh-key-file k: holds no public key');
  });

  it('labels are KEY=VALUE', () => {
    expect(parseLabels(['app=web', 'tier=1'])).toEqual({ app: 'web', tier: '1' });
    expect(parseLabels(undefined)).toBeUndefined();
    expect(() => parseLabels(['app'])).toThrow('--label app: use KEY=VALUE');
  });
});
