/**
 * The shape of the JSON-RPC requests the gateway serves, checked at the edge with the SDK's own
 * schemas. Without it the SDK answers a malformed request with its validation dump as an
 * internal error (-32603); here the client gets Invalid params (-32602) with one short line that
 * names the field, and the record says the same.
 */
import {
  CallToolRequestSchema,
  InitializeRequestSchema,
  ListToolsRequestSchema,
  PingRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

const REQUEST_SCHEMAS = {
  initialize: InitializeRequestSchema,
  ping: PingRequestSchema,
  'tools/list': ListToolsRequestSchema,
  'tools/call': CallToolRequestSchema,
} as const;

export type RequestShape = { ok: true } | { ok: false; message: string };

const MAX_FIELD_PATH = 96;

/** Checks one JSON-RPC request (a message with a method and an id); other messages pass. */
export function checkRequestShape(message: {
  method?: unknown;
  id?: unknown;
  params?: unknown;
}): RequestShape {
  if (typeof message.method !== 'string' || message.id === undefined) return { ok: true };
  if (!Object.hasOwn(REQUEST_SCHEMAS, message.method)) return { ok: true };
  const schema = REQUEST_SCHEMAS[message.method as keyof typeof REQUEST_SCHEMAS];
  const parsed = schema.safeParse({ method: message.method, params: message.params });
  if (parsed.success) return { ok: true };
  const issue = parsed.error.issues[0];
  const path = (issue?.path ?? []).map(String).join('.').slice(0, MAX_FIELD_PATH) || 'params';
  const problem = issue?.code === 'invalid_type' ? `must be ${expected(issue)}` : 'is not valid';
  return { ok: false, message: `Invalid params: ${message.method} ${path} ${problem}` };
}

function expected(issue: { expected?: unknown }): string {
  const type = typeof issue.expected === 'string' ? issue.expected : 'of another type';
  if (type === 'record' || type === 'object') return 'an object';
  if (type === 'array') return 'an array';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}
