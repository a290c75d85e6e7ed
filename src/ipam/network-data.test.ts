import { describe, expect, it } from 'vitest';
import { IngotError } from '../model/errors.js';
import { renderNetworkData } from './network-data.js';

const nics = [
  { name: 'eno1', mac: '52:54:00:12:34:56', speedGbps: 25 },
  { name: 'eno2', mac: '52:54:00:12:34:57', speedGbps: 25 },
];

describe('network_data.json', () => {
  it('renders a static IPv4 network in the OpenStack format (hand-written expectation)', () => {
    const data = renderNetworkData({
      nics,
      attachments: [
        {
          mac: '52:54:00:12:34:56',
          pool: { name: 'rack1-v4', spec: { ranges: [{ start: '192.0.2.10', end: '192.0.2.50' }], prefix: 24, gateway: '192.0.2.1', dnsServers: ['192.0.2.53', '198.51.100.53'] } },
          address: '192.0.2.10',
        },
      ],
    });
    expect(JSON.parse(JSON.stringify(data))).toEqual(
      JSON.parse(`{
        "links": [
          { "id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56" }
        ],
        "networks": [
          {
            "id": "network0",
            "type": "ipv4",
            "link": "eno1",
            "ip_address": "192.0.2.10",
            "netmask": "255.255.255.0",
            "routes": [ { "network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1" } ],
            "network_id": "rack1-v4",
            "services": [ { "type": "dns", "address": "192.0.2.53" }, { "type": "dns", "address": "198.51.100.53" } ]
          }
        ],
        "services": [ { "type": "dns", "address": "192.0.2.53" }, { "type": "dns", "address": "198.51.100.53" } ]
      }`),
    );
  });

  it('renders dual stack: IPv6 with its colon-form netmask, one link per NIC, one default route per family', () => {
    const v6 = { ranges: [{ start: '2001:db8:0:1::10', end: '2001:db8:0:1::ff' }], prefix: 64, gateway: '2001:DB8:0:1::1', dnsServers: ['2001:db8::53'] };
    const data = renderNetworkData({
      nics,
      attachments: [
        { mac: '52:54:00:12:34:56', pool: { name: 'rack1-v6', spec: v6 }, address: '2001:db8:0:1:0:0:0:10' },
        { mac: '52:54:00:12:34:56', pool: { name: 'rack1-v4', spec: { ranges: [{ start: '192.0.2.10', end: '192.0.2.50' }], prefix: 26 } }, address: '192.0.2.11' },
        { mac: '52:54:00:12:34:57', pool: { name: 'storage-v6', spec: { ...v6, ranges: [{ start: '2001:db8:0:1::100', end: '2001:db8:0:1::1ff' }] } }, address: '2001:db8:0:1::100' },
      ],
    });
    expect(JSON.parse(JSON.stringify(data))).toEqual(
      JSON.parse(`{
        "links": [
          { "id": "eno1", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56" },
          { "id": "eno2", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:57" }
        ],
        "networks": [
          {
            "id": "network0", "type": "ipv6", "link": "eno1",
            "ip_address": "2001:db8:0:1::10", "netmask": "ffff:ffff:ffff:ffff::",
            "routes": [ { "network": "::", "netmask": "::", "gateway": "2001:db8:0:1::1" } ],
            "network_id": "rack1-v6",
            "services": [ { "type": "dns", "address": "2001:db8::53" } ]
          },
          {
            "id": "network1", "type": "ipv4", "link": "eno1",
            "ip_address": "192.0.2.11", "netmask": "255.255.255.192",
            "routes": [], "network_id": "rack1-v4", "services": []
          },
          {
            "id": "network2", "type": "ipv6", "link": "eno2",
            "ip_address": "2001:db8:0:1::100", "netmask": "ffff:ffff:ffff:ffff::",
            "routes": [], "network_id": "storage-v6",
            "services": [ { "type": "dns", "address": "2001:db8::53" } ]
          }
        ],
        "services": [ { "type": "dns", "address": "2001:db8::53" } ]
      }`),
    );
  });

  it('refuses a MAC the host does not have, and an address of the wrong family, saying which', () => {
    const pool = { name: 'p', spec: { ranges: [{ start: '192.0.2.10', end: '192.0.2.50' }], prefix: 24 } };
    expect(() => renderNetworkData({ nics, attachments: [{ mac: '52:54:00:00:00:01', pool, address: '192.0.2.10' }] })).toThrow(/no NIC with MAC 52:54:00:00:00:01 .*eno1|52:54:00:12:34:56/);
    let caught: unknown;
    try {
      renderNetworkData({ nics, attachments: [{ mac: '52:54:00:12:34:56', pool, address: '2001:db8::1' }] });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(IngotError);
    expect((caught as IngotError).details[0]?.field).toBe('attachments[0].address');
  });
});
