// Request bodies arrive as bytes. Decoding them leniently would turn invalid UTF-8 into
// U+FFFD and store a value the client never sent; so bytes that are not UTF-8 (RFC 3629:
// no overlong forms, no encoded surrogates, nothing above U+10FFFF) are refused, naming the
// first bad byte, and so is U+0000, which PostgreSQL cannot store in text and which no
// manifest field needs.
import { BodyScanError } from './body-scan-error.js';

const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence. */
export function firstInvalidUtf8Byte(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min, cp] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [need, min, cp] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [need, min, cp] = [3, 0x10000, b & 0x07];
    else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/** Decodes a body strictly; throws BodyScanError at the first invalid byte or NUL character. */
export function decodeBodyText(bytes: Uint8Array): string {
  let text: string;
  try {
    text = strictDecoder.decode(bytes);
  } catch {
    throw new BodyScanError('the body is not valid UTF-8', Math.max(0, firstInvalidUtf8Byte(bytes)), true);
  }
  const nul = text.indexOf('\u0000');
  if (nul >= 0) throw new BodyScanError('the body contains a NUL character (U+0000)', nul);
  return text;
}
