// The fake agent: an AgentPort whose "agent" is simulated inside FakeFleet's machines, for
// fake://NAME hosts. It keeps the rules a real agent imposes, so a conductor that works here
// works with the real one:
// - start() needs a running agent: the host must be powered on and booted from the network
//   (pxe, uefi-http) or an inserted virtual CD; otherwise AgentUnavailable (wait, poll, retry).
//   The conductor therefore powers the host on (booting the agent) before starting agent work.
// - One operation at a time; start() with an id already known does nothing (running, finished
//   or lost: a retry needs a new id).
// - Power-off or reset kills the agent: running operations then poll as failed ("lost").
// - finish() ends the session (the one-boot token is revoked): the next operation needs a reboot.
// - deploy records the image (url, checksum, root device, config drive with user data as a
//   sha256 only) on the machine's disk; clean erases it and records the mode.
import type { AgentPoll, AgentPort, AgentStartRequest } from '../../conductor/agent-port.js';
import type { Host } from '../../model/host.js';
import { parseBmcAddress } from '../../model/bmc-address.js';
import type { FakeFleet } from './fake-fleet.js';

const MAX_OPERATION_ID = 128;

/** The fleet key of a host: NAME from spec.bmc.address fake://NAME (metadata.name may differ). */
export function fakeNameOfHost(host: Host): string {
  const raw = host.spec.bmc?.address;
  if (!raw) throw new Error(`host ${host.metadata.name} has no spec.bmc.address, so it has no fake agent`);
  const address = parseBmcAddress(raw);
  if (address.driver !== 'fake') throw new Error(`host ${host.metadata.name} is not a fake:// host; the fake agent cannot serve it`);
  return address.name;
}

function checkOperationId(operationId: string): void {
  if (typeof operationId !== 'string' || operationId.length === 0 || operationId.length > MAX_OPERATION_ID) {
    throw new RangeError(`agent operation id must be a non-empty string of at most ${MAX_OPERATION_ID} characters`);
  }
}

function checkRequest(request: AgentStartRequest): void {
  if (request?.kind === 'inspect') return;
  if (request?.kind === 'deploy') {
    if (!request.deploy?.image?.url || !request.deploy.image.checksum) throw new RangeError('a deploy request needs deploy.image with url and checksum');
    return;
  }
  if (request?.kind === 'clean') {
    if (request.clean?.mode !== 'metadata' && request.clean?.mode !== 'full') throw new RangeError('a clean request needs clean.mode "metadata" or "full"');
    return;
  }
  throw new RangeError(`unknown agent operation kind ${JSON.stringify((request as { kind?: unknown })?.kind)}; use inspect, deploy or clean`);
}

export function createFakeAgent(fleet: FakeFleet): AgentPort {
  return {
    async start(host: Host, operationId: string, request: AgentStartRequest): Promise<void> {
      checkOperationId(operationId);
      checkRequest(request);
      fleet.startOperation(fakeNameOfHost(host), operationId, request);
    },
    async poll(host: Host, operationId: string): Promise<AgentPoll> {
      checkOperationId(operationId);
      return fleet.pollOperation(fakeNameOfHost(host), operationId);
    },
    async finish(host: Host): Promise<void> {
      fleet.finishAgent(fakeNameOfHost(host));
    },
  };
}
