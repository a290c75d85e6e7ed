// Binds pending claims to hosts. Level-based and safe to run in any number of
// processes at once: the store's host_bindings table (UNIQUE host, UNIQUE claim) is the only
// arbiter, so two schedulers racing for one host or one claim cannot both win; the loser
// moves on to its next candidate.
//
// Fairness: claims are tried in the order given (creation order), each taking the smallest
// sufficient free host (host-matcher.ts). Among claims that can use the same hosts, an older
// claim therefore never waits while a younger one is bound; a claim whose node type has no
// free host does not hold up claims of other node types (no head-of-line blocking).
import type { Store } from '../store/store.js';
import type { NodeTypeSpec } from '../model/node-type.js';
import { explainNoMatch, matchHosts, type MatchableHost } from './host-matcher.js';

export interface SchedulableClaim {
  uid: string;
  name: string;
  project: string;
  nodeTypeName: string;
}

export interface SchedulableNodeType {
  name: string;
  spec: Pick<NodeTypeSpec, 'selector'>;
}

export type ScheduleResult =
  | { claimUid: string; claimName: string; outcome: 'bound'; hostUid: string; hostName: string }
  | { claimUid: string; claimName: string; outcome: 'pending'; reason: string };

export interface ScheduleClaimsInput {
  store: Store;
  /** Claims without a host, oldest first. */
  pendingClaims: readonly SchedulableClaim[];
  /** All hosts, as read from the store (matching checks state, labels and hardware). */
  hosts: readonly MatchableHost[];
  nodeTypes: readonly SchedulableNodeType[];
}

export async function scheduleClaims(input: ScheduleClaimsInput): Promise<ScheduleResult[]> {
  const { store } = input;
  const nodeTypes = new Map(input.nodeTypes.map((t) => [t.name, t]));
  const hostNames = new Map(input.hosts.map((h) => [h.metadata.uid, h.metadata.name]));
  const bindings = await store.listHostBindings();
  const bound = new Set(bindings.map((b) => b.hostUid));
  const hostOfClaim = new Map(bindings.map((b) => [b.claimUid, b.hostUid]));
  const results: ScheduleResult[] = [];

  for (const claim of input.pendingClaims) {
    const base = { claimUid: claim.uid, claimName: claim.name };
    const already = hostOfClaim.get(claim.uid);
    if (already !== undefined) {
      results.push({ ...base, outcome: 'bound', hostUid: already, hostName: hostNames.get(already) ?? '' });
      continue;
    }
    const nodeType = nodeTypes.get(claim.nodeTypeName);
    if (nodeType === undefined) {
      results.push({ ...base, outcome: 'pending', reason: `node type "${claim.nodeTypeName}" does not exist; ask a platform admin for one, or change spec.nodeTypeName` });
      continue;
    }
    let result: ScheduleResult | undefined;
    for (const host of matchHosts(nodeType.spec, input.hosts, { bound })) {
      const hostUid = host.metadata.uid;
      if (await store.bindHost(hostUid, claim.uid, claim.project)) {
        bound.add(hostUid);
        result = { ...base, outcome: 'bound', hostUid, hostName: host.metadata.name };
        break;
      }
      // Lost a race: either the host went to another claim, or another scheduler bound this claim.
      const mine = await store.getClaimBinding(claim.uid);
      if (mine !== undefined) {
        bound.add(mine.hostUid);
        result = { ...base, outcome: 'bound', hostUid: mine.hostUid, hostName: hostNames.get(mine.hostUid) ?? '' };
        break;
      }
      bound.add(hostUid);
    }
    results.push(
      result ?? {
        ...base,
        outcome: 'pending',
        reason: explainNoMatch(nodeType.spec, input.hosts, { bound }) ?? 'no available host matches: every matching host was just bound to another claim; retrying',
      },
    );
  }
  return results;
}
