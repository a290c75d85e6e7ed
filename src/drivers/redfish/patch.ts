// Updating a resource with optimistic concurrency (DSP0266 "ETags"): read its ETag, PATCH
// with If-Match, and on 412 Precondition Failed (someone else changed it) read and try once
// more. A BMC that gives no ETag gets a plain PATCH.
import type { BmcTarget } from '../driver.js';
import type { RedfishContext } from './redfish-context.js';
import { refusedError } from './redfish-errors.js';
import { awaitCompletion } from './tasks.js';

export async function patchResource(ctx: RedfishContext, target: BmcTarget, path: string, body: Record<string, unknown>, what: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const current = await ctx.client.request(target, { method: 'GET', path });
    const etag = current.headers['etag'] ?? (current.body as { '@odata.etag'?: unknown } | undefined)?.['@odata.etag'];
    const headers: Record<string, string> = typeof etag === 'string' && current.status < 300 ? { 'if-match': etag } : {};
    const res = await ctx.client.request(target, { method: 'PATCH', path, body, headers });
    if (res.status === 412 && attempt === 1) continue;
    if (res.status < 200 || res.status >= 300) throw refusedError(target, 'PATCH', res.url, res.status, res.body, what);
    await awaitCompletion(ctx, target, res, what);
    return;
  }
}
