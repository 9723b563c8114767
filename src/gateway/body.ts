/**
 * Reads a request body with a hard byte limit. The limit is checked against Content-Length
 * first (refused before reading a byte) and again while streaming (a lying or chunked client).
 */
import type { IncomingMessage } from 'node:http';

export type BodyResult =
  | { ok: true; value: unknown }
  | { ok: false; status: 413 | 400; code: 'body_too_large' | 'parse_error'; message: string };

export async function readJsonBody(req: IncomingMessage, limitBytes: number): Promise<BodyResult> {
  const tooLarge = {
    ok: false,
    status: 413,
    code: 'body_too_large',
    message: `Payload Too Large: the body exceeds ${limitBytes} bytes`,
  } as const;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    return tooLarge;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) {
      req.resume();
      return tooLarge;
    }
    chunks.push(chunk);
  }
  try {
    return { ok: true, value: JSON.parse(Buffer.concat(chunks, size).toString('utf8')) as unknown };
  } catch {
    return { ok: false, status: 400, code: 'parse_error', message: 'Parse error: invalid JSON' };
  }
}
