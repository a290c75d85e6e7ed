// Redfish collections (DSP0266 "Resource collections"): `Members` is an array of
// `{ "@odata.id": … }`, and a long collection is paged with `Members@odata.nextLink`.
// Bounded, because a BMC is an external input.
import type { BmcTarget } from '../driver.js';
import { BmcRefused } from '../driver.js';
import type { RedfishClient } from './redfish-client.js';

const MAX_PAGES = 100;

export async function listMembers(client: RedfishClient, target: BmcTarget, path: string, limit = 2000): Promise<string[]> {
  const members: string[] = [];
  const seen = new Set<string>();
  let next: string | undefined = path;
  for (let page = 0; next && page < MAX_PAGES; page++) {
    if (seen.has(next)) break; // a nextLink loop must not spin forever
    seen.add(next);
    const body = await client.get(target, next);
    const list = body['Members'];
    if (Array.isArray(list)) {
      for (const m of list) {
        const id = (m as { '@odata.id'?: unknown } | null)?.['@odata.id'];
        if (typeof id === 'string') members.push(id);
        if (members.length > limit) {
          throw new BmcRefused(`host "${target.hostName}": the collection ${path} has more than ${limit} members; Ingot stops reading there`);
        }
      }
    }
    const link = body['Members@odata.nextLink'];
    next = typeof link === 'string' ? link : undefined;
  }
  return members;
}

/** GETs up to `limit` members of a collection; a member that vanished meanwhile (404) is skipped. */
export async function getMembers(client: RedfishClient, target: BmcTarget, path: string, limit = 256): Promise<Array<Record<string, unknown>>> {
  const ids = (await listMembers(client, target, path)).slice(0, limit);
  const out: Array<Record<string, unknown>> = [];
  for (const id of ids) {
    const body = await client.getOptional(target, id);
    if (body) out.push(body);
  }
  return out;
}
