// Opening an image download, shared by the agent (deploying), the conductor's image cache and
// the OS image verifier: one place decides the timeouts, what a failed connection or a non-200
// answer says, and how the announced length is read.
//
// Downloads go through node:http/https, not undici. undici 7 (the last line that runs on
// Node 20; undici 8 needs Node 22.19) crashes the process with an uncatchable
// `AssertionError: assert(!this.paused)` when a server closes the connection after the body
// while the consumer applies backpressure (nodejs/undici#5360, fixed only in undici 8 by
// nodejs/undici#5474). HTTP/1.0 servers and servers that close after the body do exactly that
// (Python's http.server, busybox httpd), and writing an image to a disk is backpressure.
// Node's own HTTP client pauses the socket instead and ends the body cleanly.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ImageRefused } from './image-refused.js';
import { describeNetworkError } from './network-error.js';

/** No response headers within this long: the server is not answering. */
const HEADERS_TIMEOUT_MS = 60_000;
/** No bytes of the body for this long: the transfer stalled. */
const BODY_IDLE_TIMEOUT_MS = 120_000;

export interface OpenedImageDownload {
  /** The body as it arrives (pull it; destroy it to stop early). */
  body: IncomingMessage;
  /** Content-Length when the server sent a valid one. */
  expectedSize?: number;
}

function get(url: URL, opts: { caPem?: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const options = {
      method: 'GET',
      headers: { ...opts.headers, 'user-agent': 'ingot' },
      // One connection per download: nothing to share, and nothing left open afterwards.
      agent: false as const,
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    const req = url.protocol === 'https:' ? httpsRequest(url, { ...options, ...(opts.caPem ? { ca: opts.caPem } : {}) }) : httpRequest(url, options);
    req.setTimeout(HEADERS_TIMEOUT_MS, () => req.destroy(Object.assign(new Error(`no response within ${HEADERS_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    req.once('error', reject);
    req.once('response', (res) => {
      // The socket's idle timer now guards the body; an error after this point reaches the body.
      req.setTimeout(BODY_IDLE_TIMEOUT_MS, () => req.destroy(Object.assign(new Error(`the download stalled: no data for ${BODY_IDLE_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
      req.off('error', reject);
      req.on('error', (err) => res.destroy(err));
      resolve(res);
    });
    req.end();
  });
}

/** Starts a GET of `url`; throws ImageRefused('truncated') with a message naming the host on failure. */
export async function openImageDownload(url: URL, opts: { caPem?: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<OpenedImageDownload> {
  let response: IncomingMessage;
  try {
    response = await get(url, opts);
  } catch (err) {
    throw new ImageRefused('truncated', `could not download spec.image.url from ${url.host}: ${describeNetworkError(err)}`, { cause: err });
  }
  if (response.statusCode !== 200) {
    response.destroy();
    throw new ImageRefused('truncated', `the image server answered HTTP ${response.statusCode} for spec.image.url; check the URL`);
  }
  const lengthHeader = response.headers['content-length'];
  const expectedSize = typeof lengthHeader === 'string' && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
  return { body: response, ...(expectedSize !== undefined ? { expectedSize } : {}) };
}
