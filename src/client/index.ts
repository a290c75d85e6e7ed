// Public surface of the Ingot API client.
export { createClient, parseWatchData } from './client.js';
export type { ClientOptions, IngotClient, FetchLike, ListOptions, HostEvent, WatchEvent, WatchOptions, ApplyResult, RequestOptions, RawResponse, TokenInfo, TokenCreateInput, CreatedToken, AuditListOptions, AuditEvent, AuditVerifyResult, SecretReveal, ApprovalInfo } from './client.js';
export { ApiError, describeFetchFailure } from './api-error.js';
export type { ClientErrorCode } from './api-error.js';
export { SseParser } from './sse-parser.js';
export type { SseEvent } from './sse-parser.js';
export { waitForHostState, waitForHostStates, HostFailedError, WaitTimeoutError } from './wait-for-host-state.js';
export type { WaitTarget, WaitOptions } from './wait-for-host-state.js';
export { parseWarningHeader } from './client.js';
export type { WriteResult, DeleteResult, ResourceClient, ProjectResourceClient, ProjectSecretsClient } from './client.js';
export type { Claim, ClaimInput, ClaimSet, ClaimSetInput, IPAddressInfo, IPPool, IPPoolInput, NodeType, NodeTypeInput, OSImage, OSImageInput, Project, ProjectInput, ResourceInput } from './tenancy-types.js';
export { waitForClaim, waitForClaimSet, waitForClaimSetGone, describeClaimState, describeClaimSetProgress, claimSetSettled, ClaimFailedError, ClaimWaitTimeoutError } from './wait-for-claim.js';
export type { ClaimWaitTarget, ClaimWaitOptions, ClaimSetWaitOptions, ClaimSetProgress } from './wait-for-claim.js';
