// One agent operation through the real AgentQueue, as the conductor drives it: start as soon
// as the booted agent has looked up (AgentUnavailable until then), then poll until it is done
// or failed. Shared by the tests that boot an agent themselves.
import { AgentUnavailable, type AgentPoll, type AgentPort, type AgentStartRequest } from '../../src/conductor/agent-port.js';
import type { Host } from '../../src/model/host.js';

export async function runQueuedOperation(queue: AgentPort, host: Host, operationId: string, request: AgentStartRequest): Promise<AgentPoll> {
  for (;;) {
    try {
      await queue.start(host, operationId, request);
      break;
    } catch (err) {
      if (!(err instanceof AgentUnavailable)) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  for (;;) {
    const poll = await queue.poll(host, operationId);
    if (poll.state !== 'running') return poll;
    await new Promise((r) => setTimeout(r, 25));
  }
}
