// How many Redfish requests the lab served, in total and per system: what a fleet of real BMCs
// would have had to answer. Benchmarks read it (GET /lab/v1/stats) to report BMC requests per
// host, the figure that tells a chatty conductor from a frugal one.

export interface RequestStatsSnapshot {
  /** Every Redfish request (admin /lab/v1 calls are not counted). */
  total: number;
  /** Requests no system could be named for (public service root, failed logins, unknown paths). */
  unattributed: number;
  /** Requests per system id, for systems that got any. */
  systems: Record<string, number>;
}

export class RequestStats {
  #total = 0;
  readonly #bySystem = new Map<string, number>();

  /** Counts one request; `systemId` when the path or the credentials named a system. */
  record(systemId: string | undefined): void {
    this.#total += 1;
    if (systemId !== undefined) this.#bySystem.set(systemId, (this.#bySystem.get(systemId) ?? 0) + 1);
  }

  snapshot(): RequestStatsSnapshot {
    const systems: Record<string, number> = {};
    let attributed = 0;
    for (const [id, n] of this.#bySystem) {
      systems[id] = n;
      attributed += n;
    }
    return { total: this.#total, unattributed: this.#total - attributed, systems };
  }

  reset(): void {
    this.#total = 0;
    this.#bySystem.clear();
  }
}
