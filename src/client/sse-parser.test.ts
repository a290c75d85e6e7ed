import { describe, expect, it } from 'vitest';
import { SseParser } from './sse-parser.js';

describe('SseParser', () => {
  it('joins multi-line data with newlines and keeps the last id', () => {
    const p = new SseParser();
    const events = p.push('id: 7\ndata: {"a":\ndata: 1}\n\n');
    expect(events).toEqual([{ event: 'message', data: '{"a":\n1}', id: '7' }]);
    expect(p.lastEventId).toBe('7');
  });

  it('handles events split across chunks at any point, including inside CRLF', () => {
    const text = 'retry: 1500\r\nid: 1\r\nevent: change\r\ndata: hello\r\n\r\n: comment\r\nid: 2\r\ndata: world\r\n\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser();
      const events = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(events, `cut at ${cut}`).toEqual([
        { event: 'change', data: 'hello', id: '1' },
        { event: 'message', data: 'world', id: '2' },
      ]);
      expect(p.retryMs).toBe(1500);
    }
  });

  it('accepts CR alone as a line end, strips one leading space only, and ignores comments and unknown fields', () => {
    const p = new SseParser();
    expect(p.push(':hi\rfoo: bar\rdata:  two spaces\r\r')).toEqual([{ event: 'message', data: ' two spaces', id: '' }]);
  });

  it('does not dispatch an event without data, and ids persist across events', () => {
    const p = new SseParser();
    expect(p.push('id: 5\n\n')).toEqual([]);
    expect(p.push('data: x\n\n')).toEqual([{ event: 'message', data: 'x', id: '5' }]);
  });

  it('strips a leading byte-order mark and ignores ids containing NUL and non-numeric retry', () => {
    const p = new SseParser();
    expect(p.push('\ufeffid: 3\nid: a\0b\nretry: 1s\ndata: y\n\n')).toEqual([{ event: 'message', data: 'y', id: '3' }]);
    expect(p.retryMs).toBeUndefined();
  });

  it('forgets a half event on reset but keeps the last id', () => {
    const p = new SseParser();
    p.push('id: 9\ndata: done\n\ndata: half');
    p.reset();
    expect(p.push('data: fresh\n\n')).toEqual([{ event: 'message', data: 'fresh', id: '9' }]);
  });

  it('refuses an event larger than the bound', () => {
    const p = new SseParser({ maxEventBytes: 100 });
    expect(() => p.push('data: ' + 'x'.repeat(200) + '\n')).toThrow(/larger than 100 bytes/);
    const q = new SseParser({ maxEventBytes: 100 });
    expect(() => q.push('data: ' + 'x'.repeat(200))).toThrow(/larger than 100 bytes/);
  });
});
