// BMC addresses, in the URL schemes Metal3 accepts (baremetal-operator pkg/hardwareutils/bmc),
// plus `fake://NAME` for the simulated driver. Parsed once, at admission, so a bad address is a
// 400 naming spec.bmc.address rather than a registration error minutes later.

export type DriverName = 'redfish' | 'ipmi' | 'fake';

export interface BmcAddress {
  driver: DriverName;
  /** The scheme as written, e.g. `redfish-virtualmedia+https`. */
  scheme: string;
  /** Boot through virtual media (redfish-virtualmedia) rather than the network. */
  virtualMedia: boolean;
  /** http or https for Redfish; unused for ipmi/fake. */
  protocol: 'http' | 'https' | 'udp' | 'none';
  host: string;
  port?: number;
  /** Redfish system path (e.g. /redfish/v1/Systems/1); empty means "the only system there is". */
  path: string;
  /** For fake:// the host's scenario name; for others the original address. */
  name: string;
  raw: string;
}

const SCHEMES: Record<string, Pick<BmcAddress, 'driver' | 'virtualMedia' | 'protocol'>> = {
  redfish: { driver: 'redfish', virtualMedia: false, protocol: 'https' },
  'redfish+https': { driver: 'redfish', virtualMedia: false, protocol: 'https' },
  'redfish+http': { driver: 'redfish', virtualMedia: false, protocol: 'http' },
  'redfish-virtualmedia': { driver: 'redfish', virtualMedia: true, protocol: 'https' },
  'redfish-virtualmedia+https': { driver: 'redfish', virtualMedia: true, protocol: 'https' },
  'redfish-virtualmedia+http': { driver: 'redfish', virtualMedia: true, protocol: 'http' },
  ipmi: { driver: 'ipmi', virtualMedia: false, protocol: 'udp' },
  fake: { driver: 'fake', virtualMedia: false, protocol: 'none' },
};

export const SUPPORTED_BMC_SCHEMES = Object.keys(SCHEMES);

export class BmcAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BmcAddressError';
  }
}

/** Parses a BMC address; throws BmcAddressError with a message that says what is accepted. */
export function parseBmcAddress(raw: string): BmcAddress {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(raw);
  if (!match) {
    throw new BmcAddressError(
      `"${raw}" is not a BMC address; write SCHEME://HOST[:PORT][/PATH] with SCHEME one of ${SUPPORTED_BMC_SCHEMES.join(', ')}`,
    );
  }
  const scheme = match[1]!;
  const rest = match[2]!;
  const kind = SCHEMES[scheme];
  if (!kind) {
    throw new BmcAddressError(`unknown BMC address scheme "${scheme}"; use one of ${SUPPORTED_BMC_SCHEMES.join(', ')}`);
  }
  if (kind.driver === 'fake') {
    const name = rest.replace(/\/+$/, '');
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)) {
      throw new BmcAddressError(`fake BMC address "${raw}" must be fake://NAME with NAME a DNS label (e.g. fake://fail-inspect)`);
    }
    return { ...kind, scheme, host: name, path: '', name, raw };
  }
  let url: URL;
  try {
    // Parse with a neutral scheme so WHATWG URL rules apply to host and port.
    url = new URL(`http://${rest}`);
  } catch {
    throw new BmcAddressError(`"${raw}" has no valid host: write ${scheme}://HOST[:PORT][/PATH]`);
  }
  if (!url.hostname) throw new BmcAddressError(`"${raw}" has no host: write ${scheme}://HOST[:PORT][/PATH]`);
  if (url.username || url.password) {
    throw new BmcAddressError(`"${raw}" carries credentials in the URL; put them in a Secret and name it in spec.bmc.credentialsName`);
  }
  if (url.search || url.hash) throw new BmcAddressError(`"${raw}" must not have a query or fragment`);
  const port = url.port ? Number(url.port) : undefined;
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
  if (kind.driver === 'ipmi' && path) throw new BmcAddressError(`"${raw}": an ipmi address has no path; write ipmi://HOST[:PORT]`);
  return { ...kind, scheme, host: url.hostname, ...(port !== undefined ? { port } : {}), path, name: raw, raw };
}
