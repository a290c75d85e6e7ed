// Opening an image download, shared by the agent (deploying) and the conductor's image cache:
// one place decides the timeouts, what a failed connection or a non-200 answer says, and how
// the announced length is read.
import { request, type Dispatcher } from 'undici';
import { ImageRefused } from './image-refused.js';
import { describeNetworkError } from './network-error.js';

export interface OpenedImageDownload {
  body: Dispatcher.ResponseData['body'];
  /** Content-Length when the server sent a valid one. */
  expectedSize?: number;
}

/** Starts a GET of `url`; throws ImageRefused('truncated') with a message naming the host on failure. */
export async function openImageDownload(
  url: URL,
  opts: { dispatcher?: Dispatcher; headers?: Record<string, string>; signal?: AbortSignal },
): Promise<OpenedImageDownload> {
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'GET',
      ...(opts.headers ? { headers: opts.headers } : {}),
      ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      headersTimeout: 60_000,
      bodyTimeout: 120_000,
    });
  } catch (err) {
    throw new ImageRefused('truncated', `could not download spec.image.url from ${url.host}: ${describeNetworkError(err)}`, { cause: err });
  }
  if (response.statusCode !== 200) {
    await response.body.dump();
    throw new ImageRefused('truncated', `the image server answered HTTP ${response.statusCode} for spec.image.url; check the URL`);
  }
  const lengthHeader = response.headers['content-length'];
  const expectedSize = typeof lengthHeader === 'string' && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
  return { body: response.body, ...(expectedSize !== undefined ? { expectedSize } : {}) };
}
