/**
 * Reads a request body with a hard byte limit. The limit is checked against Content-Length
 * first (refused before reading a byte) and again while streaming (a lying or chunked client).
 * Nesting is bounded too: everything downstream (policy conditions, schema validation, the
 * decision log's argument digest) walks the value recursively, so a megabyte of `[[[[…` must be
 * refused here, at the edge, before it can overflow a stack further in.
 */
import type { IncomingMessage } from 'node:http';
import { decodeUtf8Strict, unfaithfulJson } from './faithful-json.ts';

export type BodyResult =
  | { ok: true; value: unknown }
  | {
      ok: false;
      status: 413 | 400;
      code: 'body_too_large' | 'parse_error' | 'too_deep' | 'unfaithful_json';
      message: string;
    };

/** Deeper than any real tool call: the JSON-RPC envelope takes 3 levels of it. */
export const MAX_JSON_DEPTH = 64;

/** Deepest nesting of arrays and objects in JSON text, scanned without recursion. */
export function jsonNestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \\ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > deepest) deepest = depth;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return deepest;
}

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
  const text = decodeUtf8Strict(Buffer.concat(chunks, size));
  if (text === undefined) {
    return {
      ok: false,
      status: 400,
      code: 'parse_error',
      message: 'Parse error: the body is not UTF-8',
    };
  }
  if (jsonNestingDepth(text) > MAX_JSON_DEPTH) {
    return {
      ok: false,
      status: 400,
      code: 'too_deep',
      message: `Invalid Request: JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return { ok: false, status: 400, code: 'parse_error', message: 'Parse error: invalid JSON' };
  }
  // What the policy judges must be what the tool gets (./faithful-json.ts).
  const unfaithful = unfaithfulJson(text);
  if (unfaithful !== undefined) {
    return {
      ok: false,
      status: 400,
      code: 'unfaithful_json',
      message: `Invalid Request: ${unfaithful}; JSON that does not survive parsing unchanged is refused`,
    };
  }
  return { ok: true, value };
}
