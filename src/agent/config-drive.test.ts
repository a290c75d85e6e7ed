// The config drive as cloud-init's ConfigDrive datasource reads it: a config-2 ISO with the
// three openstack/latest files, network_data.json holding what the conductor sent.
import { describe, expect, it } from 'vitest';
import { readIso9660 } from '../images/iso9660.js';
import { buildConfigDrive } from './config-drive.js';

const json = (b: Buffer | undefined) => JSON.parse(b!.toString('utf8')) as unknown;

describe('buildConfigDrive', () => {
  it('writes meta data, user data and network data under openstack/latest', () => {
    const networkData = { links: [{ id: 'eno1', type: 'phy', ethernet_mac_address: '52:54:00:12:34:56' }], networks: [{ id: 'n0', link: 'eno1', type: 'ipv4_dhcp' }], services: [] };
    const volume = readIso9660(buildConfigDrive({ metaData: { uuid: 'u-1', name: 'h' }, userData: '#cloud-config\n', networkData }));
    expect(volume.volumeId).toBe('config-2');
    expect(json(volume.readFile('openstack/latest/meta_data.json'))).toEqual({ uuid: 'u-1', name: 'h' });
    expect(json(volume.readFile('openstack/latest/network_data.json'))).toEqual(networkData);
    expect(volume.readFile('openstack/latest/user_data')?.toString('utf8')).toBe('#cloud-config\n');
  });

  it('without network data: an empty network_data.json, and no user_data file without user data', () => {
    const volume = readIso9660(buildConfigDrive({ metaData: { uuid: 'u-2' } }));
    expect(json(volume.readFile('openstack/latest/network_data.json'))).toEqual({});
    expect(volume.readFile('openstack/latest/user_data')).toBeUndefined();
  });
});
