import { describe, expect, it } from 'vitest';
import { HOST_STATES, type HostState } from '../model/host.js';
import {
  DELETE_ALLOWED_STATES,
  HOST_EVENTS,
  IllegalTransition,
  RETRY_TARGETS,
  STATES_WITH_POWER_CONTROL,
  TRANSIENT_TARGETS,
  listEdges,
  nextState,
  type HostEvent,
  type TransitionTarget,
} from './transitions.js';

// The lifecycle written out by hand, independently of TRANSITIONS: any edge added, removed or
// redirected there must be changed here too.
const LEGAL: Array<[HostState, HostEvent, TransitionTarget]> = [
  ['registering', 'registered', 'inspecting'],
  ['registering', 'manage', 'externally-provisioned'],
  ['registering', 'fail', 'error'],
  ['registering', 'delete', 'powering-off-before-delete'],
  ['inspecting', 'inspected', 'preparing'],
  ['inspecting', 'fail', 'error'],
  ['inspecting', 'delete', 'powering-off-before-delete'],
  ['preparing', 'prepared', 'available'],
  ['preparing', 'fail', 'error'],
  ['preparing', 'delete', 'powering-off-before-delete'],
  ['available', 'provision', 'provisioning'],
  ['available', 'adopt', 'externally-provisioned'],
  ['available', 'fail', 'error'],
  ['available', 'delete', 'powering-off-before-delete'],
  ['provisioning', 'provisioned', 'provisioned'],
  ['provisioning', 'deprovision', 'deprovisioning'],
  ['provisioning', 'fail', 'error'],
  ['provisioning', 'delete', 'powering-off-before-delete'],
  ['provisioned', 'deprovision', 'deprovisioning'],
  ['provisioned', 'fail', 'error'],
  ['provisioned', 'delete', 'powering-off-before-delete'],
  ['deprovisioning', 'deprovisioned', 'available'],
  ['deprovisioning', 'fail', 'error'],
  ['deprovisioning', 'delete', 'powering-off-before-delete'],
  ['externally-provisioned', 'inspect', 'inspecting'],
  ['externally-provisioned', 'fail', 'error'],
  ['externally-provisioned', 'delete', 'powering-off-before-delete'],
  ['unmanaged', 'register', 'registering'],
  ['unmanaged', 'delete', 'deleting'],
  ['error', 'delete', 'powering-off-before-delete'],
  ['powering-off-before-delete', 'powered-off', 'deleting'],
  ['deleting', 'deleted', 'gone'],
];
const RETRY_EDGES: HostState[] = ['registering', 'inspecting', 'preparing', 'provisioning', 'deprovisioning', 'available', 'provisioned', 'externally-provisioned'];

describe('nextState', () => {
  it.each(LEGAL)('%s --%s--> %s', (from, event, to) => {
    expect(nextState(from, event)).toBe(to);
  });

  it.each(RETRY_EDGES)('error --retry--> %s when the outcome names it', (to) => {
    expect(nextState('error', 'retry', to)).toBe(to);
  });

  it('error --retry--> requires a named target from the allowed set', () => {
    expect(() => nextState('error', 'retry')).toThrow(IllegalTransition);
    expect(() => nextState('error', 'retry', 'deleting')).toThrow(/must name one of/);
  });

  it('a single-target edge refuses a different `to`', () => {
    expect(() => nextState('available', 'provision', 'provisioned')).toThrow(/leads to provisioning, not provisioned/);
  });

  // Every (state, event) pair not listed above is illegal.
  const legal = new Set([...LEGAL.map(([f, e]) => `${f}/${e}`), 'error/retry']);
  const illegal = HOST_STATES.flatMap((from) => HOST_EVENTS.filter((event) => !legal.has(`${from}/${event}`)).map((event) => [from, event] as const));
  it.each(illegal)('%s --%s--> is illegal', (from, event) => {
    expect(() => nextState(from, event, 'available')).toThrow(IllegalTransition);
  });

  it('listEdges matches the hand-written table', () => {
    const expected = [...LEGAL.map(([f, e, t]) => `${f} ${e} ${t}`), ...RETRY_EDGES.map((t) => `error retry ${t}`)].sort();
    expect(listEdges().map((e) => `${e.from} ${e.event} ${e.to}`).sort()).toEqual(expected);
  });
});

describe('named sets', () => {
  it('deletion is allowed in every state, and reachable from every state by some path', () => {
    expect([...DELETE_ALLOWED_STATES].sort()).toEqual([...HOST_STATES].sort());
    for (const state of HOST_STATES) {
      if (state === 'powering-off-before-delete' || state === 'deleting') continue;
      expect(() => nextState(state, 'delete'), state).not.toThrow();
    }
  });

  it('power is reconciled only in resting states that have a BMC', () => {
    expect([...STATES_WITH_POWER_CONTROL].sort()).toEqual(['available', 'externally-provisioned', 'provisioned']);
  });

  it('power-management errors return to any state with power control', () => {
    expect([...RETRY_TARGETS['power-management']].sort()).toEqual([...STATES_WITH_POWER_CONTROL].sort());
  });

  it('every transient state names its stable target', () => {
    expect(TRANSIENT_TARGETS).toEqual({
      registering: 'available',
      inspecting: 'available',
      preparing: 'available',
      provisioning: 'provisioned',
      deprovisioning: 'available',
      'powering-off-before-delete': 'gone',
      deleting: 'gone',
    });
  });

  it('every state but the deletion ones reaches error or deletion: no dead ends', () => {
    for (const state of HOST_STATES) {
      const out = listEdges().filter((e) => e.from === state);
      expect(out.length, state).toBeGreaterThan(0);
    }
  });
});
