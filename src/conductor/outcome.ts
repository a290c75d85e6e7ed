// What a handler returns: a closed set of outcomes (after baremetal-operator's action_result.go
// and controller-runtime's reconcile.Result), each answering only "save status?" and "come back
// when?". No outcome carries both an error and a delay: the delay of `failed` and `retry` comes
// from the backoff of status.errorCount, never from the handler.
import type { ErrorType } from '../model/host.js';
import type { EventType } from '../store/store.js';
import type { HostEvent } from './transitions.js';
import type { HostState } from '../model/host.js';

/** An extra host event the engine writes in the same transaction as the outcome (e.g. a Warning). */
export interface EventNote {
  type: EventType;
  reason: string;
  message: string;
}

export type Outcome =
  /** Nothing changed; look again after `afterMs` (polling hardware or the agent). */
  | { kind: 'wait'; afterMs: number }
  /** The handler changed status (progress, stepState, poweredOn): persist it and continue soon. */
  | { kind: 'save'; events?: EventNote[] }
  /** The step is done: move along the edge `event` (checked against TRANSITIONS). `to` only for error --retry-->. */
  | {
      kind: 'advance';
      event: HostEvent;
      to?: HostState;
      message?: string;
      events?: EventNote[];
      /** stepState the next state starts with (e.g. an agent session handed from inspecting to preparing's clean). */
      carry?: Record<string, unknown>;
    }
  /** The hardware or agent said no: error state with `errorType`, retried after backoff. */
  | { kind: 'failed'; errorType: ErrorType; message: string; remember?: Record<string, unknown> }
  /** Could not ask (BMC unreachable, agent not up): count it, back off, no state change. */
  | { kind: 'retry'; cause: string }
  /** Retrying cannot help (a bug such as an illegal edge): logged and counted; looked at again only when the host changes or at the next resync. */
  | { kind: 'terminal'; cause: string };

export type OutcomeKind = Outcome['kind'];

export interface QueueAction {
  /** Write status (and, for advance/failed, state and event) before requeueing. */
  persist: boolean;
  /** Milliseconds until the host is reconciled again; undefined: only when it changes. */
  requeueAfterMs?: number;
}

/**
 * The one switch from outcome to queue action (controller-runtime's reconcileHandler).
 * `backoffMs` is the delay for the host's next errorCount, computed by the caller.
 */
export function queueAction(outcome: Outcome, backoffMs: number): QueueAction {
  switch (outcome.kind) {
    case 'wait':
      return { persist: false, requeueAfterMs: outcome.afterMs };
    case 'save':
    case 'advance':
      return { persist: true, requeueAfterMs: 0 };
    case 'failed':
    case 'retry':
      return { persist: true, requeueAfterMs: backoffMs };
    case 'terminal':
      return { persist: false };
  }
}
