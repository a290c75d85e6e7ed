// Which process model a lab's agents get (chooseAgentProcesses), and that the tuning a lab
// passes to an agent process survives the trip through the command line (agentTuningArgs ->
// parseAgentTuning, as `ingot agent` parses it).
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { agentTuningArgs, parseAgentTuning, type AgentTuning } from '../agent/main.js';
import { chooseAgentProcesses, PER_AGENT_MAX_SYSTEMS } from './agent-process.js';

describe('chooseAgentProcesses', () => {
  it("'auto' (the default) gives small labs a process per agent and large ones shared processes", () => {
    expect(PER_AGENT_MAX_SYSTEMS).toBe(32);
    expect(chooseAgentProcesses('auto', 2)).toBe('per-agent');
    expect(chooseAgentProcesses(undefined, 2)).toBe('per-agent');
    expect(chooseAgentProcesses('auto', 32)).toBe('per-agent');
    expect(chooseAgentProcesses('auto', 33)).toBe('shared');
    expect(chooseAgentProcesses(undefined, 1000)).toBe('shared');
  });

  it('an explicit choice wins at any size, and anything else is refused', () => {
    expect(chooseAgentProcesses('shared', 2)).toBe('shared');
    expect(chooseAgentProcesses('per-agent', 1000)).toBe('per-agent');
    expect(() => chooseAgentProcesses('many' as never, 2)).toThrow(/agentProcesses must be one of per-agent, shared, auto/);
  });
});

describe('agent tuning on the command line', () => {
  const options = {
    'backoff-ms': { type: 'string' },
    'command-wait-seconds': { type: 'string' },
    'min-root-disk-bytes': { type: 'string' },
    'conversion-min-free-memory-bytes': { type: 'string' },
    'conversion-memory-limit-bytes': { type: 'string' },
  } as const;
  const roundTrip = (t: AgentTuning) => parseAgentTuning(parseArgs({ args: agentTuningArgs(t), options, strict: true }).values);

  it('round-trips every setting, and nothing when nothing is set', () => {
    const full: AgentTuning = { backoff: { initialMs: 50, maxMs: 500 }, commandWaitSeconds: 1, minRootDiskBytes: 0, conversion: { minFreeMemoryBytes: 0, memoryLimitBytes: 1 << 30 } };
    expect(roundTrip(full)).toEqual(full);
    expect(agentTuningArgs({})).toEqual([]);
    expect(roundTrip({})).toEqual({});
  });

  it('refuses values that are not bounded whole numbers, naming the flag', () => {
    expect(() => parseAgentTuning({ 'backoff-ms': '50' })).toThrow(/--backoff-ms 50: use INITIAL,MAX/);
    expect(() => parseAgentTuning({ 'backoff-ms': '500,50' })).toThrow(/MAX at least INITIAL/);
    expect(() => parseAgentTuning({ 'command-wait-seconds': '-1' })).toThrow(/--command-wait-seconds -1/);
    expect(() => parseAgentTuning({ 'command-wait-seconds': '301' })).toThrow(/from 0 to 300/);
    expect(() => parseAgentTuning({ 'min-root-disk-bytes': '1e9' })).toThrow(/--min-root-disk-bytes/);
  });
});
