// A Host builder for tenancy tests: only the parts matching and scheduling read.
import type { HardwareDetails, HostState } from '../../model/host.js';
import type { MatchableHost } from '../host-matcher.js';

export interface TestHostOptions {
  state?: HostState;
  labels?: Record<string, string>;
  ramMebibytes?: number;
  cpus?: number;
  disksGigabytes?: number[];
  secureBoot?: boolean;
  gpus?: string[];
  nicGbps?: number[];
}

export function testHost(name: string, options: TestHostOptions = {}): MatchableHost {
  const hardware: HardwareDetails = {
    cpu: { threads: options.cpus ?? 16 },
    ramMebibytes: options.ramMebibytes ?? 65536,
    storage: (options.disksGigabytes ?? [480]).map((gb, i) => ({ name: `/dev/sd${String.fromCharCode(97 + i)}`, sizeBytes: gb * 1e9 })),
    nics: (options.nicGbps ?? [25]).map((speedGbps, i) => ({ name: `eno${i + 1}`, mac: `52:54:00:00:00:${(i + 16).toString(16)}`, speedGbps })),
    secureBootCapable: options.secureBoot ?? false,
    gpus: (options.gpus ?? []).map((model) => ({ model })),
  };
  return {
    metadata: { name, uid: `uid-${name}`, labels: options.labels ?? {}, annotations: {}, resourceVersion: '1', createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z' },
    status: {
      provisioning: { state: options.state ?? 'available' },
      poweredOn: false,
      errorType: '',
      errorMessage: '',
      errorCount: 0,
      operationHistory: {},
      conditions: [],
      hardware,
    },
  };
}
