// Turning what a driver or the agent threw into an outcome: the two failure channels of
// baremetal-operator's provisioner. "Could not ask" (BmcUnreachable, AgentUnavailable) is a
// retry with backoff and no state change; "the hardware said no" (BmcRefused and its
// subclasses, BmcCertificateError) is a failed step with an errorType. Anything else is a bug
// and propagates: the engine logs it, counts it and retries.
import { AgentUnavailable } from '../agent-port.js';
import { BmcError } from '../../drivers/driver.js';
import type { ErrorType } from '../../model/host.js';
import { CredentialsProblem } from '../credentials.js';
import type { Outcome } from '../outcome.js';

export function outcomeOfError(error: unknown, errorType: ErrorType): Outcome {
  if (error instanceof CredentialsProblem) {
    // Only registration records a credentials problem as an error state: a provisioned host
    // whose secret was deleted keeps its state (and its tenant's OS) and waits for the fix.
    return errorType === 'registration' ? { kind: 'failed', errorType, message: error.message } : { kind: 'retry', cause: error.message };
  }
  if (error instanceof BmcError) {
    return error.retryable ? { kind: 'retry', cause: `BMC unreachable: ${error.message}` } : { kind: 'failed', errorType, message: error.message };
  }
  if (error instanceof AgentUnavailable) return { kind: 'retry', cause: `agent unavailable: ${error.message}` };
  throw error;
}

/** Runs fn and maps a driver/agent/credentials failure to an outcome. */
export async function guarded(errorType: ErrorType, fn: () => Promise<Outcome>): Promise<Outcome> {
  try {
    return await fn();
  } catch (error) {
    return outcomeOfError(error, errorType);
  }
}
